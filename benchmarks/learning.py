"""Does the staged pipeline learn depth? Trains the thesis's three stages from fillers with the CPU recipe on
rendered rooms and measures every stage, with the project's evaluator, on rooms it never saw.

1. renders TRAIN_ROOMS rooms (seed SEED; a few of them form the LMDBs' test split, used only for the test
   losses in the logs) into the thesis's LMDBs, and HELDOUT_ROOMS rooms from another seed as the held-out
   set; writes the Middlebury examples of tools/make_examples.py (real RGB-D, never trained on);
2. trains global (norm) -> gradient (norm) -> refining (norm_abs, stages 1-2 frozen) with
   `--recipe cpu`, the three together in about MINUTES minutes (45% / 15% / 40%): each stage times its first
   iterations and sets its iteration count from them;
3. with --successors fcrn,densedepth, also trains those families (docs/successors.md) with their CPU recipes
   from fillers on the same training rooms (read from the pair folders at each net's size), each for
   --successor-minutes (default: MINUTES, the thesis's three stages' budget);
4. evaluates `constant` (the mean training depth everywhere), `global`, `refine` and the successors with
   test_depth on both sets (each net read by its own convention) and prints and writes DIR/results.json (MVN
   error, RMSE in meters, delta1 per model and set), with the goals and whether each is met.
   DIR/<stage>/snaps/ keeps the final snapshots and their deploy nets; DIR/eval/ holds the evaluator's
   outputs (the refining net's held-out contact sheet among them).

Held-out rooms choose nothing: every setting of the recipe was chosen on training rooms.

    python benchmarks/learning.py --out learning [--minutes 60] [--successors fcrn,densedepth] [--no-batch-norm]
                                  [--no-global-start]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from eigen_depth.experiment import (HELDOUT_SEED_OFFSET, RoomSets, constant_snapshot, last_snapshot, measure,
                                    snapshot_iteration)
from eigen_depth.prototxt import SUCCESSORS
from eigen_depth.train import train_stage

SHARES = {"global": 0.45, "gradient": 0.15, "refine": 0.40}
VARIANTS = {"global": "norm", "gradient": "norm", "refine": "norm_abs"}


def make_data(out, train_rooms, heldout_rooms, seed, log):
    """The experiment's RoomSets under OUT/data, with the Middlebury examples."""
    sets = RoomSets(os.path.join(out, "data"))
    seconds = sets.make(train_rooms, heldout_rooms, seed, log)
    if not os.path.isdir(sets.middlebury):
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_examples.py"),
                        os.path.dirname(sets.middlebury)], check=True, stdout=subprocess.DEVNULL)
    log(f"data ready in {seconds:.0f} s")
    return sets


def training_minutes(stage_dir):
    """A finished stage's training time from its log (the last row's seconds)."""
    import csv
    with open(os.path.join(stage_dir, "train_log.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    return float(rows[-1]["seconds"]) / 60 if rows else 0.0


def train(out, lmdb, minutes, log, batch_norm=True, global_start=True):
    """Trains the three stages (a stage whose snapshot exists is kept: a second run only re-evaluates);
    returns ({stage: last snapshot}, {stage: iterations}, {stage: training minutes from its log})."""
    snapshots = {}
    common = dict(data_root=lmdb, out=out, device="cpu", recipe="cpu", test_interval=0, progress=False, echo=log,
                  batch_norm=batch_norm, global_start=global_start)
    for stage in ("global", "gradient", "refine"):
        snapshots[stage] = last_snapshot(os.path.join(out, stage, "snaps"))
        if snapshots[stage]:
            log(f"{stage}: kept {snapshots[stage]}")
            continue
        extra = dict(global_snapshot=snapshots.get("global"), gradient_snapshot=snapshots.get("gradient")) \
            if stage == "refine" else {}
        snapshots[stage] = train_stage(stage, VARIANTS[stage], minutes=minutes * SHARES[stage], **common, **extra)
        log(f"{stage}: {snapshots[stage]}")
    iterations = {stage: snapshot_iteration(path) for stage, path in snapshots.items()}
    minutes_taken = {stage: training_minutes(os.path.join(out, stage)) for stage in snapshots}
    return snapshots, iterations, minutes_taken


def train_successor(out, family, pairs_root, minutes, log):
    """Trains one successor family from fillers with its CPU recipe on the training rooms' pair folders (kept
    if its snapshot exists); returns (snapshot, iterations, training minutes)."""
    snapshot = last_snapshot(os.path.join(out, family, "snaps"))
    if snapshot:
        log(f"{family}: kept {snapshot}")
    else:
        snapshot = train_stage(family, data="pairs", data_root=pairs_root, out=out, device="cpu", recipe="cpu",
                               test_interval=0, progress=False, echo=log, minutes=minutes)
    return snapshot, snapshot_iteration(snapshot), training_minutes(os.path.join(out, family))


def goals(results):
    """The goals of the learning benchmark, each with its measured values and whether it is met."""
    held = {model: results[model]["heldout"] for model in results}
    middle = {model: results[model]["middlebury"] for model in results}
    return [
        {"goal": "held-out: global MVN error <= 0.6", "value": held["global"]["MVN"],
         "met": held["global"]["MVN"] <= 0.6},
        {"goal": "held-out: refine MVN error <= 0.9 x global's", "value": held["refine"]["MVN"] / held["global"]["MVN"],
         "met": held["refine"]["MVN"] <= 0.9 * held["global"]["MVN"]},
        {"goal": "held-out: refine RMSE <= 0.7 x the constant baseline's",
         "value": held["refine"]["RMSE"] / held["constant"]["RMSE"],
         "met": held["refine"]["RMSE"] <= 0.7 * held["constant"]["RMSE"]},
        {"goal": "Middlebury: refine MVN error < the constant baseline's", "value": middle["refine"]["MVN"],
         "met": middle["refine"]["MVN"] < middle["constant"]["MVN"]},
    ]


def table(results):
    lines = ["| model | held-out MVN | held-out RMSE (m) | held-out delta1 | Middlebury MVN | Middlebury RMSE (m) "
             "| Middlebury delta1 |", "|---|---|---|---|---|---|---|"]
    for model, sets in results.items():
        h, m = sets["heldout"], sets["middlebury"]
        lines.append(f"| {model} | {h['MVN']:.3f} | {h['RMSE']:.3f} | {h['delta1']:.3f} | {m['MVN']:.3f} | "
                     f"{m['RMSE']:.3f} | {m['delta1']:.3f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (a fresh one: training refuses to overwrite "
                                                     "another run's snapshots)")
    parser.add_argument("--minutes", type=float, default=60.0, help="training time of the three stages together")
    parser.add_argument("--train-rooms", type=int, default=12000,
                        help="rendered training rooms (default 12000: with 3000, the global net fitted rooms it had "
                             "seen before in the last third of an hour-long run and no longer improved on others)")
    parser.add_argument("--heldout-rooms", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--successors", default="", help=f"comma-separated families to compare ({', '.join(SUCCESSORS)})")
    parser.add_argument("--successor-minutes", type=float, help="training time of each successor (default: --minutes)")
    parser.add_argument("--no-global-start", action="store_true",
                        help="start the refining net from its fillers (the recipe before it passed stage 1's depth on)")
    parser.add_argument("--no-batch-norm", action="store_true",
                        help="the thesis's stages without the CPU recipe's batch normalisation (as before it had one)")
    args = parser.parse_args(argv)
    successors = [f for f in args.successors.split(",") if f]
    unknown = [f for f in successors if f not in SUCCESSORS]
    if unknown:
        parser.error(f"unknown successor {', '.join(unknown)}: use {', '.join(SUCCESSORS)}")
    args.successor_minutes = args.successor_minutes or args.minutes
    for name in ("minutes", "train_rooms", "heldout_rooms", "successor_minutes"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")

    def log(text):
        print(text, flush=True)

    started = time.perf_counter()
    sets = make_data(args.out, args.train_rooms, args.heldout_rooms, args.seed, log)
    train_mean_m = sets.mean_training_depth_m()
    snapshots, iterations, minutes_taken = train(args.out, sets.lmdb, args.minutes, log, not args.no_batch_norm,
                                                 not args.no_global_start)
    snapshots = {"constant": constant_snapshot(os.path.join(args.out, "constant", "snaps"), train_mean_m),
                 "global": snapshots["global"], "refine": snapshots["refine"]}
    for family in successors:
        snapshots[family], iterations[family], minutes_taken[family] = train_successor(
            args.out, family, sets.train_pairs, args.successor_minutes, log)
    results = {}
    for model, snapshot in snapshots.items():
        results[model] = {
            "heldout": measure(snapshot, sets.heldout, os.path.join(args.out, "eval", f"{model}_heldout"),
                               write_images=model == "refine"),
            "middlebury": measure(snapshot, sets.middlebury, os.path.join(args.out, "eval", f"{model}_middlebury"))}
    # a constant map normalises to zeros: its MVN error is 1 by definition (the evaluator's MVN-fitted view
    # of it is the GT mean, so its raw MVN value is not defined)
    for sets in results["constant"].values():
        sets["MVN"] = 1.0
    report = {"minutes": args.minutes, "successor_minutes": args.successor_minutes if successors else None,
              "train_rooms": args.train_rooms, "heldout_rooms": args.heldout_rooms,
              "seed": args.seed, "heldout_seed": args.seed + HELDOUT_SEED_OFFSET, "mean_training_depth_m": train_mean_m,
              "iterations": iterations, "training_minutes": minutes_taken,
              "total_minutes": (time.perf_counter() - started) / 60, "results": results, "goals": goals(results),
              "snapshots": snapshots}
    with open(os.path.join(args.out, "results.json"), "w") as handle:
        json.dump(report, handle, indent=2)
    print(table(results))
    for goal in report["goals"]:
        print(f"{'met' if goal['met'] else 'MISSED'}: {goal['goal']} ({goal['value']:.3f})")
    print(f"iterations {iterations}; training {sum(minutes_taken.values()):.1f} min; all {report['total_minutes']:.1f} min;"
          f" {os.path.join(args.out, 'results.json')}")


if __name__ == "__main__":
    main()
