"""The thesis's experiment: which global-net loss converges fastest? Trains the global context net with each of
its four losses (abs, log_abs, sc_inv, norm) for the same number of iterations from the same start (the CPU
recipe, whose random_seed gives every variant the same initial weights: the variants differ only in their loss
layers, so an iteration costs the same and equal iterations are equal time; each run's training time is
reported), and measures every snapshot on held-out rooms with the evaluator (log_abs and sc_inv predict log
depth: evaluated with --log). Writes DIR/global_losses.json and DIR/global_losses.png: held-out MVN error
against iteration. Counting iterations rather than minutes keeps the comparison fair on a shared machine.

The data are benchmarks/learning.py's (run it first, or give its --out folder): its LMDBs and held-out rooms.

    python benchmarks/global_losses.py --data learning/data --out global_losses [--iters-each 200] [--losses norm]
"""
import argparse
import contextlib
import json
import os
import time


from eigen_depth import evaluate
from eigen_depth.experiment import RoomSets
from eigen_depth.train import train_stage

VARIANTS = ("norm", "abs", "log_abs", "sc_inv")
LOG_DEPTH_VARIANTS = ("log_abs", "sc_inv")


def train(variant, data, out, iterations, points, log, batch_norm=True):
    """Trains one variant; returns (its snapshot folder, training minutes)."""
    started = time.perf_counter()
    last = train_stage("global", variant, data_root=RoomSets(data).lmdb, out=os.path.join(out, variant),
                       device="cpu", recipe="cpu", test_interval=0, iters=iterations,
                       snapshot=max(1, iterations // points), progress=False, echo=log, batch_norm=batch_norm)
    minutes = (time.perf_counter() - started) / 60
    log(f"{variant}: {os.path.basename(last)} after {minutes:.1f} min")
    snaps = os.path.dirname(last)
    kept = os.path.basename(last)[:-len(".caffemodel")] + ".solverstate"
    # the optimiser states are not needed to evaluate; they are 2x the weights (with the recipe's batch
    # normalisation they are beside the training snapshots)
    for folder in (snaps, os.path.join(os.path.dirname(snaps), "training")):
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
            if name.endswith(".solverstate") and name != kept:
                os.remove(os.path.join(folder, name))
    return snaps, minutes


def curve(variant, snaps, heldout, out):
    """[(iteration, held-out MVN error)] of every snapshot of a run (the evaluator's report in OUT/evaluation.log)."""
    options = evaluate.Options(tool="test_depth", input_dir=heldout, gt_dir=heldout, out_dir=out, snaps_dir=snaps,
                               log=variant in LOG_DEPTH_VARIANTS, device="cpu", channel_order="bgr", write_images=False,
                               progress=False)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "evaluation.log"), "w") as handle, contextlib.redirect_stdout(handle):
        results = evaluate.run(options).results
    return sorted((int(name.split("_iter_")[1]), float(values["MVN"])) for name, values in results.items())


def paired_differences(out, curves, reference="norm"):
    """{variant: (mean, standard error, rooms)} of (variant's MVN error - reference's) room by room at the last
    snapshot, from the evaluator's per-image metrics: how far apart two losses are beyond the rooms' spread.
    (One training run per loss: the spread between training runs is not in it.)"""
    import csv

    import numpy as np

    def per_room(variant):
        iteration = curves[variant][-1][0]
        with open(os.path.join(out, "eval", variant, f"_iter_{iteration}", "metrics.csv"), newline="") as handle:
            return {row["image"]: float(row["MVN"]) for row in csv.DictReader(handle)}

    base = per_room(reference)
    result = {}
    for variant in curves:
        if variant != reference:
            other = per_room(variant)
            difference = np.array([other[room] - base[room] for room in base])
            result[variant] = (float(difference.mean()), float(difference.std(ddof=1) / np.sqrt(len(difference))),
                               len(difference))
    return result


def plot(curves, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for variant, points in curves.items():
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=variant)
    axes.axhline(1.0, color="gray", linestyle="--", linewidth=1, label="constant map")
    axes.set_xlabel("iteration (batch 16)")
    axes.set_ylabel("held-out MVN error")
    axes.set_title("Global net from fillers, CPU recipe: held-out MVN error by loss")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="benchmarks/learning.py's data folder (OUT/data)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--iters-each", type=int, default=200, help="training iterations of each variant")
    parser.add_argument("--points", type=int, default=5, help="snapshots (curve points) per run")
    parser.add_argument("--losses", default=",".join(VARIANTS),
                        help="comma-separated losses to train (default: all four); one alone gives a longer curve")
    parser.add_argument("--no-batch-norm", action="store_true",
                        help="without the CPU recipe's batch normalisation (as before it had one)")
    args = parser.parse_args(argv)
    if args.iters_each < 1 or args.points < 1:
        parser.error("--iters-each and --points must be positive")
    variants = [v for v in args.losses.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants:
        parser.error(f"--losses: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(VARIANTS)}")
    sets = RoomSets(args.data)
    heldout = sets.heldout
    for needed in (sets.lmdb, heldout):
        if not os.path.isdir(needed):
            parser.error(f"{needed}: missing; run benchmarks/learning.py first and give its OUT/data")

    def log(text):
        print(text, flush=True)

    curves, minutes = {}, {}
    for variant in variants:
        snaps, minutes[variant] = train(variant, args.data, args.out, args.iters_each, args.points, log,
                                        not args.no_batch_norm)
        curves[variant] = curve(variant, snaps, heldout, os.path.join(args.out, "eval", variant))
        log(f"{variant}: " + ", ".join(f"{it}: {mvn:.3f}" for it, mvn in curves[variant]))
    paired = paired_differences(args.out, curves) if "norm" in curves else {}
    for variant, (mean, error, rooms) in paired.items():
        log(f"{variant} - norm at the last snapshot, room by room: {mean:+.3f} +- {error:.3f} (standard error, "
            f"{rooms} rooms)")
    with open(os.path.join(args.out, "global_losses.json"), "w") as handle:
        json.dump({"iterations_each": args.iters_each, "training_minutes": minutes, "curves": curves,
                   "minus_norm_at_last": {v: {"mean": m, "standard_error": e, "rooms": n}
                                          for v, (m, e, n) in paired.items()}}, handle, indent=2)
    plot(curves, os.path.join(args.out, "global_losses.png"))
    final = sorted(curves, key=lambda v: curves[v][-1][1])
    log("final held-out MVN error: " + ", ".join(f"{v} {curves[v][-1][1]:.3f}" for v in final))


if __name__ == "__main__":
    main()
