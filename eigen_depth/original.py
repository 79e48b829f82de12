"""The original test_depth, one image at a time, transcribed step by step from docs/specification.md section 4.

Slow on purpose and free of the evaluator's code: the tests and `benchmarks/evaluate.py` compare the
evaluator's numbers and files with it. The network is a callback (`forward_of(prototxt, caffemodel)` returns
a function from a (1, 3, 218, 298) float32 input to the net's output), so OpenCV's Caffe reader can stand in
for Caffe. `stages`, when given, collects the seconds spent in each step.
"""
import os
import time

import numpy as np

from .constants import (GT_HEIGHT, GT_WIDTH, INPUT_HEIGHT, INPUT_MEAN, INPUT_SCALE, INPUT_WIDTH, LOG_DEPTH_SCALE,
                        METRIC_FLOOR, THESIS_METRICS, THRESHOLDS)
from .pycaffe.io import load_image  # the script read images with pycaffe's caffe.io.load_image


def load(path, channels, width, height):
    """The script's loadImage: bilinear resize without antialiasing, as (1, channels, height, width)."""
    import skimage.transform
    image = skimage.transform.resize(load_image(path), (height, width, channels), order=1, mode="constant",
                                     anti_aliasing=False)
    return np.reshape(np.transpose(image, (2, 0, 1)), (1, channels, height, width))


def log_depth(depth):
    return LOG_DEPTH_SCALE * np.log(np.maximum(depth, METRIC_FLOOR)) + 1


def metrics(out, gt):
    """The ten metrics of one image (o, g in meters; m = 1/255), in THESIS_METRICS order."""
    m = METRIC_FLOOR
    gt_m, out_m = np.maximum(gt, m), np.maximum(out, m)
    clamped = out - gt_m                         # the clamped GT in the relative differences, as the original
    d = out - gt
    dl = log_depth(out / 10.0) * 10.0 - log_depth(gt / 10.0) * 10.0
    o = (out - np.mean(out)) / np.std(out)
    g = (gt - np.mean(gt)) / np.std(gt)
    ratio = np.maximum(out_m / gt_m, gt_m / out_m)
    values = [np.mean(np.absolute(clamped) / gt_m), np.mean(clamped * clamped / gt_m), np.sqrt(np.mean(d * d)),
              np.sqrt(np.mean(dl * dl)), np.mean(dl * dl) - dl.sum() * dl.sum() / float(dl.size * dl.size),
              np.mean(np.absolute(np.log10(out_m) - np.log10(gt_m))), np.sqrt(np.mean((o - g) ** 2))]
    values += [np.where(ratio < t)[0].size / float(gt.size) for t in THRESHOLDS]
    assert len(values) == len(THESIS_METRICS)
    return values


def visual(depth):
    """V(d): the 8-bit rendering of a depth map (in meters / 10)."""
    return np.clip(2 * LOG_DEPTH_SCALE * np.log(np.clip(depth, 0.001, 1000)) + 1, 0, 1)


def imwrite(image, path, channels, width, height):
    import cv2
    pixels = np.array(np.reshape(image, (height, width, channels)) * 255, dtype=np.uint8)
    if not cv2.imwrite(str(path), pixels, [cv2.IMWRITE_PNG_COMPRESSION, 8]):
        raise OSError(f"{path}: could not be written")


class _Clock:
    def __init__(self, stages):
        self.stages, self.last = stages, time.perf_counter()

    def lap(self, stage):
        now = time.perf_counter()
        if stage is not None and self.stages is not None:
            self.stages[stage] = self.stages.get(stage, 0.0) + now - self.last
        self.last = now


def test_depth(input_dir, gt_dir, out_dir, snaps_dir, forward_of, log=False, channel_order="rgb", stages=None):
    """The original script: for every X.caffemodel in snaps_dir, every *colors* file of input_dir through the
    net, zoomed (cubic) to the GT's size, the ten metrics, and the MVN-fitted and raw images written to
    out_dir/X and out_dir_abs/X. Returns {snapshot: {image file: [ten metrics]}}."""
    import scipy.ndimage
    results = {}
    clock = _Clock(stages)
    for name in sorted(n for n in os.listdir(snaps_dir) if n.endswith(".caffemodel")):
        snap = name[:-len(".caffemodel")]
        folders = (os.path.join(out_dir, snap), os.path.join(out_dir + "_abs", snap))
        for folder in folders:
            os.makedirs(folder, exist_ok=True)
        clock.lap(None)
        forward = forward_of(os.path.join(snaps_dir, snap + ".prototxt"), os.path.join(snaps_dir, name))
        clock.lap("load model")
        results[snap] = {}
        for file in sorted(f for f in os.listdir(input_dir) if "colors" in f):
            gt = load(os.path.join(gt_dir, file.replace("colors", "depth")), 1, GT_WIDTH, GT_HEIGHT)
            x = load(os.path.join(input_dir, file), 3, INPUT_WIDTH, INPUT_HEIGHT)
            x *= INPUT_SCALE
            x -= INPUT_MEAN
            clock.lap("read + resize")
            output = forward(x[:, ::-1] if channel_order == "bgr" else x)
            clock.lap("forward")
            if log:
                output = np.exp((output - 1) / LOG_DEPTH_SCALE)
            output = scipy.ndimage.zoom(output, (1, 1, GT_HEIGHT / output.shape[2], GT_WIDTH / output.shape[3]),
                                        order=3)
            clock.lap("zoom")
            results[snap][file] = metrics(output * 10.0, gt * 10.0)
            clock.lap("metrics")
            x += INPUT_MEAN
            x = x / INPUT_SCALE
            x = np.transpose(x, (0, 2, 3, 1))[:, :, :, (2, 1, 0)]
            absolute = output.copy()
            output -= output.mean()
            output /= output.std()
            output *= gt.std()
            output += gt.mean()
            stem = os.path.splitext(file)[0]
            for folder, depth in zip(folders, (output, absolute)):
                imwrite(x, os.path.join(folder, stem + ".png"), 3, INPUT_WIDTH, INPUT_HEIGHT)
                imwrite(visual(depth), os.path.join(folder, stem.replace("_colors", "_depth") + ".png"), 1,
                        GT_WIDTH, GT_HEIGHT)
                imwrite(visual(gt), os.path.join(folder, stem.replace("_colors", "_gt") + ".png"), 1,
                        GT_WIDTH, GT_HEIGHT)
            clock.lap("fit + write")
    return results


def cv2_forward_of(layer=None):
    """forward_of for test_depth: OpenCV's dnn as the network (an independent Caffe implementation), one image
    per forward, reading `layer` (default: the net's last layer)."""
    def forward_of(prototxt, caffemodel):
        import cv2
        net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
        name = layer or net.getLayerNames()[-1]

        def forward(x):
            net.setInput(np.ascontiguousarray(x, dtype=np.float32))
            return net.forward(name).copy()
        return forward
    return forward_of
