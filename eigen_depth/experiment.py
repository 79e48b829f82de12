"""A learning experiment on rendered rooms, as benchmarks/learning.py and `make demo` run it: training rooms in
the thesis's LMDBs, held-out rooms from another seed, the Middlebury examples, a constant-depth baseline, and
each model measured by the evaluator.

The constant-depth baseline is written as an ordinary snapshot (a net that predicts the mean training depth
everywhere), so the evaluator measures it exactly as it measures a trained net. A constant map's MVN error is 1
by definition (it normalises to zeros against a GT of unit variance); the evaluator's MVN-fitted view of a
constant map is the GT mean, where the original divided by its zero standard deviation.
"""
import os
import time

import numpy as np

from .caffe import array_to_blob, parse_text, schema, write_caffemodel
from .caffe.io import write_prototxt
from .constants import DEPTH_UNIT_M

_CONSTANT_NET = """
name: "constant_depth"
layer { name: "X" type: "Input" top: "X" input_param { shape { dim: 1 dim: 3 dim: 218 dim: 298 } } }
layer { name: "pool" type: "Pooling" bottom: "X" top: "pool" pooling_param { pool: AVE kernel_size: 8 stride: 8 } }
layer { name: "depth" type: "Convolution" bottom: "pool" top: "depth"
        convolution_param { num_output: 1 kernel_size: 1 } }
"""


def constant_snapshot(folder, depth_m, name="constant"):
    """Writes folder/NAME.prototxt + NAME.caffemodel: a net whose `depth` output (27x37, in the thesis's unit
    of meters / 10) is depth_m everywhere, whatever the image. Returns the caffemodel's path."""
    os.makedirs(folder, exist_ok=True)
    net = parse_text(schema.NetParameter, _CONSTANT_NET)
    write_prototxt(net, os.path.join(folder, name + ".prototxt"))
    weights = schema.NetParameter(name=net.name)
    layer = weights.layer.add(name="depth", type="Convolution")
    layer.blobs.append(array_to_blob(np.zeros((1, 3, 1, 1), np.float32)))
    layer.blobs.append(array_to_blob(np.array([depth_m / DEPTH_UNIT_M], np.float32)))
    path = os.path.join(folder, name + ".caffemodel")
    write_caffemodel(weights, path)
    return path


HELDOUT_SEED_OFFSET = 1_000_003   # held-out rooms come from another seed than the training rooms
VALIDATION_FRACTION = 0.02        # training rooms kept out of training: the LMDBs' test split
REPORTED = {"MVN": "MVN", "RMSE": "RMSE", "delta1": "delta1"}  # reported name -> evaluator metric


class RoomSets:
    """The folders of an experiment under `root`: training rooms (seed) as pairs and LMDBs, held-out rooms
    (seed + HELDOUT_SEED_OFFSET), and where the Middlebury examples of tools/make_examples.py go (real RGB-D,
    never trained on: its `test/` folder)."""

    def __init__(self, root):
        self.root = root
        self.train_pairs = os.path.join(root, "train_rooms")
        self.lmdb = os.path.join(root, "lmdb")
        self.validation = os.path.join(root, "train_rooms", "test")
        self.heldout = os.path.join(root, "heldout_rooms", "test")
        self.middlebury = os.path.join(root, "middlebury", "test")

    def make(self, train_rooms, heldout_rooms, seed, log=print):
        """Renders (or finds) the rooms and their LMDBs; returns the seconds it took. The held-out rooms are the test split of
        a set with another seed, of which one room is left unused."""
        from .data.paired_lmdb import make_lmdb
        from .data.synthetic import make_synthetic
        started = time.perf_counter()
        quiet = dict(progress=False, log=log)
        make_synthetic(train_rooms, self.train_pairs, seed=seed, test_fraction=VALIDATION_FRACTION, **quiet)
        make_synthetic(heldout_rooms + 1, os.path.dirname(self.heldout), seed=seed + HELDOUT_SEED_OFFSET,
                       test_fraction=1.0, **quiet)
        if not os.path.exists(os.path.join(self.lmdb, "train_color_298x218")):
            make_lmdb(self.train_pairs, self.lmdb, **quiet)
        return time.perf_counter() - started

    def mean_training_depth_m(self):
        """The mean depth over every pixel with depth (0 marks a missing one) of every training pair: what the
        constant baseline predicts."""
        from .data.pairs import depth_pixels_to_m, find_pairs, read_depth_raw
        total, count = 0.0, 0
        for pair in find_pairs(os.path.join(self.train_pairs, "train")):
            depth = depth_pixels_to_m(read_depth_raw(pair.depth))
            total, count = total + float(depth.sum()), count + int(np.count_nonzero(depth))
        return total / count


def snapshot_iteration(path):
    """N of a `..._iter_N.caffemodel` path."""
    return int(os.path.basename(path).rsplit("_iter_", 1)[1].split(".")[0])


def last_snapshot(folder):
    """The highest-iteration `_iter_N.caffemodel` in a snapshot folder, or None (also for no folder)."""
    if not os.path.isdir(folder):
        return None
    found = [n for n in os.listdir(folder) if n.startswith("_iter_") and n.endswith(".caffemodel")]
    return os.path.join(folder, max(found, key=snapshot_iteration)) if found else None


def measure(snapshot, pairs_dir, out_dir, write_images=False, log_depth=False):
    """{MVN, RMSE, delta1} of one snapshot on a pair folder, from the evaluator's raw (not MVN-fitted) view;
    the evaluator's own output goes to out_dir. The images are fed in BGR order, as the nets trained here saw
    them in the LMDBs (the evaluator's default is the thesis script's RGB)."""
    import contextlib
    from . import evaluate
    folder, name = os.path.split(snapshot)
    options = evaluate.Options(tool="test_depth", input_dir=pairs_dir, gt_dir=pairs_dir, out_dir=out_dir,
                               snaps_dir=folder, snapshots=name, log=log_depth, device="cpu", channel_order="bgr",
                               write_images=write_images, progress=False)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "evaluation.log"), "w") as handle, contextlib.redirect_stdout(handle):
        results = list(evaluate.run(options).results.values())[-1]
    return {key: float(results[metric]) for key, metric in REPORTED.items()}
