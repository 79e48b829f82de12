"""No command overwrites one of its inputs or a file it did not write: each case runs the real command on
a tiny net and tiny images, and checks the exit status, the one-line error naming the file, and that every
file that was there before is byte-identical afterwards (SHA-256 of the whole folder tree)."""
import hashlib
import json
import os

import cv2
import numpy as np
import pytest

from eigen_depth import cli
from eigen_depth.testing import write_random_caffemodel

# input X (N,3,218,298) -> `depth` (N,1,27,37), positive: a global-context-shaped stand-in
DEPTH_NET = """name: "tiny_depth"
layer { name: "input" type: "Input" top: "X" input_param { shape { dim: 1 dim: 3 dim: 218 dim: 298 } } }
layer { name: "conv1" type: "Convolution" bottom: "X" top: "conv1" convolution_param { num_output: 3 kernel_size: 8 stride: 8 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2" convolution_param { num_output: 1 kernel_size: 3 pad: 1 } }
layer { name: "power" type: "Power" bottom: "conv2" top: "depth" power_param { scale: 0.002 shift: 0.3 } }
"""
SNAPSHOT = "tiny_iter_1"
FAST = ["--no-progress", "--device", "cpu"]


# ============================================================================================ helpers
@pytest.fixture(scope="module")
def snaps(tmp_path_factory):
    """A snapshot folder: tiny_iter_1.prototxt (deploy) and tiny_iter_1.caffemodel (random weights)."""
    folder = tmp_path_factory.mktemp("snaps")
    (folder / f"{SNAPSHOT}.prototxt").write_text(DEPTH_NET)
    write_random_caffemodel(str(folder / f"{SNAPSHOT}.prototxt"), str(folder / f"{SNAPSHOT}.caffemodel"), seed=1)
    return folder


def model_args(snaps):
    return ["--model", snaps / f"{SNAPSHOT}.prototxt", "--weights", snaps / f"{SNAPSHOT}.caffemodel"]


def run_cli(capsys, *argv):
    status = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def tree(*folders):
    """{path: SHA-256} of every file under the folders, hidden ones included."""
    hashes = {}
    for folder in folders:
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                with open(path, "rb") as handle:
                    hashes[path] = hashlib.sha256(handle.read()).hexdigest()
    return hashes


def assert_one_line_error(err, command, *named):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"eigen-depth {command}: error: "), err
    for text in named:
        assert str(text) in lines[0], err


def write_colour(path, height=32, width=42, seed=0):
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def write_thesis_pair(folder, stem="00000", seed=0):
    """`<stem>_colors.png` (RGB) and `<stem>_depth.png` (8-bit, pixel/255 = depth/10 m), as the thesis's test set."""
    folder.mkdir(parents=True, exist_ok=True)
    write_colour(folder / f"{stem}_colors.png", seed=seed)
    depth = np.random.default_rng(seed + 100).integers(20, 256, (32, 42), dtype=np.uint8)
    cv2.imwrite(str(folder / f"{stem}_depth.png"), depth)


def pixels(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


# ============================================================================================ 1. predict
def test_predict_into_its_input_folder_refuses_to_overwrite_the_ground_truth(snaps, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_colour(data / "00000_colors.png")
    gt_mm = np.random.default_rng(3).integers(500, 6000, (32, 42)).astype(np.uint16)
    cv2.imwrite(str(data / "00000_depth_mm.png"), gt_mm)      # the name predict gives 00000_colors's output
    before = tree(tmp_path)
    status, out, err = run_cli(capsys, "predict", data, "--out", data, *model_args(snaps), *FAST)
    assert status == 2 and out == ""
    assert_one_line_error(err, "predict", data / "00000_depth_mm.png", "--out")
    assert tree(tmp_path) == before                          # nothing written, nothing changed
    # --overwrite does not make an input replaceable either
    status, _, err = run_cli(capsys, "predict", data, "--out", data, "--overwrite", *model_args(snaps), *FAST)
    assert status == 2 and tree(tmp_path) == before
    assert_one_line_error(err, "predict", data / "00000_depth_mm.png")


def test_predict_refuses_a_file_it_did_not_write_unless_told_to_overwrite(snaps, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    write_colour(data / "a_colors.png")
    np.save(out / "a_depth.npy", np.full((4, 5), 2.5, np.float32))        # someone's GT, named as our output
    before = tree(tmp_path)
    status, _, err = run_cli(capsys, "predict", data, "--out", out, *model_args(snaps), *FAST)
    assert status == 2
    assert_one_line_error(err, "predict", out / "a_depth.npy", "--overwrite")
    assert tree(tmp_path) == before
    status, _, _ = run_cli(capsys, "predict", data, "--out", out, "--overwrite", *model_args(snaps), *FAST)
    assert status == 0
    assert np.load(out / "a_depth.npy").shape == (32, 42)                  # replaced by the prediction
    assert tree(data) == {p: h for p, h in before.items() if p.startswith(str(data))}


def test_predict_reruns_over_its_own_outputs_and_skips_them_as_inputs(snaps, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_colour(data / "photo.png", 30, 40)
    inputs = tree(data)
    for _ in range(2):                       # the second run replaces the first run's files, which it wrote
        status, stdout, err = run_cli(capsys, "predict", data, "--out", data, *model_args(snaps), *FAST)
        assert status == 0 and "wrote depth for 1 image(s)" in stdout, err
        assert sorted(os.listdir(data)) == ["eigen_depth_outputs.json", "photo.png", "photo_depth.npy",
                                            "photo_depth_color.png", "photo_depth_mm.png"]
    assert {p: h for p, h in tree(data).items() if p in inputs} == inputs
    record = json.loads((data / "eigen_depth_outputs.json").read_text())
    assert record["files"] == ["photo_depth.npy", "photo_depth_color.png", "photo_depth_mm.png"]


def test_predict_gives_inputs_whose_outputs_would_share_a_name_distinct_names(snaps, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_colour(data / "x.png", 20, 30, seed=1)            # both would write x_depth.*
    write_colour(data / "x_colors.png", 24, 36, seed=2)
    status, _, err = run_cli(capsys, "predict", data, "--out", tmp_path / "out", *model_args(snaps), *FAST)
    assert status == 0 and "x_colors -> x_colors_depth.npy" in err
    assert np.load(tmp_path / "out" / "x_depth.npy").shape == (20, 30)           # x.png's size
    assert np.load(tmp_path / "out" / "x_colors_depth.npy").shape == (24, 36)    # x_colors.png's size


# ============================================================================================ 2. get-depth
def test_get_depth_on_the_thesis_layout_keeps_the_prediction_and_the_input_copy_apart(snaps, tmp_path, capsys):
    data = tmp_path / "data"
    write_thesis_pair(data)
    before = tree(data)
    status, _, err = run_cli(capsys, "get-depth", data, data, snaps, *FAST)
    assert status == 0 and "00000_colors -> 00000_colors_depth.png" in err
    assert tree(data) == before                                # the input folder is untouched
    folder = tmp_path / "data_abs" / SNAPSHOT
    assert sorted(os.listdir(folder)) == ["00000_colors.png", "00000_colors_depth.png", "00000_depth.png",
                                          "00000_depth_depth.png"]
    # copies of the inputs are what the net saw (218x298 RGB); predictions are 320x420 gray depth maps
    assert pixels(folder / "00000_colors.png").shape == (218, 298, 3)
    copy = pixels(folder / "00000_depth.png")
    assert copy.shape == (218, 298, 3) and (copy[:, :, 0] == copy[:, :, 1]).all()
    assert pixels(folder / "00000_colors_depth.png").shape == (320, 420)
    assert pixels(folder / "00000_depth_depth.png").shape == (320, 420)


def test_get_depth_refuses_to_replace_its_input_folder(snaps, tmp_path, capsys):
    data = tmp_path / "run_abs" / SNAPSHOT                 # OUT_DIR_abs/<snapshot> of OUT_DIR `run`
    write_thesis_pair(data)
    before = tree(tmp_path)
    status, _, err = run_cli(capsys, "get-depth", data, tmp_path / "run", snaps, *FAST)
    assert status == 2
    assert_one_line_error(err, "get-depth", data)
    assert tree(tmp_path) == before


def test_evaluators_refuse_to_replace_a_snapshot_folder_holding_other_files(snaps, tmp_path, capsys):
    data = tmp_path / "data"
    write_thesis_pair(data)
    mine = tmp_path / "out" / SNAPSHOT
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    before = tree(tmp_path)
    status, _, err = run_cli(capsys, "test-depth", data, data, tmp_path / "out", snaps, *FAST)
    assert status == 2
    assert_one_line_error(err, "test-depth", mine / "notes.txt")
    assert tree(tmp_path) == before
    assert not (tmp_path / "out_abs").exists()


# ============================================================================================ 3. results.json
NOT_OURS = {
    "not JSON": b"snapshot,RMSE\ntiny,0.5\n",
    "not UTF-8": b"\xff\xfe{\x00}\x00",
    "a list": b"[1, 2, 3]\n",
    "another program's": b'{"name": "my experiment", "runs": [1, 2]}\n',
    "another tool's": b'{"tool": "test_grad", "metrics": ["RMSE"], "snapshots": {"g_iter_1": {"metrics": {}}}}\n',
    "a broken record": b'{"tool": "test_depth", "snapshots": {"s": {"metrics": {"RMSE": "low"}}}}\n',
}


@pytest.mark.parametrize("kind", sorted(NOT_OURS))
def test_test_depth_refuses_a_results_json_it_did_not_write(snaps, tmp_path, capsys, kind):
    data, out = tmp_path / "data", tmp_path / "out"
    write_thesis_pair(data)
    out.mkdir()
    (out / "results.json").write_bytes(NOT_OURS[kind])
    before = tree(tmp_path)
    status, _, err = run_cli(capsys, "test-depth", data, data, out, snaps, *FAST)
    assert status == 2
    assert_one_line_error(err, "test-depth", out / "results.json", "move it away")
    assert tree(tmp_path) == before
    assert sorted(os.listdir(tmp_path)) == ["data", "out"]      # no folder made either


def test_a_results_csv_without_results_json_is_not_overwritten(snaps, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    write_thesis_pair(data)
    out.mkdir()
    (out / "results.csv").write_text("my,own,table\n")
    before = tree(tmp_path)
    status, _, err = run_cli(capsys, "test-grad", data, data, out, snaps, *FAST)
    assert status == 2
    assert_one_line_error(err, "test-grad", out / "results.csv")
    assert tree(tmp_path) == before


def test_results_of_this_tool_are_merged_across_runs(snaps, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    write_thesis_pair(data)
    out.mkdir()
    earlier = {"tool": "test_depth", "metrics": ["RMSE"], "snapshots": {
        "old_iter_5": {"iteration": 5, "series": "old", "images": 1, "metrics": {"RMSE": 0.25}}}}
    (out / "results.json").write_text(json.dumps(earlier))
    status, _, err = run_cli(capsys, "test-depth", data, data, out, snaps, "--sheet-images", "0", *FAST)
    assert status == 0, err
    merged = json.loads((out / "results.json").read_text())["snapshots"]
    assert sorted(merged) == ["old_iter_5", SNAPSHOT] and merged["old_iter_5"] == earlier["snapshots"]["old_iter_5"]
