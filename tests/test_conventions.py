"""How images become a net's input and its output becomes depth (eigen_depth.conventions), by the net's name
or by options: the thesis's nets (RGB x 255 - 127, meters / 10), FCRN (BGR minus ImageNet's means, meters)
and DenseDepth (BGR / 255, 10 m / depth). The truth is arithmetic done by hand on uniform images and 1x1
convolution nets whose output is a known function of one input channel, run through the real commands."""
import json
import os

import cv2
import numpy as np
import pytest
import torch

from eigen_depth import cli
from eigen_depth.conventions import FAMILIES, THESIS, Convention, of_net
from eigen_depth.net import CaffeNet

# a uniform test image: R, G, B = 51, 102, 153 (0.2, 0.4, 0.6)
RGB = (51, 102, 153)
PICK_NET = """name: "{name}"
layer {{ name: "input" type: "Input" top: "X" input_param {{ shape {{ dim: 1 dim: 3 dim: 12 dim: 16 }} }} }}
layer {{ name: "pick" type: "Convolution" bottom: "X" top: "depth" convolution_param {{ num_output: 1 kernel_size: 1 }} }}
"""


def uniform_rgb(height=12, width=16):
    return np.broadcast_to(np.array(RGB, np.float32) / 255, (height, width, 3)).copy()


def test_each_family_prepares_the_input_by_hand():
    rgb = uniform_rgb()
    # the thesis's: R, G, B * 255 - 127
    np.testing.assert_allclose(THESIS.prepare(rgb, 12, 16)[:, 0, 0], [51 - 127, 102 - 127, 153 - 127], atol=1e-4)
    # FCRN: B, G, R minus 104, 117, 123
    np.testing.assert_allclose(FAMILIES["fcrn"].prepare(rgb, 12, 16)[:, 5, 7], [153 - 104, 102 - 117, 51 - 123],
                               atol=1e-4)
    # DenseDepth: B, G, R / 255
    np.testing.assert_allclose(FAMILIES["densedepth"].prepare(rgb, 12, 16)[:, 11, 15], [0.6, 0.4, 0.2], atol=1e-6)
    for convention in (THESIS, *FAMILIES.values()):
        chw = convention.prepare(rgb, 12, 16)
        assert chw.dtype == np.float32 and chw.shape == (3, 12, 16)
        # written back as the RGB image it shows (the original truncates float32 to uint8: within 1)
        back = convention.to_rgb_uint8(chw)
        assert back.shape == (12, 16, 3) and np.abs(back.astype(int) - RGB).max() <= 1


def test_each_family_reads_its_output_as_depth_by_hand():
    out = np.array([0.25, 2.0, 4.0], np.float32)
    np.testing.assert_allclose(THESIS.to_tenth_m(out), [0.25, 2.0, 4.0])                  # already meters / 10
    np.testing.assert_allclose(FAMILIES["fcrn"].to_tenth_m(out), [0.025, 0.2, 0.4])        # meters
    np.testing.assert_allclose(FAMILIES["densedepth"].to_tenth_m(out), [4.0, 0.5, 0.25])   # 10 m / d: 40, 5, 2.5 m
    # an inverse output at or below 0 reads as the farthest depth, 1000 m
    np.testing.assert_allclose(FAMILIES["densedepth"].to_tenth_m(np.array([0.0, -3.0], np.float32)), [100, 100])


def test_the_convention_comes_from_the_net_name_and_options_replace_parts():
    assert of_net("fcrn_deploy") == of_net("FCRN") == FAMILIES["fcrn"]
    assert of_net("densedepth_train") == FAMILIES["densedepth"]
    assert of_net("global_context_norm") == of_net("fcrnx") == of_net("") == THESIS
    changed = FAMILIES["fcrn"].overridden(channel_order="rgb", mean=None, output_unit_m=10.0)
    assert changed == Convention("rgb", (104.0, 117.0, 123.0), 1.0, 10.0, False)
    with pytest.raises(ValueError):
        Convention(mean=(1.0, 2.0))


def pick_snapshot(folder, name, weights, bias=0.0):
    """folder/snap.{prototxt,caffemodel}: a net named `name` whose depth is weights . input + bias at each
    pixel (a 1x1 convolution)."""
    os.makedirs(folder, exist_ok=True)
    prototxt = os.path.join(folder, "snap.prototxt")
    with open(prototxt, "w") as handle:
        handle.write(PICK_NET.format(name=name))
    net = CaffeNet(prototxt, "TEST", fill=False)
    conv = net.layer_by_name("pick")
    with torch.no_grad():
        conv.blobs[0].copy_(torch.tensor(weights, dtype=torch.float32).reshape(1, 3, 1, 1))
        conv.blobs[1].fill_(bias)
    net.save(os.path.join(folder, "snap.caffemodel"))
    return prototxt


def write_pair(folder, gt_pixel):
    """folder/a_colors.png (the uniform RGB) and folder/a_depth.png (8-bit, gt_pixel / 255 = depth / 10 m)."""
    os.makedirs(folder, exist_ok=True)
    cv2.imwrite(os.path.join(folder, "a_colors.png"), np.full((30, 40, 3), RGB[::-1], np.uint8))
    cv2.imwrite(os.path.join(folder, "a_depth.png"), np.full((30, 40), gt_pixel, np.uint8))


def run_cli(capsys, *argv):
    status = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("name, weights, bias, options, depth_m", [
    # FCRN: channel 0 is B: 0.01 * (153 - 104) = 0.49 m
    ("fcrn_deploy", (0.01, 0, 0), 0.0, (), 0.49),
    # the thesis's: channel 0 is R: 0.01 * (51 - 127) = -0.76, in tenths: -7.6 m
    ("tiny_global", (0.01, 0, 0), 0.0, (), -7.6),
    # DenseDepth: channel 2 is R / 255 = 0.2, output 0.2 + 4.8 = 5, depth 10 m / 5 = 2 m
    ("densedepth_deploy", (0, 0, 1), 4.8, (), 2.0),
    # options replace the family's: FCRN read as RGB without means, the output in units of 0.5 m:
    # channel 0 is R: 0.01 * 51 * 0.5 = 0.255 m
    ("fcrn_deploy", (0.01, 0, 0), 0.0, ("--channel-order", "rgb", "--input-mean", "0", "--output-unit-m", "0.5"),
     0.255),
    # per-channel means in the net's order and a scale: ((153 - 3) * 0.1) * 0.01 = 0.15 m
    ("fcrn_deploy", (0.01, 0, 0), 0.0, ("--input-mean", "3,2,1", "--input-scale", "0.1"), 0.15),
])
def test_get_depth_writes_meters_by_the_nets_convention(tmp_path, capsys, name, weights, bias, options, depth_m):
    pick_snapshot(tmp_path / "snaps", name, weights, bias)
    os.makedirs(tmp_path / "in")
    cv2.imwrite(str(tmp_path / "in" / "a.png"), np.full((30, 40, 3), RGB[::-1], np.uint8))
    status, out, err = run_cli(capsys, "get-depth", tmp_path / "in", tmp_path / "out", tmp_path / "snaps", "--npy",
                               "--size", "24x32", "--no-progress", *options)
    assert status == 0, err
    depth = np.load(tmp_path / "out_abs" / "snap" / "a_depth.npy")
    assert depth.shape == (24, 32)
    np.testing.assert_allclose(depth, depth_m, rtol=1e-4, atol=1e-5)
    assert ("snap: input" in out) == (name != "tiny_global" or bool(options))


def test_test_depth_scores_each_family_in_meters(tmp_path, capsys):
    """A constant output of 2: FCRN's 2 m and DenseDepth's 10 m / 2 = 5 m against a GT of 51 / 255 x 10 m = 2 m:
    RMSE 0 and 3 m; the thesis's reading (2 x 10 m = 20 m) gives 18 m, and 8 m in the standard metrics, which
    clip predictions to 10 m."""
    write_pair(tmp_path / "pairs", 51)
    expected = {"fcrn_deploy": (0.0, 0.0), "densedepth_deploy": (3.0, 3.0), "tiny_global": (18.0, 8.0)}
    for name, (rmse, standard_rmse) in expected.items():
        pick_snapshot(tmp_path / name, name, (0, 0, 0), bias=2.0)
        out_dir = tmp_path / f"out_{name}"
        status, out, err = run_cli(capsys, "test-depth", tmp_path / "pairs", tmp_path / "pairs", out_dir,
                                   tmp_path / name, "--no-progress", "--no-images")
        assert status == 0, err
        record = json.loads((out_dir / "results.json").read_text())
        snapshot = record["snapshots"]["snap"]
        assert snapshot["metrics"]["RMSE"] == pytest.approx(rmse, abs=1e-4)
        assert snapshot["metrics"]["rmse"] == pytest.approx(standard_rmse, abs=1e-4)  # the standard NYU metric
        assert snapshot["settings"]["convention"]["channel_order"] == ("rgb" if name == "tiny_global" else "bgr")
    # an option turns the thesis's reading into meters: RMSE 0
    status, out, err = run_cli(capsys, "test-depth", tmp_path / "pairs", tmp_path / "pairs", tmp_path / "o2",
                               tmp_path / "tiny_global", "--no-progress", "--no-images", "--output-unit-m", "1")
    assert status == 0, err
    assert "output meters" in out


def test_predict_uses_the_nets_convention(tmp_path, capsys):
    prototxt = pick_snapshot(tmp_path / "snaps", "fcrn_deploy", (0.01, 0, 0))
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.full((30, 40, 3), RGB[::-1], np.uint8))
    status, out, err = run_cli(capsys, "predict", image, "--model", prototxt, "--weights",
                               tmp_path / "snaps" / "snap.caffemodel", "--out", tmp_path / "out", "--no-progress")
    assert status == 0, err
    depth = np.load(tmp_path / "out" / "a_depth.npy")
    assert depth.shape == (30, 40)
    np.testing.assert_allclose(depth, 0.49, rtol=1e-4)          # B: 0.01 * (153 - 104) m
    status, out, err = run_cli(capsys, "predict", image, "--model", prototxt, "--weights",
                               tmp_path / "snaps" / "snap.caffemodel", "--out", tmp_path / "out2", "--no-progress",
                               "--input-mean", "0")
    assert status == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "out2" / "a_depth.npy"), 1.53, rtol=1e-4)  # 0.01 * 153 m


@pytest.mark.parametrize("option, value", [("--input-mean", "1,2"), ("--input-mean", "x"), ("--input-scale", "0"),
                                           ("--output-unit-m", "-1"), ("--input-mean", "nan")])
def test_bad_convention_options_are_one_line_errors(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as stop:
        cli.main(["get-depth", str(tmp_path), str(tmp_path / "o"), str(tmp_path), option, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err
