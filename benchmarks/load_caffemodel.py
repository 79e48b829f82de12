"""Times loading a thesis-size caffemodel (the refining net of docs/specification.md section 3.4, random weights, ~290 MB):
eigen_depth.caffe.load_weights against cv2.dnn.readNetFromCaffe on the same file, in one run.

    python benchmarks/load_caffemodel.py [--repeat 5] [--keep DIR]

Prints the best-of-N warm-cache times, the ratio (goal <= 0.25) and each loader's extra resident
memory (measured in a fresh subprocess, after touching every weight) relative to the file size.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from eigen_depth.prototxt import ROOT as PROTOTXT_ROOT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTOTXT = os.path.join(PROTOTXT_ROOT, "refining", "norm_abs", "net_deploy.prototxt")

MEMORY_PROBE = r"""
import resource, sys, numpy as np
def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
mode, prototxt, path = sys.argv[1:4]
if mode == "cv2":
    import cv2
else:
    from eigen_depth.caffe import load_weights
before = rss_kb()
if mode == "cv2":
    net = cv2.dnn.readNetFromCaffe(prototxt, path)
else:
    weights = load_weights(path) if mode == "mmap" else None
    if mode == "read":
        from eigen_depth.caffe.io import read_caffemodel, blob_to_array
        model = read_caffemodel(path, use_mmap=False)
        weights = {l.name: [blob_to_array(b) for b in l.blobs] for l in model.layer if len(l.blobs)}
    total = sum(float(a.sum()) for arrays in weights.values() for a in arrays)  # touch every page
print(rss_kb() - before)
"""


def best_time(function, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
        del result
    return min(times)


def extra_memory_mb(mode, path):
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, mode, PROTOTXT, path], check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", help="folder to keep (and reuse) the generated caffemodel in")
    args = parser.parse_args()

    import cv2
    from eigen_depth.caffe import load_weights
    from eigen_depth.caffe.io import blob_to_array, read_caffemodel
    from eigen_depth.testing import write_random_caffemodel

    folder = args.keep or tempfile.mkdtemp(prefix="eigen_depth_bench_")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "refining_norm_abs_random.caffemodel")
    if not os.path.exists(path):
        print(f"writing a thesis-size caffemodel to {path} ...", flush=True)
        write_random_caffemodel(PROTOTXT, path, seed=1)
    size_mb = os.path.getsize(path) / 2**20
    with open(path, "rb") as handle:  # warm the page cache
        while handle.read(1 << 24):
            pass

    def ours_mmap():
        return load_weights(path)

    def ours_read():
        model = read_caffemodel(path, use_mmap=False)
        return {l.name: [blob_to_array(b) for b in l.blobs] for l in model.layer if len(l.blobs)}

    def opencv():
        return cv2.dnn.readNetFromCaffe(PROTOTXT, path)

    ours_mmap(), ours_read(), opencv()
    t_mmap = best_time(ours_mmap, args.repeat)
    t_read = best_time(ours_read, args.repeat)
    t_cv2 = best_time(opencv, args.repeat)
    print(f"caffemodel: {size_mb:.1f} MB, {len(load_weights(path))} layers with weights; best of {args.repeat}, warm cache")
    print(f"{'loader':<40}{'seconds':>10}{'ratio to cv2':>15}{'extra RSS':>14}")
    rows = [("eigen_depth load_weights (mmap, default)", t_mmap, "mmap"),
            ("eigen_depth read_caffemodel(use_mmap=False)", t_read, "read"),
            ("cv2.dnn.readNetFromCaffe", t_cv2, "cv2")]
    for label, seconds, mode in rows:
        memory = extra_memory_mb(mode, path)
        print(f"{label:<44}{seconds:>8.3f}{seconds / t_cv2:>13.3f}x{memory / size_mb:>11.2f}x file")
    print(f"goal: ours <= 0.25 s and <= 0.25x cv2: {'met' if t_mmap <= 0.25 and t_mmap / t_cv2 <= 0.25 else 'NOT met'}")
    if not args.keep:
        os.remove(path)
        os.rmdir(folder)


if __name__ == "__main__":
    main()
