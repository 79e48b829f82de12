"""The benchmark scripts: what they leave behind, and the told-part-of-the-answer predictors of
benchmarks/depth_limits.py against numbers worked out by hand."""
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

TINY_NET = """name: "tiny"
layer { name: "input" type: "Input" top: "X" input_param { shape { dim: 1 dim: 3 dim: 12 dim: 16 } } }
layer { name: "conv" type: "Convolution" bottom: "X" top: "depth"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "depth" top: "depth" }
"""


def test_forward_benchmark_times_the_three_runtimes_and_bf16_and_removes_its_weights_and_export(tmp_path):
    model, scratch = tmp_path / "tiny.prototxt", tmp_path / "scratch"
    model.write_text(TINY_NET)
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch), PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "forward.py"), "--model", str(model),
                           "--batches", "1,2", "--iterations", "1", "--layout", "nchw", "--bf16"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert [row[0] for row in rows] == ["1", "2"]
    for row in rows:  # ours, OpenCV's, their ratio and onnxruntime's s/image (a tiny net's may print as 0)
        assert float(row[1]) > 0 and min(map(float, row[2:5])) >= 0
        assert float(row[row.index("difference") + 1]) <= 1e-5  # of the output's magnitude, against OpenCV
    bf16_rows = [line.split() for line in done.stdout.splitlines() if line.split()[1:2] == ["bf16"]]
    assert len(bf16_rows) == 2 and all(float(row[0]) >= 0 for row in bf16_rows)  # one per batch, after its row
    assert not list(scratch.glob("eigen_depth_forward_*"))  # its random caffemodel and ONNX export are gone


def test_png_benchmark_times_every_zlib_strategy_on_pictures_it_decodes_back():
    from contextlib import redirect_stdout
    from io import StringIO

    import png_strategies
    from eigen_depth.constants import PNG_STRATEGIES
    printed = StringIO()
    with redirect_stdout(printed):
        png_strategies.main(["--repeat", "1"])
    rows = [line.split() for line in printed.getvalue().splitlines() if ")" in line and "x default" not in line]
    assert [row[-5] for row in rows] == list(PNG_STRATEGIES) * 3    # three kinds of picture, every strategy
    for row in rows:
        milliseconds, _, kib, _ = map(float, row[-4:])
        assert milliseconds > 0 and kib > 0
    assert printed.getvalue().rstrip().endswith("decoded pixels equal to the pictures under every strategy")


def _write_depth(path, metres_rows):
    """A 320x420 8-bit depth PNG (pixel / 255 * 10 = metres) whose rows hold the given metres."""
    import cv2
    pixels = np.repeat(np.round(np.asarray(metres_rows, float) / 10 * 255).astype(np.uint8)[:, None], 420, 1)
    assert pixels.shape == (320, 420)
    cv2.imwrite(str(path), pixels)
    cv2.imwrite(str(path.with_name(path.name.replace("_depth", "_colors"))), np.zeros((320, 420, 3), np.uint8))


def test_depth_limits_predictors_score_what_their_definitions_give(tmp_path):
    import depth_limits
    from eigen_depth.data.pairs import find_pairs
    rooms = tmp_path / "train_rooms"
    (rooms / "train").mkdir(parents=True)
    (rooms / "test").mkdir()
    # training rooms: half 2 m, half 4 m (mean 3, spread 1); all 4 m (spread 0): mean 3.5 m, mean spread 0.5 m
    _write_depth(rooms / "train" / "00000_depth.png", [2.0] * 160 + [4.0] * 160)
    _write_depth(rooms / "train" / "00001_depth.png", [4.0] * 320)
    mean_m, spread_m = depth_limits.training_statistics(str(rooms / "train"))
    assert (mean_m, spread_m) == (pytest.approx(3.5), pytest.approx(0.5))
    # the room scored: a quarter at 2 m, the rest at 4 m: mean 3.5 m, standard deviation 2 sqrt(3/16) m
    _write_depth(rooms / "test" / "00002_depth.png", [2.0] * 80 + [4.0] * 240)
    table = depth_limits.score(find_pairs(str(rooms / "test")), mean_m, spread_m)
    std = 2 * np.sqrt(3 / 16)
    # the constant and the room's own mean are both 3.5 m here: each is off by the room's spread, and flat
    assert table["constant"] == {"MVN": 1.0, "RMSE": pytest.approx(std, rel=1e-6), "RMSE / constant": 1.0}
    assert table["room mean"]["RMSE"] == pytest.approx(std, rel=1e-6)
    # the exact shape given the mean spread 0.5 m: each pixel off by (d - 3.5) (1 - 0.5 / std)
    assert table["shape, mean depth"]["MVN"] == pytest.approx(0.0, abs=1e-6)
    assert table["shape, mean depth"]["RMSE"] == pytest.approx(std - 0.5, rel=1e-5)
    # a map with one edge keeps its shape closely at the nets' output sizes, more closely at the larger
    small, large = table["shape at 37x27"], table["shape at 74x54"]
    assert 0 < large["MVN"] < small["MVN"] < 0.5 and 0 < large["RMSE"] < small["RMSE"] < 0.5 * std
