#!/usr/bin/env python
"""Does the port learn? A short, documented CPU run of the thesis's staged training on synthetic scenes.

1. renders SCENES synthetic rooms (train/test split) and writes the thesis's LMDBs;
2. trains `--stage all` (global norm -> gradient norm -> refining norm_abs), ITERS iterations per stage;
3. trains the other three global-network loss variants (abs, log_abs, sc_inv) for the same iterations;
4. evaluates on the synthetic test set: the refining net, the global net alone and a constant-depth
   baseline (the mean training depth everywhere), with the thesis's RMSE and MVN error;
5. writes OUT/learning_check.md (a table), OUT/learning_check.json, and OUT/global_losses.png: the four
   global variants' losses, each divided by its first value, against the iteration.

    python tools/learning_check.py --out learning_check --scenes 300 --iters 300 --batch 8

These are short runs on rendered rooms, not the thesis's 100k iterations on NYU Depth v2.
"""
import argparse
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from eigen_depth import evaluate, metrics  # noqa: E402
from eigen_depth.data.paired_lmdb import make_lmdb  # noqa: E402
from eigen_depth.data.synthetic import make_synthetic  # noqa: E402
from eigen_depth.train import train_all, train_stage  # noqa: E402
from eigen_depth.training_log import plot_loss_curve  # noqa: E402

GLOBAL_VARIANTS = ("norm", "abs", "log_abs", "sc_inv")


def evaluate_folder(snaps, test_dir, out, log=False):
    options = evaluate.Options(tool="test_depth", input_dir=test_dir, gt_dir=test_dir, out_dir=out,
                               snaps_dir=snaps, log=log, device="cpu", write_images=False, progress=False)
    outcome = evaluate.run(options)
    return list(outcome.results.values())[-1]


def constant_baseline(train_dir, test_dir):
    """RMSE of predicting the mean training depth everywhere (MVN error of a constant map is 1: after
    normalisation it is all zeros against a unit-variance GT)."""
    train_mean = np.mean([evaluate.read_gt_tenth(os.path.join(train_dir, f), "png8").mean()
                          for f in sorted(os.listdir(train_dir)) if f.endswith("_depth.png")]) * 10
    rmses = []
    for name in sorted(os.listdir(test_dir)):
        if name.endswith("_depth.png"):
            gt_m = evaluate.read_gt_tenth(os.path.join(test_dir, name), "png8") * 10
            rmses.append(float(metrics.rmse(np.full_like(gt_m, train_mean)[None], gt_m[None])[0]))
    return {"RMSE": float(np.mean(rmses)), "MVN": 1.0, "mean depth (m)": float(train_mean)}


def read_losses(folder):
    with open(os.path.join(folder, "train_log.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [int(r["iteration"]) for r in rows], [float(r["loss"]) for r in rows]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="learning_check")
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = args.out
    pairs, lmdb = os.path.join(out, "pairs"), os.path.join(out, "lmdb")
    quiet = dict(progress=False, log=lambda *_: None)
    make_synthetic(args.scenes, pairs, seed=args.seed, **quiet)
    if not os.path.exists(os.path.join(lmdb, "train_color_298x218")):
        make_lmdb(pairs, lmdb, **quiet)
    options = dict(data_root=lmdb, iters=args.iters, batch=args.batch, device="cpu", test_interval=0,
                   out=os.path.join(out, "runs"))
    snapshots = train_all(**options)
    for variant in GLOBAL_VARIANTS[1:]:
        train_stage("global", variant, **dict(options, out=os.path.join(out, f"global_{variant}")))

    test_dir = os.path.join(pairs, "test")
    runs = os.path.join(out, "runs")
    rows = {"refining net (norm_abs)": evaluate_folder(os.path.dirname(snapshots["refine"]), test_dir,
                                                       os.path.join(out, "eval_refine")),
            "global net alone (norm)": evaluate_folder(os.path.dirname(snapshots["global"]), test_dir,
                                                       os.path.join(out, "eval_global"))}
    for variant in GLOBAL_VARIANTS[1:]:
        snaps = os.path.join(out, f"global_{variant}", "global", "snaps")
        rows[f"global net alone ({variant})"] = evaluate_folder(snaps, test_dir, os.path.join(out, f"eval_{variant}"),
                                                                log=variant in ("log_abs", "sc_inv"))
    rows["constant depth baseline"] = constant_baseline(os.path.join(pairs, "train"), test_dir)

    curves = {"norm": read_losses(os.path.join(runs, "global"))}
    for variant in GLOBAL_VARIANTS[1:]:
        curves[variant] = read_losses(os.path.join(out, f"global_{variant}", "global"))
    plot_rows = []
    tests = []
    for variant, (iterations, losses) in curves.items():
        first = losses[0] or 1.0
        tests.extend((it, {f"{variant} loss / first loss": loss / first}) for it, loss in zip(iterations, losses))
    plot_loss_curve(plot_rows, tests, os.path.join(out, "global_losses.png"),
                    title="global net: loss / first loss, four loss variants")
    final = {v: (np.mean(l[-20:]) / (l[0] or 1.0)) for v, (_, l) in curves.items()}

    lines = [f"# Learning check: {args.scenes} synthetic scenes, {args.iters} iterations per stage, batch "
             f"{args.batch}, CPU", "", "| model | RMSE (m) | MVN error |", "|---|---|---|"]
    for name, values in rows.items():
        lines.append(f"| {name} | {values['RMSE']:.3f} | {values['MVN']:.3f} |")
    lines += ["", "Global net, mean of the last 20 losses / first loss (lower = converged further):", ""]
    lines += [f"- {variant}: {ratio:.3f}" for variant, ratio in sorted(final.items(), key=lambda kv: kv[1])]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "learning_check.md"), "w") as handle:
        handle.write(text)
    with open(os.path.join(out, "learning_check.json"), "w") as handle:
        json.dump({"rows": rows, "loss_ratio": final, "scenes": args.scenes, "iters": args.iters,
                   "batch": args.batch}, handle, indent=2, default=float)
    print(text)


if __name__ == "__main__":
    main()
