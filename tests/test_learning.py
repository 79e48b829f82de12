"""Learning with the CPU recipe: its changes to the thesis's nets and solvers, time-fitted runs, and the guard
that the staged pipeline learns: the global net (normalized loss) and then, with stages 1-2 frozen, the
refining net fit a couple of fixed rendered rooms through the real Solver, the LMDB Data layers and the staged
weight transfers. A loss that does not fall to a tenth of its start means a broken gradient, loss weight,
data scale or transfer."""
import csv
import os

import numpy as np
import pytest

from eigen_depth import solver as solver_module
from eigen_depth.caffe import load_weights, parse_text, read_prototxt, schema
from eigen_depth.data.paired_lmdb import make_lmdb
from eigen_depth.data.synthetic import make_synthetic
from eigen_depth.solver import Solver
from eigen_depth.train import PROTOTXT_ROOT, for_cpu_recipe, stage_solver, train_stage

ROOMS = 2  # every batch holds the whole training set: the nets can fit it exactly


def _layer(net, name):
    return next(layer for layer in net.layer if layer.name == name)


def _net(*parts):
    return read_prototxt(os.path.join(PROTOTXT_ROOT, *parts, "net_train.prototxt"), schema.NetParameter)


def test_cpu_recipe_trains_every_trainable_layer_at_full_rate_and_keeps_frozen_ones_frozen():
    net = for_cpu_recipe(_net("refining", "norm_abs"))
    # the thesis's multipliers (prototxt): conv1-refine 0.001, conv5-refine 0.01, frozen copies 0
    assert [p.lr_mult for p in _layer(net, "conv1-refine").param] == [1, 1]
    assert [p.lr_mult for p in _layer(net, "conv5-refine").param] == [1, 1]
    for frozen in ("conv1", "fc-depth", "conv1-grad", "conv5-grad", "upsample", "upsample-global"):
        assert all(p.lr_mult == 0 for p in _layer(net, frozen).param), frozen
    # conv1-refine's constant-0 placeholder for AlexNet's conv1 becomes AlexNet's gaussian filler
    filler = _layer(net, "conv1-refine").convolution_param.weight_filler
    assert (filler.type, filler.std) == ("gaussian", pytest.approx(0.01))
    # decay multipliers are not the recipe's business
    assert [p.decay_mult for p in _layer(net, "conv1-refine").param] == [1, 1]


def test_cpu_recipe_global_net_raises_alexnet_trunk_multipliers_and_keeps_its_fillers():
    thesis, net = _net("global_context", "norm"), for_cpu_recipe(_net("global_context", "norm"))
    assert [p.lr_mult for p in _layer(thesis, "conv3").param] == [pytest.approx(0.02)] * 2
    for name in ("conv1", "conv3", "fc-main", "fc-depth"):
        assert [p.lr_mult for p in _layer(net, name).param] == [1, 1]
    assert _layer(net, "conv3").convolution_param.weight_filler == _layer(thesis, "conv3").convolution_param.weight_filler


def test_cpu_recipe_uses_the_families_cpu_solver_at_batch_16_and_the_thesis_solver_stays_the_default(tmp_path):
    param, _ = stage_solver("global", out=str(tmp_path), recipe="cpu")
    assert (param.type, param.lr_policy) == ("Adam", "poly")
    assert {layer.data_param.batch_size for layer in param.net_param.layer if layer.type == "Data"} == {16}
    thesis, _ = stage_solver("global", out=str(tmp_path))
    assert (thesis.type, thesis.base_lr, thesis.max_iter) == ("SGD", pytest.approx(0.0005), 100000)
    assert {layer.data_param.batch_size for layer in thesis.net_param.layer if layer.type == "Data"} == {32}


MLP = """
layer { name: "x" type: "DummyData" top: "x" dummy_data_param { shape { dim: 4 dim: 3 }
        data_filler { type: "gaussian" std: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "p" inner_product_param { num_output: 3
        weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "x" top: "loss" loss_weight: 1 }
"""


class FakeClock:
    """perf_counter for fit_to_time: start 0, after the warm-up 1 s, after the three timed iterations 4 s."""

    def __init__(self):
        self.readings = iter([0.0, 1.0, 4.0])

    def __call__(self):
        return next(self.readings)


@pytest.mark.parametrize("seconds, expected", [(10.0, 10), (4.0, 4), (0.5, 4)])
def test_fit_to_time_sets_max_iter_from_the_timed_iterations(monkeypatch, seconds, expected):
    # 1 s per timed iteration, 4 s spent: (seconds - 4) / 1 more iterations after the 4 already run
    param = parse_text(schema.SolverParameter,
                       "net_param {" + MLP + '} base_lr: 0.01 lr_policy: "fixed" max_iter: 1000 snapshot: 0')
    solver = Solver(param)
    plans = []
    solver.callbacks.append(lambda event, it, values: plans.append(values) if event == "plan" else None)
    monkeypatch.setattr(solver_module.time, "perf_counter", FakeClock())
    assert solver.fit_to_time(seconds, snapshots=2) == expected
    assert solver.iter == 4 and solver.param.max_iter == expected
    assert solver.param.snapshot == expected // 2
    assert plans == [{"max_iter": expected, "seconds_per_iteration": 1.0}]


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rooms")
    quiet = dict(workers=1, progress=False, log=lambda *_: None)
    # one more room forms the (unused) test split
    make_synthetic(ROOMS + 1, str(folder / "pairs"), seed=21, test_fraction=1 / (ROOMS + 1), **quiet)
    make_lmdb(str(folder / "pairs"), str(folder / "lmdb"), **quiet)
    return str(folder / "lmdb")


def losses(folder):
    with open(os.path.join(folder, "train_log.csv"), newline="") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


def fit(stage, rooms, out, iters, **options):
    return train_stage(stage, data_root=rooms, iters=iters, batch=ROOMS, out=out, device="cpu", recipe="cpu",
                       test_interval=0, progress=False, echo=lambda *_: None, **options)


def assert_learned(folder):
    curve = losses(folder)
    start, end = curve[0], float(np.mean(curve[-5:]))
    assert end <= 0.1 * start, f"loss fell only from {start:.4g} to {end:.4g}"


def test_global_then_refining_stage_fit_a_couple_of_rooms(tmp_path_factory, rooms):
    out = str(tmp_path_factory.mktemp("runs"))
    global_snapshot = fit("global", rooms, out, 40)
    assert_learned(os.path.join(out, "global"))
    gradient_snapshot = fit("gradient", rooms, out, 20)  # trained, so its channels carry more than dropout noise
    refine_snapshot = fit("refine", rooms, out, 160, global_snapshot=global_snapshot,
                          gradient_snapshot=gradient_snapshot)
    assert_learned(os.path.join(out, "refine"))
    # the refining net learned on top of the transferred, frozen stages
    trained, first, second = load_weights(refine_snapshot), load_weights(global_snapshot), load_weights(gradient_snapshot)
    for name in ("conv1", "conv5", "fc-depth"):
        np.testing.assert_array_equal(trained[name][0], first[name][0])
    np.testing.assert_array_equal(trained["conv1-grad"][0], second["conv1"][0])
