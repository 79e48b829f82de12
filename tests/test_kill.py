"""A training run killed with SIGKILL (no handler runs) at random moments and in the middle of a snapshot
write leaves only complete files under final names, and resuming from its last .solverstate ends with the
weights of an uninterrupted run, bit for bit."""
import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from eigen_depth.caffe import blob_to_array, read_caffemodel, read_solverstate
from eigen_depth.data.paired_lmdb import make_lmdb
from eigen_depth.data.synthetic import make_synthetic

ITERATIONS = 30
FC_INPUTS = 3 * 28 * 38  # the colour image after 8x8 average pooling (Caffe's ceil rule)
NET = """
layer { name: "data-color" type: "Data" top: "X" transform_param { mean_value: 127 scale: 0.0078125 }
        data_param { source: "train_color_298x218" batch_size: 2 backend: LMDB } }
layer { name: "data-depth" type: "Data" top: "Y" transform_param { scale: 0.00390625 }
        data_param { source: "train_depth_37x27" batch_size: 2 backend: LMDB } }
layer { name: "pool" type: "Pooling" bottom: "X" top: "pooled" pooling_param { pool: AVE kernel_size: 8 stride: 8 } }
layer { name: "fc" type: "InnerProduct" bottom: "pooled" top: "fc"
        inner_product_param { num_output: 999 weight_filler { type: "gaussian" std: 0.001 } } }
layer { name: "depth" type: "Reshape" bottom: "fc" top: "depth" reshape_param { shape { dim: 0 dim: 1 dim: 27 dim: 37 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "depth" bottom: "Y" top: "loss" }
"""


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    make_synthetic(6, str(folder / "pairs"), seed=8, workers=1, progress=False, log=lambda *_: None)
    make_lmdb(str(folder / "pairs"), str(folder / "lmdb"), workers=1, progress=False, log=lambda *_: None)
    return str(folder / "lmdb")


def write_solver(folder):
    folder.mkdir()
    (folder / "net.prototxt").write_text(NET)
    # a snapshot every iteration (12 MB of weights and as much momentum), so writes take much of the run
    (folder / "solver.prototxt").write_text(
        f'net: "net.prototxt" base_lr: 1e-5 momentum: 0.9 weight_decay: 0.0005 lr_policy: "fixed" '
        f'max_iter: {ITERATIONS} snapshot: 1 snapshot_prefix: "{folder}/snaps/" random_seed: 6 display: 0')
    return str(folder / "solver.prototxt")


def train(solver, data_root, *extra):
    return subprocess.Popen([sys.executable, "-m", "eigen_depth", "train", "--solver", solver, "--data-root",
                             data_root, "--device", "cpu", "--no-progress", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(process):
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err.decode()


def wait_for(condition, process, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.001)


def final_weights(snaps):
    model = read_caffemodel(str(snaps / f"_iter_{ITERATIONS}.caffemodel"))
    return [blob_to_array(blob) for layer in model.layer for blob in layer.blobs]


def check_final_files(snaps):
    """Every file under a final name is complete; returns the latest solverstate."""
    states = []
    for name in os.listdir(snaps):
        path = str(snaps / name)
        if name.startswith("."):
            continue  # a temporary left by the kill: never read, replaced by the next write
        if name.endswith(".caffemodel"):
            (fc,) = [layer for layer in read_caffemodel(path).layer if layer.name == "fc"]
            assert blob_to_array(fc.blobs[0]).shape == (999, FC_INPUTS) and blob_to_array(fc.blobs[1]).shape == (999,)
        elif name.endswith(".solverstate"):
            state = read_solverstate(path)
            assert name == f"_iter_{state.iter}.solverstate" and len(state.history) == 2
            assert blob_to_array(state.history[0]).shape == (999, FC_INPUTS)
            assert os.path.isfile(state.learned_net)
            states.append((state.iter, path))
        elif name == "train_log.csv":
            with open(path, newline="") as handle:
                rows = list(csv.reader(handle))
            assert rows[0][:2] == ["iteration", "loss"] and all(len(row) == len(rows[0]) for row in rows[:-1])
    return max(states)[1]


def test_runs_killed_at_random_moments_and_mid_write_resume_to_the_uninterrupted_weights(tmp_path, data_root):
    reference = train(write_solver(tmp_path / "reference"), data_root)
    finish(reference)
    expected = final_weights(tmp_path / "reference" / "snaps")

    rng = np.random.default_rng(11)
    for trial, moment in enumerate(["random", "mid-write", "mid-write"]):
        folder = tmp_path / f"trial{trial}"
        solver = write_solver(folder)
        snaps = folder / "snaps"
        process = train(solver, data_root)
        wait_for(lambda: (snaps / "_iter_2.solverstate").exists(), process)
        if moment == "random":
            time.sleep(rng.uniform(0.0, 0.6))
        else:  # a temporary beside the final names: a snapshot file is being written right now
            wait_for(lambda: any(name.startswith(".") and name.endswith(".part") for name in os.listdir(snaps)),
                     process)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, f"trial {trial}: the run finished before the kill"
        latest = check_final_files(snaps)
        finish(train(solver, data_root, "--snapshot", latest))
        for got, want in zip(final_weights(snaps), expected):
            np.testing.assert_array_equal(got, want)
        check_final_files(snaps)
