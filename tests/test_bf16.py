"""--bf16: the net computes in bfloat16 (weights and activations rounded to 8 significant bits), against OpenCV's
float32 Caffe forward, and its options."""
import os

import numpy as np
import pytest
import torch

from eigen_depth.inference import ModelLoader, Snapshot, check_precision, load_model
from eigen_depth.errors import EigenDepthError

# A small net of the thesis's layer types: a strided 11x11 convolution, ReLU, LRN, padded MAX pooling, a grouped
# 5x5 convolution, an inner product reshaped to a map and MVN-normalised, a bilinear Deconvolution, Concat and
# Power, as in the refining net (docs/specification.md section 3.4).
NET = """name: "small_refine"
input: "data" input_shape { dim: 2 dim: 3 dim: 45 dim: 61 }
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 8 kernel_size: 11 stride: 2 pad: 2 } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "n1" type: "LRN" bottom: "c1" top: "n1" lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }
layer { name: "p1" type: "Pooling" bottom: "n1" top: "p1" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "c2" type: "Convolution" bottom: "p1" top: "c2"
        convolution_param { num_output: 8 kernel_size: 5 pad: 2 group: 2 } }
layer { name: "r2" type: "ReLU" bottom: "c2" top: "c2" }
layer { name: "fc" type: "InnerProduct" bottom: "c2" top: "fc" inner_product_param { num_output: 30 } }
layer { name: "shape" type: "Reshape" bottom: "fc" top: "map" reshape_param { shape { dim: 0 dim: 1 dim: 5 dim: 6 } } }
layer { name: "mvn" type: "MVN" bottom: "map" top: "mvn" }
layer { name: "up" type: "Deconvolution" bottom: "mvn" top: "up"
        param { lr_mult: 0 } convolution_param { num_output: 1 kernel_size: 4 stride: 2 pad: 1 bias_term: false
        weight_filler { type: "bilinear" } } }
layer { name: "c3" type: "Convolution" bottom: "up" top: "c3" convolution_param { num_output: 2 kernel_size: 3 pad: 1 } }
layer { name: "cat" type: "Concat" bottom: "c3" bottom: "up" top: "cat" }
layer { name: "c4" type: "Convolution" bottom: "cat" top: "c4" convolution_param { num_output: 1 kernel_size: 3 pad: 1 } }
layer { name: "out" type: "Power" bottom: "c4" top: "depth" power_param { scale: 0.5 shift: 1 } }
"""

# bfloat16 keeps 8 significant bits: rounding to nearest moves a value by at most U = 2^-8 of itself. The net
# rounds the input and the weights, and every layer's output, once each: the 12 layers above make at most 14
# roundings along any path from the input to the output. To first order each moves the output by at most U times
# the output's sensitivity to that quantity; the MVN layer rescales its input to unit spread, so nothing before it
# is amplified beyond its own relative error. The bound used below, 14 roundings x U x the largest output, is that
# first-order sum with the sensitivities bounded by one (the float32 reference itself differs from Caffe by 1e-6).
U = 2.0 ** -8
ROUNDINGS = 14


def write_net(tmp_path):
    from eigen_depth.testing import write_random_caffemodel
    prototxt, caffemodel = tmp_path / "small.prototxt", tmp_path / "small.caffemodel"
    prototxt.write_text(NET)
    write_random_caffemodel(str(prototxt), str(caffemodel), seed=5)
    return Snapshot("small", str(caffemodel), str(prototxt))


def opencv_forward(snapshot, x):
    import cv2
    reference = cv2.dnn.readNetFromCaffe(snapshot.prototxt, snapshot.caffemodel)
    reference.setInput(x)
    return reference.forward()


@pytest.mark.parametrize("layout", ["nchw", "nhwc", "auto"])
def test_a_bfloat16_net_is_within_its_rounding_of_opencvs_float32_numbers(tmp_path, layout):
    snapshot = write_net(tmp_path)
    x = np.random.default_rng(4).uniform(-100, 100, (2, 3, 45, 61)).astype(np.float32)
    expected = opencv_forward(snapshot, x)
    model = load_model(snapshot, torch.device("cpu"), layout=layout, bf16=True)
    assert {p.dtype for p in model.net.parameters()} == {torch.bfloat16}
    got = np.concatenate([model.predict(x[i:i + 1]) for i in range(2)]) if layout == "auto" else model.predict(x)
    assert got.dtype == np.float32
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=ROUNDINGS * U * scale)
    # and it did compute in bfloat16: further from OpenCV than float32's own rounding (1e-6 of the magnitude)
    assert np.abs(got - expected).max() > 1e-4 * scale


def test_max_pooling_with_padding_in_bfloat16_takes_the_largest_value_of_each_window():
    from eigen_depth.caffe import parse_text, schema
    from eigen_depth.net import CaffeNet
    net = CaffeNet(parse_text(schema.NetParameter, """
        layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 5 dim: 7 } } }
        layer { name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
        """), phase="TEST").to(torch.bfloat16)
    x = -np.random.default_rng(1).uniform(1e30, 3e38, (1, 2, 5, 7))  # all negative: the padding must never win
    x_bf16 = torch.from_numpy(x).to(torch.bfloat16)
    with torch.no_grad():
        got = net({"x": x_bf16})["y"].float().numpy()
    values = x_bf16.float().numpy()
    # Caffe: out = ceil((5 + 2 - 3) / 2) + 1 = 3 rows, ceil((7 + 2 - 3) / 2) + 1 = 4 columns; window [2i - 1, 2i + 2)
    expected = np.empty((1, 2, 3, 4))
    for i in range(3):
        for j in range(4):
            rows, cols = slice(max(2 * i - 1, 0), min(2 * i + 2, 5)), slice(max(2 * j - 1, 0), min(2 * j + 2, 7))
            expected[0, :, i, j] = values[0, :, rows, cols].max(axis=(1, 2))
    np.testing.assert_array_equal(got, expected)


def test_winograds_layout_and_bf16_are_refused_together_in_one_line():
    with pytest.raises(EigenDepthError, match="--layout winograd computes in float32 and --bf16"):
        ModelLoader(layout="winograd", bf16=True)
    check_precision("auto", True)
    check_precision("winograd", False)


def test_a_cpu_without_bfloat16_arithmetic_is_warned_of_once(tmp_path, monkeypatch, capsys):
    import eigen_depth.devices as devices
    snapshot = write_net(tmp_path)
    monkeypatch.setattr(devices, "native_bfloat16", lambda device: False)
    loader = ModelLoader(layout="nchw", bf16=True)
    for _ in range(2):
        loader(snapshot, torch.device("cpu"))
    warnings = [line for line in capsys.readouterr().err.splitlines() if "--bf16" in line]
    assert len(warnings) == 1 and "emulates it" in warnings[0]


def images_and_snapshot(tmp_path):
    import cv2
    snaps, images = tmp_path / "snaps", tmp_path / "in"
    os.makedirs(images)
    os.makedirs(snaps)
    write_net(snaps)
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(images / f"{i:05d}_colors.png"), rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
        cv2.imwrite(str(images / f"{i:05d}_depth.png"), rng.integers(20, 256, (30, 40), dtype=np.uint8))
    return images, snaps


def test_test_depth_runs_in_bfloat16_and_refuses_the_winograd_layout_with_it(tmp_path, monkeypatch, capsys):
    import json

    from eigen_depth import cli, inference
    images, snaps = images_and_snapshot(tmp_path)
    seen = []
    original = inference.load_model
    monkeypatch.setattr(inference, "load_model", lambda *a, **k: seen.append(k["bf16"]) or original(*a, **k))
    argv = ["test-depth", images, images, tmp_path / "out", snaps, "--no-progress", "--bf16"]
    assert cli.main([str(arg) for arg in argv]) == 0
    assert seen == [True]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert np.isfinite(results["snapshots"]["small"]["metrics"]["MVN"])
    capsys.readouterr()
    assert cli.main([str(arg) for arg in argv[:-1]] + ["--layout", "winograd", "--bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--bf16" in err and "--layout winograd" in err
    assert seen == [True]  # refused before any snapshot was read


def test_predict_passes_bf16_to_the_net(tmp_path, monkeypatch):
    from eigen_depth import cli, inference
    images, snaps = images_and_snapshot(tmp_path)
    seen = []
    original = inference.load_model
    monkeypatch.setattr(inference, "load_model", lambda *a, **k: seen.append(k["bf16"]) or original(*a, **k))
    argv = ["predict", images / "00000_colors.png", "--model", snaps / "small.prototxt", "--weights",
            snaps / "small.caffemodel", "--out", tmp_path / "pred", "--bf16", "--no-progress"]
    assert cli.main([str(arg) for arg in argv]) == 0
    assert seen == [True]
