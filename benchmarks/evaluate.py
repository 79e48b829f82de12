"""Times the snapshot evaluator (eigen_depth.evaluate, i.e. tools/test_depth.py) against a reference pipeline
that follows the original test_depth's per-image algorithm (docs/specification.md section 4), on the same snapshot and
images in one run, and checks that both give the same ten metrics.

    python benchmarks/evaluate.py [--images 48] [--net refining/norm_abs] [--repeat 2] [--keep DIR]

Reference, one image at a time as the original: scikit-image read and resize, x255 - 127, OpenCV dnn forward
(an independent Caffe implementation in place of Caffe), scipy.ndimage.zoom on the (1, 1, h, w) output
as the original called it, the ten metrics in NumPy, the MVN fit, V(d), six cv2.imwrite PNGs (compression 8).
Ours: the evaluator with its defaults (batched torch forward, threads, vectorised zoom and metrics), which
also computes the standard and oracle metrics and writes a contact sheet, per-image CSV and results files.

Snapshot: the thesis's final network (refining, norm_abs) with random weights, its last bias set so the
output is near 3 m; images: 420x320 windows (and their mirror images) of the Middlebury pair in scikit-image.
Per-image times are whole-run wall times (model loading included) divided by the number of images; the
pipelines alternate and each one's best run counts. Goal: ours >= 2x faster, ten metrics within 1e-5 relative.
Also timed in each round: ours with --no-images, with the original's zlib strategy (--png-strategy default), and
our net alone (the evaluator's model and batch size on the same images, loading not counted): goal ours <= 1.2x
the net alone. The PNGs' encoding is timed alone afterwards, for the least time any pipeline needs beyond the
net's.
"""
import argparse
import contextlib
import importlib.util
import io
import os
import shutil
import tempfile
import time

import numpy as np

from eigen_depth.prototxt import ROOT as PROTOTXT_ROOT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TITLES = ["AbsRelDiff", "SqrRelDiff", "RMSE", "RMSELog", "SIMSE", "Log10", "MVN", "Threshold 1.25",
          "Threshold 1.25^2", "Threshold 1.25^3"]


# ---------------------------------------------------------------------------------------------- data
def make_images(folder, count, seed=0):
    """`count` 420x320 pairs in the thesis's format: random windows of the motorcycle view, every other one
    mirrored; depth from the calibration (tools/make_examples.py's conversion)."""
    import cv2
    import skimage.data
    spec = importlib.util.spec_from_file_location("make_examples", os.path.join(ROOT, "tools", "make_examples.py"))
    examples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(examples)
    left, _, disparity = skimage.data.stereo_motorcycle()
    depth8 = examples.encode_depth8(examples.disparity_to_depth_m(disparity))
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for index in range(count):
        y, x = int(rng.integers(0, 500 - 320 + 1)), int(rng.integers(0, 741 - 420 + 1))
        rgb, depth = left[y:y + 320, x:x + 420], depth8[y:y + 320, x:x + 420]
        if index % 2:
            rgb, depth = rgb[:, ::-1], depth[:, ::-1]
        cv2.imwrite(os.path.join(folder, f"{index:05d}_colors.png"), np.ascontiguousarray(rgb[:, :, ::-1]))
        cv2.imwrite(os.path.join(folder, f"{index:05d}_depth.png"), np.ascontiguousarray(depth))


def make_snapshot(folder, net_name, seed=1):
    """The deploy net of eigen_depth/prototxt/<net_name> with random weights, output shifted to about 0.3 (3 m)."""
    import torch
    from eigen_depth.testing import write_random_caffemodel
    name = net_name.replace("/", "_") + "_random"
    prototxt = os.path.join(folder, name + ".prototxt")
    caffemodel = os.path.join(folder, name + ".caffemodel")
    if os.path.exists(caffemodel):
        return name
    shutil.copy(os.path.join(PROTOTXT_ROOT, net_name, "net_deploy.prototxt"), prototxt)
    net = write_random_caffemodel(prototxt, caffemodel, seed=seed)
    last = [layer for layer in net.layers if len(layer.blobs) == 2][-1]      # the last layer with a bias
    probe = torch.from_numpy(np.random.default_rng(seed).uniform(-127, 128, (2, 3, 218, 298)).astype(np.float32))
    with torch.no_grad():
        output = next(iter(net({"X": probe}).values()))
        scale = 0.01 if "refine" in last.name else 1.0   # the refining net's Power layer scales by 0.01
        last.blobs[1] += float(0.3 - output.mean()) / scale
        net.save(caffemodel)
    return name


# ---------------------------------------------------------------------------------------------- reference
def reference_run(input_dir, out_dir, snaps_dir):
    """The original test_depth's algorithm (eigen_depth.original), one image at a time with OpenCV's dnn as the
    net; returns ({snapshot: ten means}, {stage: seconds})."""
    from eigen_depth import original
    for name in os.listdir(snaps_dir):
        if name.endswith(".caffemodel"):
            for folder in (os.path.join(out_dir, name[:-11]), os.path.join(out_dir + "_abs", name[:-11])):
                shutil.rmtree(folder, ignore_errors=True)
    stages = {}
    per_image = original.test_depth(input_dir, input_dir, out_dir, snaps_dir, original.cv2_forward_of(),
                                    stages=stages)
    return {snap: np.mean(list(values.values()), axis=0) for snap, values in per_image.items()}, stages


# ---------------------------------------------------------------------------------------------- ours
def ours_run(input_dir, out_dir, snaps_dir, batch_size, device, write_images=True, **settings):
    from eigen_depth import evaluate
    options = evaluate.Options(tool="test_depth", input_dir=input_dir, gt_dir=input_dir, out_dir=out_dir,
                               snaps_dir=snaps_dir, progress=False, batch_size=batch_size, device=device,
                               write_images=write_images, **settings)
    with contextlib.redirect_stdout(io.StringIO()):
        outcome = evaluate.run(options)
    if outcome.skipped:
        raise SystemExit(f"the evaluator skipped {outcome.skipped}")
    return {name: np.array([values[t] for t in TITLES]) for name, values in outcome.results.items()}


def forward_alone(input_dir, snaps_dir, batch_size, device):
    """Seconds of the evaluator's net alone over the same images at the same batch size: the model as the
    evaluator loads it (loading not counted, its first calls are), the batches prepared beforehand."""
    from concurrent.futures import ThreadPoolExecutor

    from eigen_depth.conventions import THESIS
    from eigen_depth.devices import default_batch_size, resolve_device
    from eigen_depth.evaluate.discovery import find_pairs, find_snapshots
    from eigen_depth.evaluate.source import ImageSource
    from eigen_depth.inference import ModelLoader
    device = resolve_device(device)
    snapshot = find_snapshots(snaps_dir, None)[0]
    model = ModelLoader()(snapshot, device, None, "depth")
    with ThreadPoolExecutor(2) as pool:
        source = ImageSource(find_pairs(input_dir, input_dir, "png8"), "depth", pool, encode=False, cache_bytes=0)
        batches = list(source.batches(*model.input_size, batch_size or default_batch_size(device), THESIS))
    start = time.perf_counter()
    for batch in batches:
        model.predict(batch.inputs)
    return time.perf_counter() - start


def encoding_ms(out_dir, count, strategy):
    """Milliseconds of one core per image to encode the PNGs a test_depth run wrote (each distinct file
    once: the input and GT pictures are the same in both folders), at the compression they were written with
    and zlib strategy `strategy`, timed here again from their pixels."""
    import glob

    import cv2
    from eigen_depth.constants import PNG_COMPRESSION
    from eigen_depth.images import encode_png
    paths = [p for p in glob.glob(os.path.join(out_dir, "*", "*.png")) if not p.endswith("contact_sheet.png")]
    paths += glob.glob(os.path.join(out_dir + "_abs", "*", "*_depth.png"))
    seconds = 0.0
    for path in paths:
        pixels = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if pixels.ndim == 3:
            pixels = pixels[:, :, ::-1]
        start = time.perf_counter()
        encode_png(pixels, PNG_COMPRESSION, strategy)
        seconds += time.perf_counter() - start
    return seconds / count * 1000


def report_memory(images, snaps, folder, device):
    """Peak resident memory of `eigen-depth test-depth` alone (a fresh process) against the snapshot's weights
    file plus one batch of every blob of its deploy net (float32, the evaluator's default batch size)."""
    import sys

    import torch
    from eigen_depth.devices import default_batch_size
    from eigen_depth.net import CaffeNet
    from memory import command_peak_rss_mb
    name = next(f[:-len(".caffemodel")] for f in sorted(os.listdir(snaps)) if f.endswith(".caffemodel"))
    batch = default_batch_size(torch.device("cpu" if device == "auto" else device))
    net = CaffeNet(os.path.join(snaps, name + ".prototxt"))
    weights_mb = os.path.getsize(os.path.join(snaps, name + ".caffemodel")) / 2 ** 20
    activations_mb = sum(int(np.prod(shape[1:])) for shape in net.blob_shapes.values()) * 4 * batch / 2 ** 20
    peak = command_peak_rss_mb([sys.executable, "-m", "eigen_depth", "test-depth", images, images,
                                os.path.join(folder, "out_memory"), snaps, "--no-progress", "--device", device])
    bound = weights_mb + activations_mb
    print(f"peak memory of test-depth: {peak:.0f} MiB; weights file {weights_mb:.0f} MiB + every blob at batch {batch} "
          f"{activations_mb:.0f} MiB = {bound:.0f} MiB; ratio {peak / bound:.2f} (goal <= 1.3: "
          f"{'met' if peak / bound <= 1.3 else 'NOT met'}; the libraries alone take about 230 MiB)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--net", default="refining/norm_abs", help="eigen_depth/prototxt/<net>/net_deploy.prototxt")
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs per pipeline (best counts)")
    parser.add_argument("--batch-size", type=int, help="the evaluator's batch size (default: its own)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--keep", help="folder to keep (and reuse) the images and the snapshot in")
    args = parser.parse_args()

    import torch
    folder = args.keep or tempfile.mkdtemp(prefix="eigen_depth_bench_eval_")
    images, snaps = os.path.join(folder, f"images_{args.images}"), os.path.join(folder, "snaps")
    if not os.path.isdir(images):
        make_images(images, args.images)
    os.makedirs(snaps, exist_ok=True)
    print(f"snapshot: eigen_depth/prototxt/{args.net} with random weights ...", flush=True)
    make_snapshot(snaps, args.net)
    count = args.images

    times = {"reference": [], "ours": [], "ours_no_images": [], "ours_png_default": [], "forward": []}
    reference = ours = stages = None
    for _ in range(args.repeat):
        start = time.perf_counter()
        reference, stages_now = reference_run(images, os.path.join(folder, "out_reference"), snaps)
        times["reference"].append(time.perf_counter() - start)
        if stages is None or times["reference"][-1] == min(times["reference"]):
            stages = stages_now
        start = time.perf_counter()
        ours = ours_run(images, os.path.join(folder, "out_ours"), snaps, args.batch_size, args.device)
        times["ours"].append(time.perf_counter() - start)
        for key, write_images, settings in (("ours_no_images", False, {}),
                                            ("ours_png_default", True, {"png_strategy": "default"})):
            start = time.perf_counter()
            ours_run(images, os.path.join(folder, "out_" + key), snaps, args.batch_size, args.device, write_images,
                     **settings)
            times[key].append(time.perf_counter() - start)
        times["forward"].append(forward_alone(images, snaps, args.batch_size, args.device))

    best = {k: min(v) / count * 1000 for k, v in times.items()}
    print(f"{count} images 420x320, net {args.net}; torch {torch.__version__} on {args.device} "
          f"({torch.get_num_threads()} threads), {os.cpu_count()} CPUs; best of {args.repeat} alternating runs")
    print(f"{'pipeline':<58}{'ms / image':>12}")
    print(f"{'reference (original algorithm, cv2.dnn, scipy, numpy, cv2.imwrite)':<58}{best['reference']:>12.1f}")
    for stage, seconds in stages.items():
        print(f"{'    ' + stage:<58}{seconds / count * 1000:>12.1f}")
    print(f"{'ours (eigen_depth.evaluate, defaults)':<58}{best['ours']:>12.1f}")
    print(f"{'ours without images (--no-images)':<58}{best['ours_no_images']:>12.1f}")
    print(f"{'ours, the original zlib strategy (--png-strategy default)':<58}{best['ours_png_default']:>12.1f}")
    print(f"{'our net alone (same model, batches and batch size)':<58}{best['forward']:>12.1f}")
    ratio = best["reference"] / best["ours"]
    print(f"speed-up: {ratio:.2f}x (goal >= 2x: {'met' if ratio >= 2 else 'NOT met'})")
    bound = best["ours"] / best["forward"]
    print(f"ours / net alone: {bound:.2f}x (goal <= 1.2x: {'met' if bound <= 1.2 else 'NOT met'}); without images "
          f"{best['ours_no_images'] / best['forward']:.2f}x; --png-strategy default "
          f"{best['ours_png_default'] / best['forward']:.2f}x")
    from eigen_depth.constants import PNG_STRATEGY
    cores = torch.get_num_threads()
    for strategy in (PNG_STRATEGY, "default"):
        encode = encoding_ms(os.path.join(folder, "out_ours"), count, strategy)
        print(f"encoding the written PNGs alone (zlib strategy {strategy}): {encode:.1f} ms of one core per image; "
              f"with the net on all {cores} cores no pipeline can go below (net + encoding / {cores}) / net = "
              f"{(best['forward'] + encode / cores) / best['forward']:.2f}x")
    worst = 0.0
    for snap, expected in reference.items():
        got = ours[snap]
        relative = np.abs(got - expected) / np.maximum(np.abs(expected), 1e-12)
        worst = max(worst, float(relative.max()))
        for title, a, b, r in zip(TITLES, expected, got, relative):
            print(f"  {title:<18} reference {a:.9g}  ours {b:.9g}  rel diff {r:.2e}")
    print(f"ten metrics: max relative difference {worst:.2e} (goal <= 1e-5: {'met' if worst <= 1e-5 else 'NOT met'})")
    report_memory(images, snaps, folder, args.device)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
