"""The snapshot evaluator end to end (tools/test_depth.py, get_depth.py, test_grad.py; docs/specification.md section 4).

The truth is `eigen_depth.original.test_depth` (imported as reference_test_depth) and `reference_test_grad`
below: the original's per-image algorithm written out from docs/specification.md section 4 (scikit-image read and resize, x255 - 127, one forward per image with
OpenCV's dnn, scipy's zoom on (1, 1, h, w), the metrics in NumPy float32, the MVN fit, V(d), uint8
truncation and cv2.imwrite). The evaluator runs batched, threaded and vectorised; with the same forward
(OpenCV's, injected) it must give the same metrics and the same PNG pixels, and with its own (torch) forward
the same metrics to float rounding. Data: tools/make_examples.py (the Middlebury pair), small nets here.
"""
import csv
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import skimage.io
import skimage.transform
import skimage.util

from eigen_depth import cli, evaluate
from eigen_depth.original import cv2_forward_of, imwrite, load, visual
from eigen_depth.original import metrics as original_metrics
from eigen_depth.original import test_depth as reference_test_depth
from eigen_depth.errors import ShapeError
from eigen_depth.testing import write_random_caffemodel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Thesis-shaped tiny nets: input X (N,3,218,298); `depth` (N,1,27,37) like the global net, `gradient`
# (N,2,25,35) like the gradient net.
DEPTH_NET = """name: "tiny_depth"
layer { name: "input" type: "Input" top: "X" input_param { shape { dim: 1 dim: 3 dim: 218 dim: 298 } } }
layer { name: "conv1" type: "Convolution" bottom: "X" top: "conv1" convolution_param { num_output: 3 kernel_size: 8 stride: 8 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2" convolution_param { num_output: 1 kernel_size: 3 pad: 1 } }
layer { name: "power" type: "Power" bottom: "conv2" top: "depth" power_param { scale: 0.002 shift: 0.3 } }
"""
DEPTH_LAYER = "power"       # OpenCV names outputs by layer
GRADIENT_NET = """name: "tiny_gradient"
layer { name: "input" type: "Input" top: "X" input_param { shape { dim: 1 dim: 3 dim: 218 dim: 298 } } }
layer { name: "conv1" type: "Convolution" bottom: "X" top: "conv1" convolution_param { num_output: 2 kernel_size: 11 stride: 4 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 4 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2" convolution_param { num_output: 2 kernel_size: 3 pad: 1 } }
layer { name: "power" type: "Power" bottom: "conv2" top: "gradient" power_param { scale: 0.01 } }
"""
TWO_OUTPUTS_NET = """name: "two_outputs"
layer { name: "input" type: "Input" top: "X" input_param { shape { dim: 1 dim: 3 dim: 218 dim: 298 } } }
layer { name: "conv1" type: "Convolution" bottom: "X" top: "conv1" convolution_param { num_output: 1 kernel_size: 8 stride: 8 } }
layer { name: "a" type: "Power" bottom: "conv1" top: "a" power_param { scale: 0.001 shift: 0.2 } }
layer { name: "b" type: "Power" bottom: "conv1" top: "b" power_param { scale: 0.002 shift: 0.4 } }
"""
TITLES = ["AbsRelDiff", "SqrRelDiff", "RMSE", "RMSELog", "SIMSE", "Log10", "MVN", "Threshold 1.25",
          "Threshold 1.25^2", "Threshold 1.25^3"]


# ============================================================================================ fixtures
@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """tools/make_examples.py's data (run in-process: its main())."""
    folder = tmp_path_factory.mktemp("examples")
    spec = importlib.util.spec_from_file_location("make_examples", os.path.join(ROOT, "tools", "make_examples.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(folder)]) == 0
    return folder


def snapshot(folder, name, text=DEPTH_NET, seed=0):
    os.makedirs(folder, exist_ok=True)
    prototxt = os.path.join(folder, name + ".prototxt")
    with open(prototxt, "w") as handle:
        handle.write(text)
    write_random_caffemodel(prototxt, os.path.join(folder, name + ".caffemodel"), seed=seed)
    return prototxt


@pytest.fixture(scope="module")
def snaps(tmp_path_factory):
    """Two snapshots of the tiny depth net, as a training run names them."""
    folder = str(tmp_path_factory.mktemp("snaps"))
    snapshot(folder, "tiny_iter_100", seed=1)
    snapshot(folder, "tiny_iter_200", seed=2)
    return folder


def subset(examples, tmp_path, views=("left", "full")):
    """A folder with some of the example pairs (inputs and GT together, as the thesis's test folder)."""
    folder = tmp_path / "data"
    folder.mkdir()
    for view in views:
        for kind in ("colors", "depth"):
            shutil.copy(examples / "test" / f"motorcycle_{view}_{kind}.png", folder)
    return folder


# ============================================================================ the original, one image at a time
class Cv2Forward:
    """OpenCV's dnn as the network (an independent Caffe implementation), one image per forward."""

    def __init__(self, prototxt, caffemodel, layer):
        self.net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
        self.layer = layer

    def __call__(self, x):
        self.net.setInput(np.ascontiguousarray(x, dtype=np.float32))
        return self.net.forward(self.layer).copy()


class Cv2Model:
    """The evaluator's model interface over Cv2Forward, so the evaluator can run the very same forward."""

    def __init__(self, snap, layer, fail=False):
        self.forward = Cv2Forward(snap.prototxt, snap.caffemodel, layer)
        self.input_size, self.output_name, self.fail = (218, 298), layer, fail
        self.output_shape = self.forward(np.zeros((1, 3, 218, 298), np.float32)).shape[1:]

    def predict(self, batch):
        if self.fail:
            raise ShapeError("injected failure in the middle of a snapshot")
        return np.concatenate([self.forward(batch[i:i + 1]) for i in range(len(batch))])


def cv2_loader(layer, fail_for=()):
    def load(snap, device, output_blob, kind):
        return Cv2Model(snap, layer, fail=snap.name in fail_for)
    return load


def reference_top(results):
    """The original's ranking of the averaged metrics: ascending, reversed for the thresholds."""
    averages = {s: np.mean(list(images.values()), axis=0) for s, images in results.items()}
    tops = {}
    for i, title in enumerate(TITLES):
        ranked = sorted(averages, key=lambda s: averages[s][i])
        tops[title] = list(reversed(ranked)) if i > 6 else ranked
    return averages, tops


# ============================================================================================ helpers
def options(input_dir, gt_dir, out_dir, snaps_dir, tool="test_depth", **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("device", "cpu")
    return evaluate.Options(tool=tool, input_dir=str(input_dir), gt_dir=str(gt_dir) if gt_dir else None,
                            out_dir=str(out_dir), snaps_dir=str(snaps_dir), **kwargs)


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def pixels(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def tops_printed(text):
    return {m.group(1): re.findall(r"^\d+\. (\S+): ", m.group(2), re.M)
            for m in re.finditer(r"TOP \d+ for (.+)\n((?:\d+\. .*\n)*)", text)}


def pngs(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".png"))


# ============================================================================================ test_depth
def test_with_the_same_forward_metrics_and_pngs_are_the_originals(examples, snaps, tmp_path, capsys):
    data = examples / "test"
    out = tmp_path / "ours"
    outcome = evaluate.run(options(data, data, out, snaps, loader=cv2_loader(DEPTH_LAYER)))
    printed = capsys.readouterr().out
    expected = reference_test_depth(str(data), str(data), str(tmp_path / "ref"), snaps, cv2_forward_of(DEPTH_LAYER))
    assert outcome.status == 0 and not outcome.skipped
    averages, tops = reference_top(expected)
    for snap, per_image in expected.items():
        rows = {row["image"] + ".png": row for row in read_csv(out / snap / "metrics.csv")}
        assert sorted(rows) == sorted(per_image)
        for image, values in per_image.items():
            np.testing.assert_allclose([float(rows[image][t]) for t in TITLES], values, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose([outcome.results[snap][t] for t in TITLES], averages[snap], rtol=1e-5, atol=1e-9)
        for suffix in ("", "_abs"):
            ours, theirs = f"{out}{suffix}/{snap}", f"{tmp_path}/ref{suffix}/{snap}"
            assert pngs(theirs) == [n for n in pngs(ours) if n != "contact_sheet.png"]
            for name in pngs(theirs):
                np.testing.assert_array_equal(pixels(f"{ours}/{name}"), pixels(f"{theirs}/{name}"), err_msg=name)
    assert tops_printed(printed) == tops


def test_png_strategy_default_writes_the_originals_bytes_and_rle_its_pixels(examples, snaps, tmp_path):
    """zlib's strategy changes the files' bytes, never their pixels: with "default" every PNG is byte for byte
    the original's cv2.imwrite at compression 8; with rle (the evaluator's default) it is OpenCV's RLE encoding
    of the same pixels, every row Paeth-filtered where OpenCV can be told so."""
    data, one = examples / "test", tmp_path / "snaps"
    one.mkdir()
    for extension in (".prototxt", ".caffemodel"):
        shutil.copy(os.path.join(snaps, "tiny_iter_100" + extension), one)
    reference_test_depth(str(data), str(data), str(tmp_path / "ref"), str(one), cv2_forward_of(DEPTH_LAYER))
    for strategy in ("default", "rle"):
        out = tmp_path / strategy
        evaluate.run(options(data, data, out, one, loader=cv2_loader(DEPTH_LAYER), png_strategy=strategy))
        for suffix in ("", "_abs"):
            ours, theirs = f"{out}{suffix}/tiny_iter_100", f"{tmp_path}/ref{suffix}/tiny_iter_100"
            assert pngs(theirs) and pngs(theirs) == [n for n in pngs(ours) if n != "contact_sheet.png"]
            for name in pngs(theirs):
                with open(f"{ours}/{name}", "rb") as mine, open(f"{theirs}/{name}", "rb") as original:
                    written, expected = mine.read(), original.read()
                if strategy == "rle":
                    params = [cv2.IMWRITE_PNG_COMPRESSION, 8, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
                    if hasattr(cv2, "IMWRITE_PNG_FILTER"):
                        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH]
                    expected = cv2.imencode(".png", pixels(f"{theirs}/{name}"), params)[1].tobytes()
                    assert np.array_equal(pixels(f"{ours}/{name}"), pixels(f"{theirs}/{name}")), name
                assert written == expected, (strategy, name)


@pytest.mark.parametrize("tool", ["test_depth", "test_grad", "get_depth"])
def test_png_strategy_option_is_parsed_into_the_options_and_unknown_names_are_refused(tool, capsys):
    import argparse
    from eigen_depth.evaluate.command import add_arguments, options_from_args
    parser = argparse.ArgumentParser()
    add_arguments(parser, tool)
    folders = ["in", "gt", "out", "snaps"] if tool != "get_depth" else ["in", "out", "snaps"]
    assert options_from_args(parser.parse_args(folders), tool).png_strategy == "rle"
    assert options_from_args(parser.parse_args(folders + ["--png-strategy", "default"]), tool).png_strategy == "default"
    with pytest.raises(SystemExit):
        parser.parse_args(folders + ["--png-strategy", "zip"])
    assert "invalid choice: 'zip'" in capsys.readouterr().err


def test_the_torch_forward_gives_the_same_metrics_to_float_rounding(examples, snaps, tmp_path, capsys):
    data = examples / "test"
    outcome = evaluate.run(options(data, data, tmp_path / "out", snaps, batch_size=3))
    expected = reference_test_depth(str(data), str(data), str(tmp_path / "ref"), snaps, cv2_forward_of(DEPTH_LAYER))
    averages, _ = reference_top(expected)
    pixels_per_image = 320 * 420
    for snap in expected:
        got = [outcome.results[snap][t] for t in TITLES]
        np.testing.assert_allclose(got[:7], averages[snap][:7], rtol=1e-5)
        # a threshold count may differ by a pixel where the two forwards round differently at a ratio of 1.25^k
        np.testing.assert_allclose(got[7:], averages[snap][7:], rtol=0, atol=2.0 / pixels_per_image)
    assert "TOP 2 for RMSE" in capsys.readouterr().out


def test_log_outputs_are_mapped_back_before_zooming(examples, snaps, tmp_path):
    data = subset(examples, tmp_path, ("right",))
    outcome = evaluate.run(options(data, data, tmp_path / "out", snaps, log=True, loader=cv2_loader(DEPTH_LAYER)))
    expected = reference_test_depth(str(data), str(data), str(tmp_path / "ref"), snaps, cv2_forward_of(DEPTH_LAYER),
                                    log=True)
    averages, _ = reference_top(expected)
    for snap in expected:
        np.testing.assert_allclose([outcome.results[snap][t] for t in TITLES], averages[snap], rtol=1e-5, atol=1e-9)


def test_bgr_feeds_the_channels_reversed_and_still_writes_true_colours(examples, snaps, tmp_path):
    data = subset(examples, tmp_path, ("centre",))
    out = tmp_path / "out"
    outcome = evaluate.run(options(data, data, out, snaps, channel_order="bgr", loader=cv2_loader(DEPTH_LAYER),
                                   snapshots="*_100"))
    expected = reference_test_depth(str(data), str(data), str(tmp_path / "ref"), snaps, cv2_forward_of(DEPTH_LAYER),
                                    channel_order="bgr")
    averages, _ = reference_top(expected)
    np.testing.assert_allclose([outcome.results["tiny_iter_100"][t] for t in TITLES], averages["tiny_iter_100"],
                               rtol=1e-5, atol=1e-9)
    name = "motorcycle_centre_colors.png"
    np.testing.assert_array_equal(pixels(out / "tiny_iter_100" / name), pixels(tmp_path / "ref" / "tiny_iter_100" / name))


def test_the_output_tree_and_result_files(examples, snaps, tmp_path):
    data = subset(examples, tmp_path)
    out = tmp_path / "out"
    evaluate.run(options(data, data, str(out) + "/", snaps, sheet_images=2))
    assert sorted(os.listdir(out)) == ["metrics_vs_iteration.png", "results.csv", "results.json", "tiny_iter_100",
                                       "tiny_iter_200"]
    assert sorted(os.listdir(tmp_path / "out_abs")) == ["tiny_iter_100", "tiny_iter_200"]
    images = ["motorcycle_full_colors.png", "motorcycle_full_depth.png", "motorcycle_full_gt.png",
              "motorcycle_left_colors.png", "motorcycle_left_depth.png", "motorcycle_left_gt.png"]
    record = ".eigen_depth_outputs.json"    # hidden: what a later run may replace
    assert sorted(os.listdir(out / "tiny_iter_100")) == sorted(images + ["contact_sheet.png", "metrics.csv", record])
    assert sorted(os.listdir(tmp_path / "out_abs" / "tiny_iter_100")) == sorted(images + [record])
    assert json.loads((out / "tiny_iter_100" / record).read_text())["files"] == sorted(
        images + ["contact_sheet.png", "metrics.csv"])
    assert pixels(out / "tiny_iter_100" / "motorcycle_full_colors.png").shape == (218, 298, 3)
    assert pixels(out / "tiny_iter_100" / "motorcycle_full_depth.png").shape == (320, 420)
    assert pixels(out / "tiny_iter_100" / "contact_sheet.png").shape[2] == 3
    table = read_csv(out / "results.csv")
    assert [row["snapshot"] for row in table] == ["tiny_iter_100", "tiny_iter_200"]
    assert [row["iteration"] for row in table] == ["100", "200"]
    columns = list(table[0])
    assert columns[:3] == ["snapshot", "iteration", "images"] and table[0]["images"] == "2"
    for name in TITLES + ["abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "delta1", "delta2", "delta3"]:
        assert name in columns and "oracle " + name in columns
    results = json.load(open(out / "results.json"))
    assert results["tool"] == "test_depth" and results["skipped"] == {}
    record = results["snapshots"]["tiny_iter_200"]
    assert record["iteration"] == 200 and record["series"] == "tiny" and record["images"] == 2
    assert record["metrics"]["RMSE"] == pytest.approx(float(table[1]["RMSE"]), rel=1e-12)
    assert results["higher_is_better"]["Threshold 1.25"] and not results["higher_is_better"]["rmse"]
    # MVN is invariant to the fit: the oracle's MVN error equals the raw one
    assert float(table[0]["oracle MVN"]) == pytest.approx(float(table[0]["MVN"]), rel=1e-5)
    leftovers = [n for folder in (out, tmp_path / "out_abs") for n in os.listdir(folder) if n.startswith(".")]
    assert leftovers == []


def test_standard_and_oracle_metrics_follow_their_definitions(examples, snaps, tmp_path):
    data = subset(examples, tmp_path, ("left",))
    out = tmp_path / "out"
    evaluate.run(options(data, data, out, snaps, snapshots="tiny_iter_100", loader=cv2_loader(DEPTH_LAYER)))
    x = load(str(data / "motorcycle_left_colors.png"), 3, 298, 218) * np.float32(255) - np.float32(127)
    raw = Cv2Forward(os.path.join(snaps, "tiny_iter_100.prototxt"), os.path.join(snaps, "tiny_iter_100.caffemodel"),
                     DEPTH_LAYER)(x)
    zoomed = scipy.ndimage.zoom(raw, (1, 1, 320 / 27, 420 / 37), order=3)[0, 0] * 10.0
    gt = load(str(data / "motorcycle_left_depth.png"), 1, 420, 320)[0, 0] * 10.0
    row = read_csv(out / "tiny_iter_100" / "metrics.csv")[0]
    valid = (gt >= 1e-3) & (gt <= 10)
    assert 0.8 < valid.mean() < 1.0             # the example's holes (0 m) are left out
    p, g = np.clip(zoomed[valid].astype(np.float64), 1e-3, 10), gt[valid].astype(np.float64)
    e = np.log(p) - np.log(g)
    expected = {"abs_rel": np.mean(np.abs(p - g) / g), "sq_rel": np.mean((p - g) ** 2 / g),
                "rmse": np.sqrt(np.mean((p - g) ** 2)), "rmse_log": np.sqrt(np.mean(e ** 2)),
                "log10": np.mean(np.abs(np.log10(p) - np.log10(g))), "silog": 100 * np.sqrt(np.var(e)),
                "delta1": np.mean(np.maximum(p / g, g / p) < 1.25), "delta3": np.mean(np.maximum(p / g, g / p) < 1.25 ** 3)}
    for name, value in expected.items():
        assert float(row[name]) == pytest.approx(value, rel=1e-5), name
    fitted = (zoomed - zoomed.mean()) / zoomed.std() * gt.std() + gt.mean()
    np.testing.assert_allclose([float(row["oracle " + t]) for t in TITLES], original_metrics(fitted, gt),
                               rtol=1e-5, atol=2 / (320 * 420))


def test_gt_formats_png16mm_and_npy_read_the_same_depths(examples, snaps, tmp_path):
    # depths 2, 4, 6, 8, 10 m: 8-bit pixels 51..255, millimetres 2000..10000, meters in .npy
    levels = np.array([51, 102, 153, 204, 255], dtype=np.uint8)
    gt8 = levels[np.random.default_rng(3).integers(0, 5, (320, 420))]
    folders = {}
    for fmt in ("png8", "png16mm", "npy"):
        folder = tmp_path / fmt
        folder.mkdir()
        shutil.copy(examples / "test" / "motorcycle_left_colors.png", folder / "scene_colors.png")
        if fmt == "png8":
            cv2.imwrite(str(folder / "scene_depth.png"), gt8)
        elif fmt == "png16mm":
            cv2.imwrite(str(folder / "scene_depth.png"), (gt8.astype(np.uint16) // 51) * 2000)
        else:
            np.save(folder / "scene_depth.npy", gt8.astype(np.float64) / 255 * 10)
        folders[fmt] = folder
    got = {}
    for fmt, folder in folders.items():
        outcome = evaluate.run(options(folder, folder, tmp_path / f"out_{fmt}", snaps, gt_format=fmt,
                                       snapshots="*_100", write_images=False, sheet_images=0))
        got[fmt] = outcome.results["tiny_iter_100"]
    for fmt in ("png16mm", "npy"):
        for name, value in got["png8"].items():
            assert got[fmt][name] == pytest.approx(value, rel=1e-6, abs=1e-12), (fmt, name)


def test_gt_zeros_and_nan_clamp_for_the_thesis_metrics_and_are_masked_for_the_standard_ones(examples, snaps, tmp_path):
    depth8 = pixels(examples / "test" / "motorcycle_left_depth.png")
    holes = depth8 == 0
    assert holes.any()
    meters = depth8.astype(np.float64) / 255 * 10
    meters[holes] = np.nan                           # missing depth as NaN in the .npy, as 0 in the PNG
    for fmt in ("png8", "npy"):
        folder = tmp_path / fmt
        folder.mkdir()
        shutil.copy(examples / "test" / "motorcycle_left_colors.png", folder)
        shutil.copy(examples / "test" / "motorcycle_left_depth.png", folder)
        if fmt == "npy":
            np.save(folder / "motorcycle_left_depth.npy", meters)
    png = evaluate.run(options(tmp_path / "png8", tmp_path / "png8", tmp_path / "o1", snaps, snapshots="*_200",
                               write_images=False, sheet_images=0, loader=cv2_loader(DEPTH_LAYER)))
    npy = evaluate.run(options(tmp_path / "npy", tmp_path / "npy", tmp_path / "o2", snaps, snapshots="*_200",
                               gt_format="npy", write_images=False, sheet_images=0, loader=cv2_loader(DEPTH_LAYER)))
    expected = reference_test_depth(str(tmp_path / "png8"), str(tmp_path / "png8"), str(tmp_path / "ref"), snaps,
                                    cv2_forward_of(DEPTH_LAYER))["tiny_iter_200"]["motorcycle_left_colors.png"]
    for result in (png, npy):
        figures = result.results["tiny_iter_200"]
        assert all(math.isfinite(v) for v in figures.values())
        np.testing.assert_allclose([figures[t] for t in TITLES], expected, rtol=1e-5, atol=1e-9)
    for name in ("abs_rel", "rmse", "delta1", "silog"):
        assert npy.results["tiny_iter_200"][name] == pytest.approx(png.results["tiny_iter_200"][name], rel=1e-6)


def test_results_merge_across_runs_and_the_snapshot_glob_filters(examples, snaps, tmp_path, capsys):
    data = subset(examples, tmp_path, ("left",))
    out = tmp_path / "out"
    first = evaluate.run(options(data, data, out, snaps, snapshots="tiny_iter_200.caffemodel", write_images=False,
                                 sheet_images=0))
    assert list(first.results) == ["tiny_iter_200"]
    assert "TOP 1 for RMSE\n0. tiny_iter_200: " in capsys.readouterr().out
    evaluate.run(options(data, data, out, snaps, snapshots="*_100", write_images=False, sheet_images=0))
    assert [row["snapshot"] for row in read_csv(out / "results.csv")] == ["tiny_iter_100", "tiny_iter_200"]
    assert sorted(json.load(open(out / "results.json"))["snapshots"]) == ["tiny_iter_100", "tiny_iter_200"]


# ============================================================================================ bad input
def test_unpaired_files_are_listed_and_skipped(examples, snaps, tmp_path, capsys):
    data = subset(examples, tmp_path)
    shutil.copy(examples / "test" / "motorcycle_right_colors.png", data / "extra_colors.png")
    shutil.copy(examples / "test" / "motorcycle_right_depth.png", data / "lonely_depth.png")
    (data / "notes_colors.txt").write_text("not an image")
    outcome = evaluate.run(options(data, data, tmp_path / "out", snaps, snapshots="*_100", write_images=False))
    err = capsys.readouterr().err
    assert "skipping inputs without GT" in err and "extra_colors.png" in err
    assert "lonely_depth.png" in err and "notes_colors.txt" in err
    assert outcome.status == 0 and len(outcome.per_image["tiny_iter_100"][1]) == 2


def run_tool(tool, argv, capsys):
    status = evaluate.tool_main(tool, [str(a) for a in argv] + ["--no-progress", "--device", "cpu"])
    return status, capsys.readouterr()


def test_no_pairs_at_all_is_an_error(examples, snaps, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(examples / "test" / "motorcycle_left_colors.png", data / "a_colors.png")
    status, captured = run_tool("test_depth", [data, data, tmp_path / "out", snaps], capsys)
    assert status == 2
    assert "error:" in captured.err and "no input/GT pairs" in captured.err and "a_colors.png" in captured.err


def test_an_unreadable_image_names_the_file(examples, snaps, tmp_path, capsys):
    data = subset(examples, tmp_path, ("left",))
    (data / "broken_colors.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    shutil.copy(data / "motorcycle_left_depth.png", data / "broken_depth.png")
    status, captured = run_tool("test_depth", [data, data, tmp_path / "out", snaps], capsys)
    assert status == 2
    lines = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "broken_colors.png" in lines[0] and "cannot read" in lines[0]
    assert not [n for n in os.listdir(tmp_path / "out") if n.startswith(".")]     # no partial folder left


def test_snapshots_without_or_with_a_wrong_prototxt_are_skipped_and_the_rest_evaluated(examples, snaps, tmp_path,
                                                                                       capsys):
    data = subset(examples, tmp_path, ("left",))
    folder = tmp_path / "snaps"
    shutil.copytree(snaps, folder)
    shutil.copy(folder / "tiny_iter_100.caffemodel", folder / "orphan.caffemodel")          # no orphan.prototxt
    snapshot(str(folder), "wrong", GRADIENT_NET, seed=3)
    with open(folder / "wrong.prototxt", "w") as handle:                                      # weights of another net
        handle.write(DEPTH_NET)
    snapshot(str(folder), "ambiguous", TWO_OUTPUTS_NET, seed=4)
    for name in ("notes.txt", "tiny_iter_100.solverstate", "lonely.prototxt"):
        (folder / name).write_text("ignored")
    status, captured = run_tool("test_depth", [data, data, tmp_path / "out", folder], capsys)
    assert status == 1
    reasons = dict(re.findall(r"^skipping (\S+): (.+)$", captured.err, re.M))
    assert sorted(reasons) == ["ambiguous", "orphan", "wrong"]
    assert "orphan.prototxt" in reasons["orphan"]
    assert "wrong" in reasons["wrong"] and ("shape" in reasons["wrong"] or "blobs" in reasons["wrong"])
    assert "--output-blob" in reasons["ambiguous"]
    assert "tiny_iter_100\n" in captured.out and "TOP 2 for RMSE" in captured.out
    results = json.load(open(tmp_path / "out" / "results.json"))
    assert sorted(results["snapshots"]) == ["tiny_iter_100", "tiny_iter_200"]
    assert sorted(results["skipped"]) == ["ambiguous", "orphan", "wrong"]
    assert sorted(os.listdir(tmp_path / "out_abs")) == ["tiny_iter_100", "tiny_iter_200"]
    # --output-blob picks one of the two outputs
    status, captured = run_tool("test_depth", [data, data, tmp_path / "out2", folder, "--snapshots", "ambiguous",
                                               "--output-blob", "b"], capsys)
    assert status == 0 and "TOP 1 for RMSE\n0. ambiguous" in captured.out


def test_an_existing_snapshot_folder_is_replaced_and_kept_when_its_run_fails(examples, snaps, tmp_path):
    data = subset(examples, tmp_path, ("left",))
    out = tmp_path / "out"
    record = '{"written_by": "eigen-depth", "files": ["stale.png"]}'    # as an earlier run left them
    for folder in (out / "tiny_iter_100", out / "tiny_iter_200", tmp_path / "out_abs" / "tiny_iter_100"):
        folder.mkdir(parents=True)
        (folder / "stale.png").write_bytes(b"old")
        (folder / ".eigen_depth_outputs.json").write_text(record)
    outcome = evaluate.run(options(data, data, out, snaps, loader=cv2_loader(DEPTH_LAYER, fail_for={"tiny_iter_200"})))
    assert outcome.status == 1 and "injected failure" in outcome.skipped["tiny_iter_200"]
    assert "stale.png" not in os.listdir(out / "tiny_iter_100")
    assert "stale.png" not in os.listdir(tmp_path / "out_abs" / "tiny_iter_100")
    assert sorted(os.listdir(out / "tiny_iter_200")) == [".eigen_depth_outputs.json", "stale.png"]  # as they were
    assert not [n for n in os.listdir(out) + os.listdir(tmp_path / "out_abs") if n.startswith(".")]


def test_a_snapshot_folder_holding_files_no_run_wrote_there_is_not_replaced(examples, snaps, tmp_path, capsys):
    # a picture or a table of the user's among the results, or folders named like the evaluator's temporary ones:
    # none is replaced or removed; the files of the run's own plan and of its record may be
    data = subset(examples, tmp_path, ("left",))
    out = tmp_path / "out"
    ours = out / "tiny_iter_100"
    mine = {out / ".tiny_iter_100.partial" / "notes.txt": b"notes", out / "tiny_iter_100.old" / "a.txt": b"kept",
            tmp_path / "out_abs" / ".tiny_iter_100.old" / "b.txt": b"kept too"}
    for path, data_bytes in mine.items():
        path.parent.mkdir(parents=True)
        path.write_bytes(data_bytes)
    args = [data, data, out, snaps, "--snapshots", "*_100", "--sheet-images", "0"]
    assert run_tool("test_depth", args, capsys)[0] == 0
    for name in ("my_analysis.csv", "my_photo.png"):
        (ours / name).write_bytes(b"the user's")
        status, captured = run_tool("test_depth", args, capsys)
        assert status == 2 and f"{ours / name}: not a file this tool wrote" in captured.err
        os.unlink(ours / name)
    (ours / "motorcycle_left_gt.png").write_bytes(b"a file of the plan's name")   # replaced, as any output
    os.unlink(ours / ".eigen_depth_outputs.json")      # a folder without a record: the plan's names alone
    assert run_tool("test_depth", args, capsys)[0] == 0
    assert pixels(ours / "motorcycle_left_gt.png").shape == (320, 420)      # the GT picture again
    assert {path: path.read_bytes() for path in mine} == mine


def test_every_file_of_a_snapshot_folder_reaches_the_disk_before_the_folder_is_renamed(examples, snaps, tmp_path,
                                                                                        monkeypatch):
    # The per-image files are written in place inside `.<snapshot>.partial`; a crash after its rename but
    # before their data reached the disk would show the final folder with empty files. So each file is
    # fsynced (holding all its bytes; the contact sheet and metrics.csv under a temporary name renamed to
    # theirs) and the partial folder too, before os.replace; the parent after it.
    data = subset(examples, tmp_path, ("left",))
    out = tmp_path / "out"
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"), os.fstat(fd).st_size))
        real_fsync(fd)

    def replace(source, target):
        events.append(("replace", os.fspath(source), os.fspath(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    evaluate.run(options(data, data, out, snaps, snapshots="tiny_iter_100", loader=cv2_loader(DEPTH_LAYER)))
    for parent in (out, tmp_path / "out_abs"):
        final = parent / "tiny_iter_100"
        rename = next(i for i, event in enumerate(events) if event[0] == "replace" and event[2] == str(final))
        partial = events[rename][1]
        assert os.path.basename(partial).startswith(".tiny_iter_100.") and partial.endswith(".partial")
        synced = {}
        for kind, path, detail in events[:rename]:
            if kind == "fsync":
                synced[path] = detail
            elif path in synced:        # a temporary file synced, then renamed to its name
                synced[detail] = synced.pop(path)
        files = sorted(os.listdir(final))
        assert len(files) >= 3
        for name in files:
            assert synced[os.path.join(partial, name)] == os.path.getsize(final / name) > 0
        assert partial in synced
        assert ("fsync", str(parent)) in [event[:2] for event in events[rename + 1:]]


# ============================================================================================ tools and CLI
def test_the_tool_script_runs_and_prints_the_original_top_lists(examples, snaps, tmp_path):
    data = subset(examples, tmp_path, ("left",))
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "test_depth.py"), str(data), str(data),
                           str(tmp_path / "out"), snaps, "--log", "--no-progress", "--device", "cpu",
                           "--sheet-images", "0"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tiny_iter_100\ntiny_iter_200\n\n\nTOP 2 for AbsRelDiff\n0. tiny_iter_")
    assert set(tops_printed(done.stdout)) == set(TITLES)


def test_the_cli_subcommand_mirrors_the_tool(examples, snaps, tmp_path, capsys):
    data = subset(examples, tmp_path, ("left",))
    status = cli.main(["test-depth", str(data), str(data), str(tmp_path / "out"), snaps, "--snapshots", "*_100",
                       "--no-progress", "--no-images", "--sheet-images", "0", "--device", "cpu"])
    assert status == 0 and "TOP 1 for MVN" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "out" / "tiny_iter_100")) == [".eigen_depth_outputs.json", "metrics.csv"]
    status = cli.main(["test-depth", str(tmp_path / "missing"), str(data), str(tmp_path / "out"), snaps])
    assert status == 2 and "missing: the input folder is not a folder" in capsys.readouterr().err


# ============================================================================================ get_depth
def test_get_depth_writes_raw_maps_for_gray_rgba_jpeg_16_bit_and_tiff(examples, snaps, tmp_path, capsys):
    photos = tmp_path / "photos"
    shutil.copytree(examples / "photos", photos)
    astronaut16 = cv2.imread(str(photos / "astronaut_16bit.png"), cv2.IMREAD_UNCHANGED)       # BGR, 16-bit
    assert astronaut16.dtype == np.uint16 and (astronaut16 % 257 == 0).all()              # written as 8-bit * 257
    cv2.imwrite(str(photos / "astronaut_8bit.png"), (astronaut16 // 257).astype(np.uint8))
    (photos / "readme.txt").write_text("ignored")
    status, captured = run_tool("get_depth", [photos, tmp_path / "out", snaps, "--npy", "--png16",
                                              "--snapshots", "*_100"], capsys)
    assert status == 0 and "readme.txt" in captured.err
    folder = tmp_path / "out_abs" / "tiny_iter_100"
    assert not (tmp_path / "out").exists()                         # the original wrote only OUT_DIR_abs
    stems = ["astronaut_16bit", "astronaut_8bit", "camera_gray", "chelsea", "coffee_rgba", "rocket"]
    assert sorted(os.listdir(folder)) == sorted([".eigen_depth_outputs.json"] + [
        f"{s}{e}" for s in stems for e in (".png", "_depth.png", "_depth.npy", "_depth_mm.png")])
    gray = pixels(folder / "camera_gray.png")
    assert gray.shape == (218, 298, 3) and (gray[:, :, 0] == gray[:, :, 1]).all() and (gray[:, :, 1] == gray[:, :, 2]).all()
    np.testing.assert_array_equal(pixels(folder / "astronaut_16bit.png"), pixels(folder / "astronaut_8bit.png"))
    # the RGBA input: alpha ignored, so the written input is the RGB image's
    rgba = skimage.io.imread(photos / "coffee_rgba.png")
    x = skimage.transform.resize((rgba[:, :, :3] / 255).astype(np.float32), (218, 298, 3), order=1, mode="constant",
                                 anti_aliasing=False)
    expected = np.array(((x * 255 - 127 + 127) / 255.0) * 255, dtype=np.uint8)
    np.testing.assert_array_equal(pixels(folder / "coffee_rgba.png")[:, :, ::-1], expected)
    # the .npy is the raw output in meters at 320x420 (independent route: OpenCV forward, scipy zoom)
    depth = np.load(folder / "chelsea_depth.npy")
    x = load(str(photos / "chelsea.jpg"), 3, 298, 218) * np.float32(255) - np.float32(127)
    raw = Cv2Forward(os.path.join(snaps, "tiny_iter_100.prototxt"), os.path.join(snaps, "tiny_iter_100.caffemodel"),
                     DEPTH_LAYER)(x)
    np.testing.assert_allclose(depth, scipy.ndimage.zoom(raw, (1, 1, 320 / 27, 420 / 37), order=3)[0, 0] * 10,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pixels(folder / "chelsea_depth_mm.png"),
                                  np.clip(np.rint(depth.astype(np.float64) * 1000), 0, 65535).astype(np.uint16))
    np.testing.assert_array_equal(pixels(folder / "chelsea_depth.png"),
                                  np.array(visual(depth / np.float32(10)) * 255, dtype=np.uint8))


# ============================================================================================ test_grad
def reference_test_grad(input_dir, gt_dir, out_dir, snaps_dir, forward_of):
    """The original test_grad: {snapshot: [RMSE, MVN] averaged over images and both channels}."""
    kernels = [np.array([[-1, -1, -1], [0, 0, 0], [1, 1, 1]]), np.array([[-1, 0, 1]] * 3)]
    results = {}
    for name in sorted(n for n in os.listdir(snaps_dir) if n.endswith(".caffemodel")):
        snap = name.replace(".caffemodel", "")
        folder = os.path.join(out_dir, snap)
        os.makedirs(folder)
        forward = forward_of(os.path.join(snaps_dir, snap + ".prototxt"), os.path.join(snaps_dir, name))
        files = sorted(f for f in os.listdir(input_dir) if "colors" in f)
        total = np.zeros(2)
        for file in files:
            gt = load(os.path.join(gt_dir, file.replace("colors", "depth")), 1, 420, 320)[0, 0]
            grads = [scipy.signal.correlate2d(gt.astype(np.float64), k, mode="valid").astype(np.float32) for k in kernels]
            x = load(os.path.join(input_dir, file), 3, 298, 218)
            x *= 255
            x -= 127
            out = forward(x)[0]
            stem = os.path.splitext(file)[0]
            for c in range(2):
                o = scipy.ndimage.zoom(out[c], (318.0 / out.shape[1], 418.0 / out.shape[2]), order=3)
                g = grads[c]
                total += [np.sqrt(np.mean((o - g) ** 2)),
                          np.sqrt(np.mean(((o - o.mean()) / o.std() - (g - g.mean()) / g.std()) ** 2))]
                g = (g - g.min()) / (g.max() - g.min())
                o -= o.mean()
                o /= o.std()
                o *= g.std()
                o += g.mean()
                imwrite(np.clip(g, 0, 1), os.path.join(folder, stem.replace("_colors", f"_gt{c + 1}") + ".png"), 1, 418, 318)
                imwrite(np.clip(o, 0, 1), os.path.join(folder, stem.replace("_colors", f"_grad{c + 1}") + ".png"), 1, 418, 318)
            x += 127
            x = x / 255.0
            imwrite(np.transpose(x, (0, 2, 3, 1))[:, :, :, (2, 1, 0)], os.path.join(folder, stem + ".png"), 3, 298, 218)
        results[snap] = total / (len(files) * 2.0)
    return results


def test_test_grad_matches_the_original_gradient_evaluation(examples, tmp_path, capsys):
    data = subset(examples, tmp_path, ("left", "right"))
    folder = str(tmp_path / "snaps")
    snapshot(folder, "grad_iter_1", GRADIENT_NET, seed=5)
    snapshot(folder, "grad_iter_2", GRADIENT_NET, seed=6)
    out = tmp_path / "out"
    outcome = evaluate.run(options(data, data, out, folder, tool="test_grad", loader=cv2_loader("power")))
    printed = capsys.readouterr().out
    expected = reference_test_grad(str(data), str(data), str(tmp_path / "ref"), folder, cv2_forward_of("power"))
    for snap, values in expected.items():
        np.testing.assert_allclose([outcome.results[snap]["RMSE"], outcome.results[snap]["MVN"]], values, rtol=1e-5)
        theirs = pngs(tmp_path / "ref" / snap)
        assert pngs(out / snap) == theirs and len(theirs) == 2 * 5
        for name in theirs:
            np.testing.assert_array_equal(pixels(out / snap / name), pixels(tmp_path / "ref" / snap / name), err_msg=name)
    ranked = sorted(expected, key=lambda s: expected[s][0])
    assert tops_printed(printed)["RMSE"] == ranked
    assert sorted(os.listdir(out)) == ["grad_iter_1", "grad_iter_2", "metrics_vs_iteration.png", "results.csv",
                                       "results.json"]
    assert not (tmp_path / "out_abs").exists()


def test_an_unreadable_gt_names_the_file(tmp_path):
    broken_png, broken_npy = tmp_path / "a_depth.png", tmp_path / "b_depth.npy"
    broken_png.write_bytes(b"not a png at all")
    broken_npy.write_bytes(b"not an npy")
    with pytest.raises(evaluate.DatasetError, match="a_depth.png"):
        evaluate.read_gt_tenth(str(broken_png), "png8")
    with pytest.raises(evaluate.DatasetError, match="b_depth.npy"):
        evaluate.read_gt_tenth(str(broken_npy), "npy")


def test_a_gt_without_valid_pixels_leaves_the_standard_metrics_empty(examples, snaps, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(examples / "test" / "motorcycle_left_colors.png", data / "x_colors.png")
    cv2.imwrite(str(data / "x_depth.png"), np.zeros((320, 420), np.uint8))          # no depth anywhere
    outcome = evaluate.run(options(data, data, tmp_path / "out", snaps, snapshots="*_100", write_images=False,
                                   sheet_images=0))
    figures = outcome.results["tiny_iter_100"]
    assert math.isfinite(figures["RMSE"]) and math.isnan(figures["rmse"]) and math.isnan(figures["oracle delta1"])
    assert "no valid GT pixels" in capsys.readouterr().err
    assert read_csv(tmp_path / "out" / "results.csv")[0]["rmse"] == ""
    assert json.load(open(tmp_path / "out" / "results.json"))["snapshots"]["tiny_iter_100"]["metrics"]["rmse"] is None


def test_test_grad_warns_on_a_gt_without_depth_as_test_depth_does(examples, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(examples / "test" / "motorcycle_left_colors.png", data / "x_colors.png")
    cv2.imwrite(str(data / "x_depth.png"), np.zeros((320, 420), np.uint8))          # no depth anywhere
    folder = str(tmp_path / "snaps")
    os.makedirs(folder)
    snapshot(folder, "grad_iter_1", GRADIENT_NET, seed=5)
    outcome = evaluate.run(options(data, data, tmp_path / "out", folder, tool="test_grad", write_images=False))
    assert math.isnan(outcome.results["grad_iter_1"]["MVN"])  # the original's division by a zero std
    assert "no depth variation in the GT of x_colors" in capsys.readouterr().err
