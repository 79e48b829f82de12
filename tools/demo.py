#!/usr/bin/env python
"""`make demo`: the whole pipeline on this machine's CPU in a few minutes, with no downloads.

1. example data: the real Middlebury RGB-D pair that ships with scikit-image, in the thesis's test format,
   plus photos without depth (tools/make_examples.py);
2. synthetic training data: rendered rooms with exact depth, written as the thesis's LMDBs;
3. the thesis's staged training (global -> gradient -> refining net), briefly;
4. tools/test_depth.py over the refining net's snapshots, on the synthetic test rooms and on the real pair,
   and tools/get_depth.py on the photos.

Steps whose output exists are skipped, so a second run only re-evaluates. The weights come from a short
run on synthetic rooms, not from the thesis: expect rough depth, not the published numbers.

    python tools/demo.py [--out demo] [--iters 60] [--scenes 96]
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def say(text):
    print(f"\n== {text}", flush=True)


def tool(name, *args):
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", name), *map(str, args)], check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo")
    parser.add_argument("--iters", type=int, default=60, help="training iterations per stage")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--scenes", type=int, default=96, help="synthetic rooms to render")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    started = time.perf_counter()
    print("eigen_depth demo: everything below runs on the CPU from data made here; the weights come from a "
          "short training run on synthetic rooms, NOT from the thesis.", flush=True)

    examples = os.path.join(out, "examples")
    say("1/4 example data (Middlebury motorcycle pair from scikit-image, photos)")
    if os.path.isdir(os.path.join(examples, "test")):
        print(f"exists: {examples}")
    else:
        tool("make_examples.py", examples)

    synthetic, lmdb = os.path.join(out, "synthetic"), os.path.join(out, "lmdb")
    say(f"2/4 synthetic training data ({args.scenes} rendered rooms -> LMDBs)")
    tool("make_synthetic.py", args.scenes, synthetic, "--seed", 7)
    if os.path.exists(os.path.join(lmdb, "train_color_298x218")):
        print(f"exists: {lmdb}")
    else:
        tool("make_lmdb.py", synthetic, lmdb)

    train = os.path.join(out, "train")
    snaps = {stage: os.path.join(train, stage, "snaps") for stage in ("global", "gradient", "refine")}
    last = {stage: os.path.join(folder, f"_iter_{args.iters}.caffemodel") for stage, folder in snaps.items()}
    say(f"3/4 staged training, {args.iters} iterations per stage, batch {args.batch} (CPU)")
    common = ["--data-root", lmdb, "--iters", args.iters, "--batch", args.batch, "--test-interval", 0,
              "--out", train, "--device", "cpu"]
    for stage in ("global", "gradient"):
        if os.path.exists(last[stage]):
            print(f"exists: {last[stage]}")
        else:
            tool("train.py", "--stage", stage, *common)
    if os.path.exists(last["refine"]):
        print(f"exists: {last['refine']}")
    else:
        tool("train.py", "--stage", "refine", "--global", last["global"], "--gradient", last["gradient"], *common)

    say("4/4 evaluation with tools/test_depth.py and tools/get_depth.py")
    results = os.path.join(out, "results")
    tool("test_depth.py", os.path.join(synthetic, "test"), os.path.join(synthetic, "test"),
         os.path.join(results, "synthetic"), snaps["refine"], "--device", "cpu")
    tool("test_depth.py", os.path.join(examples, "test"), os.path.join(examples, "test"),
         os.path.join(results, "middlebury"), snaps["refine"], "--device", "cpu")
    tool("get_depth.py", os.path.join(examples, "photos"), os.path.join(results, "photos"), snaps["refine"],
         "--device", "cpu")

    name = f"_iter_{args.iters}"
    print(f"\nDone in {time.perf_counter() - started:.0f} s. The weights come from {args.iters} iterations per "
          f"stage on {args.scenes} synthetic rooms, not from the thesis.")
    for label, folder in (("synthetic test rooms", "synthetic"), ("real Middlebury pair", "middlebury")):
        base = os.path.join(results, folder)
        print(f"- {label}: metrics {os.path.join(base, 'results.csv')}; contact sheet "
              f"{os.path.join(base, name, 'contact_sheet.png')}; MVN-fitted outputs {os.path.join(base, name)}; "
              f"raw outputs {os.path.join(base + '_abs', name)}")
    print(f"- photos without depth: {os.path.join(results, 'photos_abs', name)}")
    print(f"- training logs and loss curves: {train}/<stage>/train_log.csv, loss_curve.png")


if __name__ == "__main__":
    main()
