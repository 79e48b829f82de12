#!/usr/bin/env python
"""`make demo`: the whole pipeline on this machine's CPU in about six minutes, with no downloads.

1. example data: the real Middlebury RGB-D pair that ships with scikit-image, in the thesis's test format,
   plus photos without depth (tools/make_examples.py);
2. rendered rooms with exact depth: ROOMS training rooms as the thesis's LMDBs, and held-out rooms from
   another seed;
3. the thesis's staged training (global -> gradient -> refining net) with the CPU recipe (tools/train.py
   --recipe cpu), MINUTES minutes for the three stages together;
4. tools/test_depth.py over the refining net's snapshot, on the held-out rooms and on the real pair, and
   tools/get_depth.py on the photos;
5. the refining and global nets' held-out MVN error and RMSE next to a constant-depth baseline (the mean
   training depth everywhere).

Steps whose output exists are skipped, so a second run only re-evaluates. The weights come from a short run
on rendered rooms, not from the thesis: expect rough depth, not the published numbers.

    python tools/demo.py [--out demo] [--minutes 3] [--rooms 600]
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from eigen_depth.errors import exit_status
from eigen_depth.experiment import RoomSets, constant_snapshot, last_snapshot, measure
from eigen_depth.options import non_negative_int, positive_float, positive_int

SHARES = {"global": 0.45, "gradient": 0.15, "refine": 0.40}  # of the training minutes
HELDOUT_ROOMS = 24


def say(text):
    print(f"\n== {text}", flush=True)


def tool(name, *args):
    """Runs tools/<name>; a failure ends the demo with the tool's status (the tool has said why)."""
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", name), *map(str, args)])
    if done.returncode:
        sys.exit(done.returncode)


def train(train_dir, lmdb, minutes):
    """The three stages with the CPU recipe; returns {stage: last snapshot}."""
    common = ["--data-root", lmdb, "--recipe", "cpu", "--test-interval", 0, "--out", train_dir, "--device", "cpu"]
    snapshots = {}
    for stage in ("global", "gradient", "refine"):
        found = last_snapshot(os.path.join(train_dir, stage, "snaps"))
        if found:
            print(f"exists: {found}")
        else:
            extra = ["--global", snapshots["global"], "--gradient", snapshots["gradient"]] if stage == "refine" else []
            tool("train.py", "--stage", stage, "--minutes", f"{minutes * SHARES[stage]:.3f}", *extra, *common)
            found = last_snapshot(os.path.join(train_dir, stage, "snaps"))
        snapshots[stage] = found
    return snapshots


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo")
    parser.add_argument("--minutes", type=positive_float, default=3.0,
                        help="training time of the three stages together")
    parser.add_argument("--rooms", type=positive_int, default=600, help="rendered training rooms (at least 2)")
    parser.add_argument("--seed", type=non_negative_int, default=7)
    args = parser.parse_args()
    if args.rooms < 2:
        parser.error("argument --rooms: must be at least 2, not 1")
    out = os.path.abspath(args.out)
    started = time.perf_counter()
    print("eigen_depth demo: everything below runs on the CPU from data made here; the weights come from a "
          "short training run on rendered rooms, NOT from the thesis.", flush=True)

    examples = os.path.join(out, "examples")
    say("1/5 example data (Middlebury motorcycle pair from scikit-image, photos)")
    if os.path.isdir(os.path.join(examples, "test")):
        print(f"exists: {examples}")
    else:
        tool("make_examples.py", examples)

    say(f"2/5 rendered rooms: {args.rooms} for training (LMDBs), {HELDOUT_ROOMS} held out (another seed)")
    sets = RoomSets(os.path.join(out, "rooms"))
    print(f"ready in {sets.make(args.rooms, HELDOUT_ROOMS, args.seed, log=print):.0f} s")

    train_dir = os.path.join(out, "train")
    say(f"3/5 staged training with the CPU recipe, {args.minutes:g} minutes for the three stages")
    snapshots = train(train_dir, sets.lmdb, args.minutes)

    say("4/5 evaluation with tools/test_depth.py and tools/get_depth.py")
    results = os.path.join(out, "results")
    refine_snaps, name = os.path.split(snapshots["refine"])
    name = name[:-len(".caffemodel")]
    for label, folder in (("rooms", sets.heldout), ("middlebury", os.path.join(examples, "test"))):
        tool("test_depth.py", folder, folder, os.path.join(results, label), refine_snaps, "--snapshots", name,
             "--device", "cpu")
    tool("get_depth.py", os.path.join(examples, "photos"), os.path.join(results, "photos"), refine_snaps,
         "--snapshots", name, "--device", "cpu")

    say("5/5 held-out rooms: the nets against a constant-depth baseline")
    constant = constant_snapshot(os.path.join(out, "constant"), sets.mean_training_depth_m())
    print("| model | MVN error | RMSE (m) |\n|---|---|---|")
    for label, snapshot in (("constant (mean training depth)", constant), ("global net", snapshots["global"]),
                            ("refining net", snapshots["refine"])):
        scores = measure(snapshot, sets.heldout, os.path.join(results, "baseline", label.split()[0]))
        mvn = 1.0 if snapshot == constant else scores["MVN"]  # a constant map's MVN error is 1 by definition
        print(f"| {label} | {mvn:.3f} | {scores['RMSE']:.3f} |")

    print(f"\nDone in {time.perf_counter() - started:.0f} s. The weights come from {args.minutes:g} minutes of "
          f"training on {args.rooms} rendered rooms, not from the thesis.")
    for label, folder in (("held-out rooms", "rooms"), ("real Middlebury pair", "middlebury")):
        base = os.path.join(results, folder)
        print(f"- {label}: metrics {os.path.join(base, 'results.csv')}; contact sheet "
              f"{os.path.join(base, name, 'contact_sheet.png')}; MVN-fitted outputs {os.path.join(base, name)}; "
              f"raw outputs {os.path.join(base + '_abs', name)}")
    print(f"- photos without depth: {os.path.join(results, 'photos_abs', name)}")
    print(f"- training logs and loss curves: {train_dir}/<stage>/train_log.csv, loss_curve.png")


if __name__ == "__main__":
    sys.exit(exit_status("demo", main))
