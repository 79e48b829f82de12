"""What the learning goals ask of a net: predictors that are told part of the answer, scored like a net.

On a folder of rendered rooms (by default the validation rooms of benchmarks/learning.py's data: the LMDBs'
test split) each predictor below makes a depth map per room at the evaluator's GT size (320x420) and is scored
with the evaluator's metrics (MVN error and RMSE in meters, averaged over rooms):

- constant: the mean training depth everywhere (the learning benchmark's baseline);
- room mean: flat at each room's own mean depth (knows the room's overall depth, no shape);
- shape, mean depth: the true map normalised (zero mean, unit std), given the mean training depth and the
  mean spread of the training rooms (knows the shape exactly, not how far the room is);
- shape at 37x27 / 74x54: the true map in meters resized as the LMDBs store it (linear) and zoomed back with
  the evaluator's cubic zoom (what the global and refining nets' output sizes allow, nothing else lost).

A net whose per-room mean does not follow the rooms' cannot beat `shape, mean depth` in RMSE, whatever its
shape; `room mean` shows how much of the constant's error is the rooms' overall depth.

    python benchmarks/depth_limits.py --data learning/data [--set validation|heldout]
"""
import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from eigen_depth import images, metrics  # noqa: E402
from eigen_depth.constants import DEPTH_UNIT_M, GT_HEIGHT, GT_WIDTH  # noqa: E402
from eigen_depth.data.constants import DEPTH_SIZES  # noqa: E402
from eigen_depth.data.pairs import depth_pixels_to_m, find_pairs, read_depth_raw, resize  # noqa: E402
from eigen_depth.evaluate.source import read_gt_tenth  # noqa: E402
from eigen_depth.experiment import RoomSets  # noqa: E402


def training_statistics(train_pairs):
    """(mean depth over every pixel with depth, mean of the rooms' own standard deviations) in meters."""
    total, count, spreads = 0.0, 0, []
    for pair in find_pairs(train_pairs):
        depth = depth_pixels_to_m(read_depth_raw(pair.depth)).astype(np.float64)
        known = depth[depth > 0]
        total, count = total + float(known.sum()), count + known.size
        spreads.append(float(known.std()))
    return total / count, float(np.mean(spreads))


def predictors(gt_m, depth_m, mean_m, spread_m):
    """{name: prediction (320, 420) in meters} for one room: gt_m at the evaluator's size, depth_m as stored."""
    shape = (gt_m - gt_m.mean()) / gt_m.std()
    made = {"constant": np.full_like(gt_m, mean_m), "room mean": np.full_like(gt_m, gt_m.mean()),
            "shape, mean depth": mean_m + spread_m * shape}
    for width, height in DEPTH_SIZES:
        small = resize(depth_m, (width, height), "linear")
        made[f"shape at {width}x{height}"] = images.zoom_cubic(small[None].astype(np.float32), GT_HEIGHT, GT_WIDTH)[0]
    return made


def score(pairs, mean_m, spread_m, room_means=None):
    """{name: {"MVN": mean MVN error, "RMSE": mean RMSE (m), "RMSE / constant": ratio}} over the pairs; each
    room's mean depth (m) is appended to room_means when one is given."""
    rows = {}
    for pair in pairs:
        gt_m = read_gt_tenth(pair.depth, "png8").astype(np.float64) * DEPTH_UNIT_M
        if room_means is not None:
            room_means.append(float(gt_m.mean()))
        depth_m, gt32 = depth_pixels_to_m(read_depth_raw(pair.depth)), gt_m.astype(np.float32)
        for name, made in predictors(gt_m, depth_m, mean_m, spread_m).items():
            made = made.astype(np.float32)  # as the evaluator's maps
            flat = np.ptp(made) == 0   # the evaluator scores a flat map's MVN error as 1 (its MVN fit is the GT's mean)
            mvn = 1.0 if flat else float(metrics.mvn_error(made, gt32)[0])
            rmse = float(metrics.rmse(made, gt32)[0])
            rows.setdefault(name, []).append((mvn, rmse))
    table = {name: {"MVN": float(np.mean([m for m, _ in values])), "RMSE": float(np.mean([r for _, r in values]))}
             for name, values in rows.items()}
    for entry in table.values():
        entry["RMSE / constant"] = entry["RMSE"] / table["constant"]["RMSE"]
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="benchmarks/learning.py's data folder (OUT/data)")
    parser.add_argument("--set", choices=("validation", "heldout"), default="validation",
                        help="the rooms to score (default: the validation rooms, the LMDBs' test split)")
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args()
    sets = RoomSets(args.data)
    mean_m, spread_m = training_statistics(os.path.join(sets.train_pairs, "train"))
    pairs = find_pairs(getattr(sets, args.set))
    room_means = []
    table = score(pairs, mean_m, spread_m, room_means)
    print(f"{len(pairs)} {args.set} rooms, their mean depths {np.mean(room_means):.3f} +- {np.std(room_means):.3f} m "
          f"(mean, standard deviation); training rooms: mean depth {mean_m:.3f} m, mean spread {spread_m:.3f} m")
    print(f"{'predictor':<22} {'MVN error':>9} {'RMSE (m)':>9} {'RMSE / constant':>16}")
    for name, entry in table.items():
        print(f"{name:<22} {entry['MVN']:>9.3f} {entry['RMSE']:>9.3f} {entry['RMSE / constant']:>16.3f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rooms": len(pairs), "set": args.set, "room_mean_depths_m": room_means,
                       "training_mean_m": mean_m, "training_spread_m": spread_m, "predictors": table}, handle, indent=1)


if __name__ == "__main__":
    main()
