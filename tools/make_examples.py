#!/usr/bin/env python
"""Writes offline sample data for the evaluator, in the thesis's test format (docs/specification.md sections 4-6).

    python tools/make_examples.py OUT [--snapshots]

OUT/test/    real RGB-D pairs `motorcycle_<view>_colors.png` (RGB) and `motorcycle_<view>_depth.png` (8-bit
             gray, pixel/255 = depth/10 m), 420x320, from the Middlebury 2014 motorcycle pair that ships with
             scikit-image (skimage.data.stereo_motorcycle(), downsampled 4x, 500x741): `full` is the whole
             view (centre crop to 656x500, resized to 420x320), `left`, `centre` and `right` are 420x320
             windows at the native scale (rows 90..409).
OUT/photos/  inputs without GT for get_depth, from scikit-image's photos: a gray PNG, an RGBA PNG, a JPEG,
             a 16-bit PNG and a TIFF.
OUT/snaps/   (--snapshots) three "snapshots" of a tiny demo net with random weights (not a thesis network:
             it has the thesis's input X (N,3,218,298) and a 1-channel `depth` output), named
             demo_iter_1000/2000/3000, to try test_depth/get_depth end to end without trained weights.

Everything is made in memory first: a file already at an output's path is replaced only when it holds the
same bytes (a rerun); anything else there stops the tool before it writes (one line, exit status 2).

Depth from disparity with the calibration in the dataset's docstring (docs/specification.md section 6):
depth_mm = baseline * focal / (disparity + doffs). Pixels without ground truth (NaN/inf disparity, 7.3% of
the view, mostly occlusions at the left edge and object borders) are written as 0, the value the 8-bit
format gives to missing depth: the thesis's metrics clamp it to 1/255 m as the original did and the
standard metrics' valid-pixel mask (1e-3..10 m) leaves it out. They are not filled in. Valid depths
(2.1..5.0 m here) are encoded as the NYU converter does (docs/specification.md section 5): meters/10, clipped below
at 0.025559, times 255, truncated to uint8. When `full` is downscaled, depth is averaged over valid pixels
only (anti-aliased resize of depth*valid divided by that of valid) and a pixel stays missing where less than
half of its footprint had ground truth.
"""
import argparse
import io
import os
import sys

import numpy as np

from eigen_depth import images
from eigen_depth.atomic import make_folder
from eigen_depth.errors import OutputError, exit_status
from eigen_depth.constants import (GT_HEIGHT, GT_WIDTH, MOTORCYCLE_BASELINE_MM, MOTORCYCLE_DOFFS_PX,
                                   MOTORCYCLE_FOCAL_PX, NYU_DEPTH_FLOOR_TENTH_M, DEPTH_UNIT_M)

CROP_TOP = 90                                   # (500 - 320) / 2
WINDOWS = {"left": 0, "centre": 160, "right": 321}  # column offsets of the native-scale 420x320 windows

DEMO_PROTOTXT = """name: "demo_depth"
# A tiny stand-in written by tools/make_examples.py, NOT a thesis network: the thesis's input and a
# 1-channel output named `depth` (N,1,26,36), so the evaluator handles it like a global context net.
layer { name: "input" type: "Input" top: "X" input_param { shape { dim: 1 dim: 3 dim: 218 dim: 298 } } }
layer { name: "conv1" type: "Convolution" bottom: "X" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 11 stride: 4 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 1 kernel_size: 3 pad: 1 } }
layer { name: "scale" type: "Power" bottom: "conv2" top: "depth" power_param { scale: 0.002 shift: 0.3 } }
"""


def disparity_to_depth_m(disparity):
    """Middlebury depth in meters; NaN where the disparity has no ground truth."""
    disparity = np.asarray(disparity, dtype=np.float64)
    valid = np.isfinite(disparity)
    depth = np.full(disparity.shape, np.nan)
    depth[valid] = MOTORCYCLE_BASELINE_MM * MOTORCYCLE_FOCAL_PX / (disparity[valid] + MOTORCYCLE_DOFFS_PX) / 1000.0
    return depth


def encode_depth8(depth_m):
    """8-bit thesis depth: meters/10 clipped to [0.025559, 1], *255, truncated; missing (NaN) -> 0."""
    tenth = np.clip(np.nan_to_num(depth_m, nan=0.0) / DEPTH_UNIT_M, NYU_DEPTH_FLOOR_TENTH_M, 1.0)
    pixels = np.array(tenth * 255, dtype=np.uint8)
    pixels[~np.isfinite(depth_m)] = 0
    return pixels


def downscale_with_holes(depth_m, height, width):
    """Anti-aliased resize of depth over valid pixels only; NaN where under half the footprint is valid."""
    import skimage.transform
    valid = np.isfinite(depth_m)
    filled = np.where(valid, depth_m, 0.0)
    total = skimage.transform.resize(filled, (height, width), order=1, anti_aliasing=True, mode="edge")
    weight = skimage.transform.resize(valid.astype(np.float64), (height, width), order=1, anti_aliasing=True,
                                      mode="edge")
    out = np.full((height, width), np.nan)
    keep = weight >= 0.5
    out[keep] = total[keep] / weight[keep]
    return out


def motorcycle_views():
    """{view: (rgb uint8 320x420x3, depth meters 320x420 with NaN holes)}."""
    import skimage.data
    import skimage.transform
    left, _, disparity = skimage.data.stereo_motorcycle()
    depth = disparity_to_depth_m(disparity)
    views = {}
    height, width = left.shape[:2]
    crop_width = int(round(height * GT_WIDTH / GT_HEIGHT))          # 656: the 420:320 aspect at full height
    x0 = (width - crop_width) // 2
    rgb = skimage.transform.resize(left[:, x0:x0 + crop_width], (GT_HEIGHT, GT_WIDTH), anti_aliasing=True)
    views["full"] = (np.array(np.rint(rgb * 255), dtype=np.uint8),
                     downscale_with_holes(depth[:, x0:x0 + crop_width], GT_HEIGHT, GT_WIDTH))
    for name, x in WINDOWS.items():
        window = (slice(CROP_TOP, CROP_TOP + GT_HEIGHT), slice(x, x + GT_WIDTH))
        views[name] = (np.ascontiguousarray(left[window]), depth[window])
    return views


def test_pair_files(folder):
    """({path: PNG bytes} of the test pairs, a summary line per view)."""
    files, lines = {}, []
    for view, (rgb, depth) in motorcycle_views().items():
        stem = f"motorcycle_{view}"
        files[os.path.join(folder, f"{stem}_colors.png")] = images.encode_png(rgb)
        files[os.path.join(folder, f"{stem}_depth.png")] = images.encode_png(encode_depth8(depth))
        valid = np.isfinite(depth)
        lines.append(f"{stem}: depth {np.nanmin(depth):.3f}..{np.nanmax(depth):.3f} m, "
                     f"{100 * (1 - valid.mean()):.1f}% without ground truth (written as 0)")
    return files, lines


def _pillow_bytes(pixels, image_format, **options):
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def photo_files(folder):
    """{path: bytes} of inputs without GT in the formats get_depth accepts."""
    import skimage.data
    coffee = skimage.data.coffee()
    alpha = np.full(coffee.shape[:2] + (1,), 255, dtype=np.uint8)
    alpha[:, : coffee.shape[1] // 4] = 128                        # a half-transparent band: alpha is ignored
    photos = {
        "camera_gray.png": images.encode_png(skimage.data.camera()),
        "coffee_rgba.png": images.encode_png(np.concatenate([coffee, alpha], axis=2)),
        "chelsea.jpg": _pillow_bytes(skimage.data.chelsea(), "JPEG", quality=92),
        "astronaut_16bit.png": images.encode_png(skimage.data.astronaut().astype(np.uint16) * 257),
        "rocket.tif": _pillow_bytes(skimage.data.rocket(), "TIFF"),
    }
    return {os.path.join(folder, name): data for name, data in photos.items()}


def demo_snapshot_files(folder, iterations=(1000, 2000, 3000)):
    """({path: bytes} of the demo snapshots, their names)."""
    import tempfile
    from eigen_depth.testing import write_random_caffemodel
    files = {}
    with tempfile.TemporaryDirectory() as scratch:
        prototxt = os.path.join(scratch, "demo.prototxt")
        with open(prototxt, "w", encoding="utf-8") as handle:
            handle.write(DEMO_PROTOTXT)
        for index, iteration in enumerate(iterations):
            stem = os.path.join(folder, f"demo_iter_{iteration}")
            caffemodel = os.path.join(scratch, f"{index}.caffemodel")
            write_random_caffemodel(prototxt, caffemodel, seed=index)
            with open(caffemodel, "rb") as handle:
                files[stem + ".caffemodel"] = handle.read()
            files[stem + ".prototxt"] = DEMO_PROTOTXT.encode()
    return files, [f"demo_iter_{i}" for i in iterations]


def refuse_other_files(files):
    """OutputError for the first path that exists with other content than this tool writes there: only new
    files and this tool's own earlier output (the same bytes) are written."""
    for path, data in files.items():
        if not os.path.lexists(path):
            continue
        if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) == len(data):
            with open(path, "rb") as handle:
                if handle.read() == data:
                    continue
        raise OutputError(f"{path}: exists and holds something else, which this tool would replace; move it "
                          f"away or choose another folder")


def write_examples(out, snapshots=False):
    """Writes the sample data into `out`; returns the README's lines."""
    files, pairs = test_pair_files(os.path.join(out, "test"))
    photos = photo_files(os.path.join(out, "photos"))
    files.update(photos)
    readme = ["Sample data written by tools/make_examples.py (see its docstring for every choice).", "",
              "test/ (Middlebury 2014 motorcycle, scikit-image; 8-bit depth = meters/10*255, 0 = no GT):"]
    readme += ["  " + line for line in pairs] + ["", "photos/: " + ", ".join(sorted(map(os.path.basename, photos)))]
    if snapshots:
        snaps, names = demo_snapshot_files(os.path.join(out, "snaps"))
        files.update(snaps)
        readme += ["", "snaps/ (tiny demo net, RANDOM weights): " + ", ".join(names)]
    files[os.path.join(out, "README.txt")] = ("\n".join(readme) + "\n").encode()
    refuse_other_files(files)
    for path, data in files.items():
        make_folder(os.path.dirname(path))
        images.write_bytes(path, data)
    return readme


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write test/, photos/ (and snaps/) into")
    parser.add_argument("--snapshots", action="store_true", help="also write random-weight demo snapshots")
    args = parser.parse_args(argv)

    def run():
        print("\n".join(write_examples(args.out, args.snapshots)))
    return exit_status("make_examples.py", run)


if __name__ == "__main__":
    sys.exit(main())
