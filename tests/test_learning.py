"""Learning with the CPU recipe: its changes to the thesis's nets and solvers, time-fitted runs, and the guard
that the staged pipeline learns: the global net (normalized loss) and then, with stages 1-2 frozen, the
refining net fit a couple of fixed rendered rooms through the real Solver, the LMDB Data layers and the staged
weight transfers. A loss that does not fall to a tenth of its start means a broken gradient, loss weight,
data scale or transfer."""
import csv
import math
import os

import numpy as np
import pytest

from eigen_depth import solver as solver_module
from eigen_depth.caffe import load_weights, parse_text, read_prototxt, schema
from eigen_depth.data.paired_lmdb import make_lmdb
from eigen_depth.data.synthetic import make_synthetic
from eigen_depth.solver import Solver
from eigen_depth.train import (PROTOTXT_ROOT, data_settings, for_cpu_recipe, speed_up_output,
                               stage_solver, start_output_at_target_mean, train_stage)

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


@pytest.fixture(scope="module")
def flat_rooms(tmp_path_factory):
    """LMDBs of four training pairs whose depth is flat: 2 m in two of them, 4 m in the other two (8-bit
    depth pixel / 255 = metres / 10: pixels 51 and 102)."""
    import cv2
    folder = tmp_path_factory.mktemp("flat")
    rng = np.random.default_rng(3)
    for split, pixels in (("train", (51, 102, 51, 102)), ("test", (51,))):
        os.makedirs(folder / "pairs" / split)
        for index, pixel in enumerate(pixels):
            cv2.imwrite(str(folder / "pairs" / split / f"{index:05d}_colors.png"),
                        rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
            cv2.imwrite(str(folder / "pairs" / split / f"{index:05d}_depth.png"), np.full((480, 640), pixel, np.uint8))
    make_lmdb(str(folder / "pairs"), str(folder / "lmdb"), workers=1, progress=False, log=lambda *_: None)
    return str(folder / "lmdb")


@pytest.mark.parametrize("variant", ["norm_abs", "abs", "log_abs"])
def test_cpu_recipe_starts_the_refining_output_at_the_mean_training_target(tmp_path, flat_rooms, variant):
    param, _ = stage_solver("refine", variant, out=str(tmp_path), batch=2, recipe="cpu")
    # 4 batches of 2 read the 4 training pairs twice; the depth Data layer scales the bytes by 1/256, so
    # Y is 51/256 and 102/256 equally often
    bias, mean = start_output_at_target_mean(param.net_param, "conv5-refine", data_settings(flat_rooms), batches=4)
    ys = (51 / 256, 102 / 256)
    if variant == "log_abs":  # the thesis's L(y) = 1 + 0.179581 ln(0.996078431 y + 0.00392156863), averaged
        expected = np.mean([1 + 0.179581 * math.log(0.996078431 * y + 0.00392156863) for y in ys])
    else:
        expected = np.mean(ys)
    assert mean == pytest.approx(expected, rel=1e-6)
    # power-refine multiplies conv5-refine's output by 0.01 (no shift)
    assert bias == pytest.approx(expected / 0.01, rel=1e-6)
    filler = _layer(param.net_param, "conv5-refine").convolution_param.bias_filler
    assert (filler.type, filler.value) == ("constant", pytest.approx(bias))
    # the weights keep their zero-mean filler
    assert _layer(param.net_param, "conv5-refine").convolution_param.weight_filler.type == "gaussian"


def test_cpu_recipe_leaves_an_output_without_an_affine_path_to_a_euclidean_loss_alone(tmp_path, flat_rooms):
    param, _ = stage_solver("global", "norm", out=str(tmp_path), batch=2, recipe="cpu")
    before = _layer(param.net_param, "fc-depth").inner_product_param.bias_filler.value
    # fc-depth reaches its loss through Reshape and MVN: a scale-free loss has no mean to start from
    assert start_output_at_target_mean(param.net_param, "fc-depth", data_settings(flat_rooms), batches=1) is None
    assert _layer(param.net_param, "fc-depth").inner_product_param.bias_filler.value == before


@pytest.mark.parametrize("variant", ["norm_abs", "abs"])
def test_cpu_recipe_trains_the_scaled_refining_output_faster(tmp_path, variant):
    param, _ = stage_solver("refine", variant, out=str(tmp_path), recipe="cpu")
    # power-refine multiplies conv5-refine's output by 0.01 before the loss
    assert speed_up_output(param.net_param, "conv5-refine") == 10
    assert [p.lr_mult for p in _layer(param.net_param, "conv5-refine").param] == [10, 10]
    # the layers before it keep the recipe's full rate
    assert [p.lr_mult for p in _layer(param.net_param, "conv4-refine").param] == [1, 1]


def test_cpu_recipe_speeds_up_only_an_output_scaled_before_a_euclidean_loss_and_keeps_frozen_params():
    def net(power):
        return parse_text(schema.NetParameter, f"""
            layer {{ name: "y" type: "Input" top: "y" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
            layer {{ name: "out" type: "InnerProduct" bottom: "y" top: "o" param {{ lr_mult: 1 }}
                    param {{ lr_mult: 0 }} inner_product_param {{ num_output: 3 }} }}
            {power}
            layer {{ name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "loss" }}""")
    scaled = net('layer { name: "s" type: "Power" bottom: "o" top: "p" power_param { scale: 0.5 shift: 3 } }')
    assert speed_up_output(scaled, "out", multiplier=7) == 7
    assert [p.lr_mult for p in _layer(scaled, "out").param] == [7, 0]  # the frozen bias stays frozen
    unscaled = net('layer { name: "s" type: "Power" bottom: "o" top: "p" power_param { shift: 3 } }')
    assert speed_up_output(unscaled, "out") is None
    assert [p.lr_mult for p in _layer(unscaled, "out").param] == [1, 0]
    squared = net('layer { name: "s" type: "Power" bottom: "o" top: "p" power_param { power: 2 scale: 0.5 } }')
    assert speed_up_output(squared, "out") is None


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
    # from the refining layers' fillers: the recipe's default start passes stage 1's depth on, which begins near
    # the answer on rooms that stage 1 has fitted, and this guard is about learning (that start: its own test)
    refine_snapshot = fit("refine", rooms, out, 160, global_snapshot=global_snapshot,
                          gradient_snapshot=gradient_snapshot, global_start=False)
    assert_learned(os.path.join(out, "refine"))
    # the recipe started its output at the rooms' mean depth (0.5-10 m, in tens of metres, under power-refine's 0.01)
    used = read_prototxt(os.path.join(out, "refine", "solver.prototxt"), schema.SolverParameter)
    filler = _layer(used.net_param, "conv5-refine").convolution_param.bias_filler
    assert filler.type == "constant" and 0.05 / 0.01 <= filler.value <= 1.0 / 0.01
    # ... and trained that output layer at the recipe's lr_mult 10 (written into the solver the run used)
    assert [p.lr_mult for p in _layer(used.net_param, "conv5-refine").param] == [10, 10]
    # the refining net learned on top of the transferred, frozen stages
    trained, first, second = load_weights(refine_snapshot), load_weights(global_snapshot), load_weights(gradient_snapshot)
    for name in ("conv1", "conv5", "fc-depth"):
        np.testing.assert_array_equal(trained[name][0], first[name][0])
    np.testing.assert_array_equal(trained["conv1-grad"][0], second["conv1"][0])


def _refining_net_without_dropout(tmp_path, rooms, normalised):
    """The CPU recipe's refining training net at batch ROOMS on the rooms, its frozen Dropout layers off so that
    stage 1's depth is the same in every pass, with batch normalisation while training when `normalised`."""
    from eigen_depth import batch_norm
    from eigen_depth.net import CaffeNet
    param, _ = stage_solver("refine", "norm_abs", out=str(tmp_path), batch=ROOMS, recipe="cpu")
    for layer in param.net_param.layer:
        if layer.type == "Dropout":
            layer.dropout_param.dropout_ratio = 0.0
    if normalised:
        batch_norm.insert(param.net_param, batch_norm.targets(param.net_param))
    settings = data_settings(rooms, seed=1)

    def build():
        return CaffeNet(param.net_param, "TRAIN", data=settings, seed=5)
    return param.net_param, settings, build


def _depth_and_output(net, batches):
    """(stage 1's normalised depth as conv2-refine reads it, the output the loss compares, the target) over the
    first batches, as float64 NumPy arrays."""
    import torch
    found = []
    with torch.no_grad():
        for _ in range(batches):
            blobs = net.forward(keep_blobs=True)
            found.append([blobs[name].double().numpy() for name in ("concat", "depth-refine", "Y")])
    return [np.concatenate(parts) for parts in zip(*found)]


def _repeated(sparse):
    """upsample-global's output (one value per 2x2 block, at its top-left; 0 elsewhere) -> each value repeated
    over its block, by NumPy indexing."""
    assert not sparse[..., 1::2, :].any() and not sparse[..., :, 1::2].any()
    repeated = np.repeat(np.repeat(sparse[..., ::2, ::2], 2, axis=-2), 2, axis=-1)
    return repeated[..., :sparse.shape[-2], :sparse.shape[-1]]


@pytest.mark.parametrize("normalised", [False, True])
def test_refining_output_starts_as_the_least_squares_line_from_stage_1s_depth(tmp_path, rooms, normalised):
    from eigen_depth.train import start_from_global_depth
    net_param, settings, build = _refining_net_without_dropout(tmp_path, rooms, normalised)
    with build() as reference:  # the same fillers (seed) and the same first batches
        concat, _, target = _depth_and_output(reference, 2)
    depth = _repeated(concat[:, -1:])  # stage 1's normalised depth as upsample-global leaves it, filled in
    slope, intercept = np.polyfit(depth.ravel(), target.ravel(), 1)
    with build() as net:
        line = start_from_global_depth(net, net_param, settings, batches=2)
        assert line == (pytest.approx(intercept, rel=1e-6), pytest.approx(slope, rel=1e-6))
        # the carried channel: from conv2-refine's last input channel over the 2x2 taps up and left of the centre
        weight = net.layer_by_name("conv2-refine").blobs[0].detach().numpy()
        assert np.count_nonzero(weight[0]) == 4 and (weight[0, -1, 1:3, 1:3] > 0).all()
        assert np.count_nonzero(net.layer_by_name("conv3-refine").blobs[0].detach().numpy()[0]) == 1
        # the other channels keep their fillers
        assert np.count_nonzero(weight[1:]) == weight[1:].size
        # with conv5-refine's filler weights on the other channels at 0, the output is the line exactly
        # (with batch normalisation: an affine map of the depth, normalised by its batch statistics)
        import torch
        with torch.no_grad():
            net.layer_by_name("conv5-refine").blobs[0][:, 1:] = 0
        concat, output, _ = _depth_and_output(net, 1)
    depth = _repeated(concat[:, -1:])
    if normalised:
        assert np.corrcoef(depth.ravel(), output.ravel())[0, 1] == pytest.approx(1.0, abs=1e-9)
    else:
        np.testing.assert_allclose(output, intercept + slope * depth, rtol=1e-5, atol=1e-6)

