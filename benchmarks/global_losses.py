"""The thesis's experiment: which global-net loss converges fastest? Trains the global context net with each of
its four losses (abs, log_abs, sc_inv, norm) for the same time from the same start (the CPU recipe, whose
random_seed gives every variant the same initial weights: the variants differ only in their loss layers), and
measures every snapshot on held-out rooms with the evaluator (log_abs and sc_inv predict log depth: evaluated
with --log). Writes DIR/global_losses.json and DIR/global_losses.png: held-out MVN error against iteration.

The data are benchmarks/learning.py's (run it first, or give its --out folder): its LMDBs and held-out rooms.

    python benchmarks/global_losses.py --data learning/data --out global_losses [--minutes-each 10]
"""
import argparse
import contextlib
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from eigen_depth import evaluate  # noqa: E402
from eigen_depth.experiment import RoomSets  # noqa: E402
from eigen_depth.train import train_stage  # noqa: E402

VARIANTS = ("norm", "abs", "log_abs", "sc_inv")
LOG_DEPTH_VARIANTS = ("log_abs", "sc_inv")


def train(variant, data, out, minutes, points, log):
    started = time.perf_counter()
    last = train_stage("global", variant, data_root=RoomSets(data).lmdb, out=os.path.join(out, variant),
                       device="cpu", recipe="cpu", test_interval=0, minutes=minutes, snapshots=points,
                       progress=False, echo=log)
    log(f"{variant}: {os.path.basename(last)} after {(time.perf_counter() - started) / 60:.1f} min")
    snaps = os.path.dirname(last)
    for name in os.listdir(snaps):  # the optimiser states are not needed to evaluate; they are 2x the weights
        if name.endswith(".solverstate") and not last.startswith(os.path.join(snaps, name[:-len(".solverstate")])):
            os.remove(os.path.join(snaps, name))
    return snaps


def curve(variant, snaps, heldout, out):
    """[(iteration, held-out MVN error)] of every snapshot of a run (the evaluator's report in OUT/evaluation.log)."""
    options = evaluate.Options(tool="test_depth", input_dir=heldout, gt_dir=heldout, out_dir=out, snaps_dir=snaps,
                               log=variant in LOG_DEPTH_VARIANTS, device="cpu", write_images=False, progress=False)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "evaluation.log"), "w") as handle, contextlib.redirect_stdout(handle):
        results = evaluate.run(options).results
    return sorted((int(name.split("_iter_")[1]), float(values["MVN"])) for name, values in results.items())


def plot(curves, path, minutes):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for variant, points in curves.items():
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=variant)
    axes.axhline(1.0, color="gray", linestyle="--", linewidth=1, label="constant map")
    axes.set_xlabel("iteration (batch 16)")
    axes.set_ylabel("held-out MVN error")
    axes.set_title(f"Global net, four losses, {minutes:g} min each on a 2-core CPU (CPU recipe)")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="benchmarks/learning.py's data folder (OUT/data)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes-each", type=float, default=10.0)
    parser.add_argument("--points", type=int, default=6, help="snapshots (curve points) per run")
    args = parser.parse_args(argv)
    if not args.minutes_each > 0 or args.points < 1:
        parser.error("--minutes-each and --points must be positive")
    sets = RoomSets(args.data)
    heldout = sets.heldout
    for needed in (sets.lmdb, heldout):
        if not os.path.isdir(needed):
            parser.error(f"{needed}: missing; run benchmarks/learning.py first and give its OUT/data")

    def log(text):
        print(text, flush=True)

    curves = {}
    for variant in VARIANTS:
        snaps = train(variant, args.data, args.out, args.minutes_each, args.points, log)
        curves[variant] = curve(variant, snaps, heldout, os.path.join(args.out, "eval", variant))
        log(f"{variant}: " + ", ".join(f"{it}: {mvn:.3f}" for it, mvn in curves[variant]))
    with open(os.path.join(args.out, "global_losses.json"), "w") as handle:
        json.dump({"minutes_each": args.minutes_each, "curves": curves}, handle, indent=2)
    plot(curves, os.path.join(args.out, "global_losses.png"), args.minutes_each)
    final = sorted(curves, key=lambda v: curves[v][-1][1])
    log("final held-out MVN error: " + ", ".join(f"{v} {curves[v][-1][1]:.3f}" for v in final))


if __name__ == "__main__":
    main()
