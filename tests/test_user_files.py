"""No command overwrites one of its inputs or a file it did not write: each case runs the real command on
a tiny net and tiny images, and checks the exit status, the one-line error naming the file, and that every
file that was there before is byte-identical afterwards (SHA-256 of the whole folder tree)."""
import hashlib
import importlib.util
import json
import os

import cv2
import numpy as np
import pytest

from eigen_depth import cli
from eigen_depth.data import commands
from eigen_depth.testing import write_random_caffemodel

from test_evaluate import DEPTH_NET  # input X (N,3,218,298) -> positive `depth` (N,1,27,37)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def assert_one_line_error(err, command, *named, prog=None):
    """One line on stderr: `eigen-depth <command>: error: ...` (or `<prog>: error: ...`) naming each of `named`."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog or 'eigen-depth ' + command}: error: "), err
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
    assert sorted(os.listdir(folder)) == [".eigen_depth_outputs.json", "00000_colors.png", "00000_colors_depth.png",
                                          "00000_depth.png", "00000_depth_depth.png"]
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


# ============================================================================================ 4. other commands
def test_export_onnx_refuses_to_write_over_its_weights_or_model(snaps, tmp_path, capsys):
    weights, model = snaps / f"{SNAPSHOT}.caffemodel", snaps / f"{SNAPSHOT}.prototxt"
    before = tree(snaps)
    for target in (weights, model):
        status, _, err = run_cli(capsys, "export-onnx", "--model", model, "--weights", weights, "--out", target)
        assert status == 2
        assert_one_line_error(err, "export-onnx", target, "--out")
    assert tree(snaps) == before


def test_upgrade_refuses_to_write_over_its_input(tmp_path, capsys):
    legacy = tmp_path / "legacy.prototxt"
    legacy.write_text('name: "v1" input: "data" input_dim: 1 input_dim: 3 input_dim: 4 input_dim: 4\n'
                      'layers { name: "relu" type: RELU bottom: "data" top: "out" }\n')
    os.link(legacy, tmp_path / "same_file.prototxt")        # another name of the same file
    before = tree(tmp_path)
    for target in (legacy, tmp_path / "same_file.prototxt"):
        status, _, err = run_cli(capsys, "upgrade", legacy, target)
        assert status == 2
        assert_one_line_error(err, "upgrade", legacy)
    assert tree(tmp_path) == before
    status, _, _ = run_cli(capsys, "upgrade", legacy, tmp_path / "v2.prototxt")
    assert status == 0 and "layer {" in (tmp_path / "v2.prototxt").read_text()


def test_convert_imageset_overwrite_replaces_only_a_database(tmp_path, capsys):
    images = tmp_path / "images"
    write_thesis_pair(images)
    listing = tmp_path / "list.txt"
    listing.write_text("00000_colors.png 0\n00000_depth.png 1\n")
    before = tree(tmp_path)
    for database in (images, listing):      # the image folder or the list file named as the database
        status = commands.convert_imageset_main([str(images), str(listing), str(database), "--overwrite", "--quiet"])
        assert status == 2
        assert_one_line_error(capsys.readouterr().err, None, database, prog="convert_imageset")
    assert tree(tmp_path) == before
    database = tmp_path / "db"
    for _ in range(2):                       # an LMDB it wrote is replaced with --overwrite
        assert commands.convert_imageset_main([str(images), str(listing), str(database), "--overwrite",
                                               "--quiet"]) == 0
    assert sorted(os.listdir(database)) == ["data.mdb", "lock.mdb"]


def test_make_lmdb_keeps_a_pair_list_it_did_not_write(tmp_path, capsys):
    pairs = tmp_path / "pairs"
    write_thesis_pair(pairs)
    (pairs / "train_pairs.txt").write_text("my own list\n")     # the name of the list written beside the LMDBs
    before = tree(tmp_path)
    status = commands.make_lmdb_main([str(pairs), str(pairs), "--workers", "1", "--quiet"])
    assert status == 2
    assert_one_line_error(capsys.readouterr().err, None, pairs / "train_pairs.txt", prog="make_lmdb")
    assert tree(tmp_path) == before


def write_frame(folder, height, width):
    """A frame for augment.py: `a_colors.png` and an 8-bit `a_depth.png` of random pixels."""
    folder.mkdir()
    rng = np.random.default_rng(5)
    cv2.imwrite(str(folder / "a_colors.png"), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "a_depth.png"), rng.integers(1, 256, (height, width), dtype=np.uint8))
    return folder


def test_augment_refuses_to_write_into_its_input_folder(tmp_path, capsys):
    frames = write_frame(tmp_path / "frames", 330, 430)
    before = tree(tmp_path)
    # data0 names each output like its frame: --overwrite would have replaced the frames with their crops
    status = commands.augment_main([str(frames), str(frames) + os.sep, "--recipe", "data0", "--overwrite",
                                    "--workers", "1", "--quiet"])
    assert status == 2
    assert_one_line_error(capsys.readouterr().err, None, frames, prog="augment")
    assert tree(tmp_path) == before


def test_make_synthetic_keeps_a_lone_splits_mat(tmp_path, capsys):
    (tmp_path / "splits.mat").write_bytes(b"someone's real NYU splits")
    before = tree(tmp_path)
    status = commands.make_synthetic_main(["2", str(tmp_path), "--format", "nyu-mat", "--workers", "1", "--quiet"])
    assert status == 2
    assert_one_line_error(capsys.readouterr().err, None, tmp_path / "splits.mat", "--overwrite",
                          prog="make_synthetic")
    assert tree(tmp_path) == before


def test_make_examples_refuses_a_folder_holding_other_files_and_reruns_over_its_own(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("make_examples", os.path.join(ROOT, "tools", "make_examples.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.txt").write_text("my notes\n")
    before = tree(tmp_path)
    assert module.main([str(mine)]) == 2
    assert_one_line_error(capsys.readouterr().err, None, mine / "README.txt", prog="make_examples.py")
    assert tree(tmp_path) == before
    fresh = tmp_path / "fresh"
    assert module.main([str(fresh)]) == 0
    written = tree(fresh)
    assert module.main([str(fresh)]) == 0                   # a rerun writes the same bytes again
    assert tree(fresh) == written


TRAIN_NET = """
layer { name: "data" type: "HDF5Data" top: "x" top: "y" hdf5_data_param { source: "LIST" batch_size: 4 } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "p" inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "loss" }
"""


def test_a_fresh_training_run_keeps_an_earlier_runs_snapshots_and_log(tmp_path, capsys):
    import h5py
    x = np.random.default_rng(9).standard_normal((16, 3)).astype(np.float32)
    with h5py.File(tmp_path / "data.h5", "w") as handle:
        handle["x"], handle["y"] = x, np.sin(x[:, :2])
    (tmp_path / "list.txt").write_text(str(tmp_path / "data.h5") + "\n")
    (tmp_path / "net.prototxt").write_text(TRAIN_NET.replace("LIST", str(tmp_path / "list.txt")))
    solver = tmp_path / "solver.prototxt"
    solver.write_text(f'net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed" max_iter: 4 snapshot: 2 '
                      f'snapshot_prefix: "{tmp_path}/snaps/"')
    train = ["train", "--solver", solver, "--device", "cpu"]
    assert run_cli(capsys, *train, "--no-progress")[0] == 0
    assert {"_iter_2.caffemodel", "_iter_4.solverstate", "train_log.csv"} <= set(os.listdir(tmp_path / "snaps"))
    before = tree(tmp_path)
    status, _, err = run_cli(capsys, *train)                 # a new run, progress bar on: still one line
    assert status == 2
    assert_one_line_error(err, "train", tmp_path / "snaps" / "_iter_2.caffemodel", "--snapshot")
    assert tree(tmp_path) == before
    # resuming from a snapshot before the last would replace the later one (another ending of the run)
    status, _, err = run_cli(capsys, *train, "--no-progress", "--snapshot", tmp_path / "snaps" / "_iter_2.solverstate")
    assert status == 2
    assert_one_line_error(err, "train", tmp_path / "snaps" / "_iter_4.solverstate", "resume from the last one")
    assert tree(tmp_path) == before
    # a later caffemodel without its solverstate is what a run killed while writing that snapshot left:
    # resuming writes it again
    os.unlink(tmp_path / "snaps" / "_iter_4.solverstate")
    status, _, _ = run_cli(capsys, *train, "--no-progress", "--snapshot", tmp_path / "snaps" / "_iter_2.solverstate")
    assert status == 0 and (tmp_path / "snaps" / "_iter_4.solverstate").exists()


def test_make_synthetic_refuses_to_mix_scenes_of_other_settings_and_overwrite_replaces_them(tmp_path, capsys):
    # another seed splits the scenes differently: resuming by file name would leave scenes in both splits
    out = tmp_path / "rooms"
    common = ["--workers", "1", "--quiet"]
    assert commands.make_synthetic_main(["6", str(out)] + common) == 0
    first = {split: sorted(os.listdir(out / split)) for split in ("train", "test")}
    before = tree(tmp_path)
    assert commands.make_synthetic_main(["6", str(out)] + common) == 0             # a rerun resumes: same files
    assert tree(tmp_path) == before
    status = commands.make_synthetic_main(["6", str(out), "--seed", "1"] + common)
    assert status == 2
    assert_one_line_error(capsys.readouterr().err, None, out, "seed 0 (now 1)", "--overwrite", prog="make_synthetic")
    assert tree(tmp_path) == before
    assert commands.make_synthetic_main(["6", str(out), "--seed", "1", "--overwrite"] + common) == 0
    train, test = (sorted(name[:5] for name in os.listdir(out / split)) for split in ("train", "test"))
    assert not set(train) & set(test) and len(train + test) == 12                   # 6 scenes, two files each
    assert {split: sorted(os.listdir(out / split)) for split in ("train", "test")} != first


def test_make_synthetic_nyu_mat_stopped_between_its_two_files_is_rewritten_not_skipped(tmp_path, capsys,
                                                                                          monkeypatch):
    from eigen_depth.data import nyu
    out = tmp_path / "mat"
    common = ["--format", "nyu-mat", "--workers", "1", "--quiet"]
    assert commands.make_synthetic_main(["3", str(out)] + common) == 0

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(nyu, "write_splits_mat", interrupted)
    status = commands.make_synthetic_main(["4", str(out), "--overwrite"] + common)  # Ctrl-C after the .mat
    assert status != 0 and "interrupted" in capsys.readouterr().err
    assert (out / "nyu_depth_v2_labeled.mat").exists()
    monkeypatch.undo()
    before = tree(tmp_path)
    status = commands.make_synthetic_main(["4", str(out)] + common)
    assert status == 2
    assert_one_line_error(capsys.readouterr().err, None, out / "nyu_depth_v2_labeled.mat", "--overwrite",
                          prog="make_synthetic")
    assert tree(tmp_path) == before
    assert commands.make_synthetic_main(["4", str(out), "--overwrite"] + common) == 0
    splits = nyu.read_splits(out / "splits.mat", 4)
    assert sorted(int(i) for name in ("test", "train") for i in splits[name]) == [0, 1, 2, 3]


def test_make_synthetic_nyu_mat_files_without_the_record_of_a_complete_run_are_not_skipped(tmp_path, capsys):
    # both files there, but no record that one run wrote them together (stopped after rewriting one of them
    # over an earlier pair): a rerun without --overwrite must not take them as done
    out = tmp_path / "mat"
    common = ["--format", "nyu-mat", "--workers", "1", "--quiet"]
    assert commands.make_synthetic_main(["3", str(out)] + common) == 0
    os.unlink(out / ".eigen_depth_settings.json")
    before = tree(tmp_path)
    assert commands.make_synthetic_main(["3", str(out)] + common) == 2
    assert_one_line_error(capsys.readouterr().err, None, "may not agree", "--overwrite", prog="make_synthetic")
    assert tree(tmp_path) == before
    assert commands.make_synthetic_main(["3", str(out), "--overwrite"] + common) == 0
    assert commands.make_synthetic_main(["3", str(out)] + common) == 0      # now skipped: one run wrote both


def test_augment_and_convert_nyu_refuse_to_resume_into_outputs_of_other_settings(tmp_path, capsys):
    frames = write_frame(tmp_path / "frames", 427, 561)
    out = tmp_path / "augmented"
    common = ["--workers", "1", "--quiet"]
    assert commands.augment_main([str(frames), str(out), "--recipe", "data0"] + common) == 0
    assert sorted(os.listdir(out)) == [".eigen_depth_settings.json", "a_colors.png", "a_depth.png", "augment_data0.csv"]
    before = tree(tmp_path)
    # data1's pairs would sit beside data0's crop, which a training set built from the folder would take too
    assert commands.augment_main([str(frames), str(out), "--recipe", "data1"] + common) == 2
    assert_one_line_error(capsys.readouterr().err, None, out, "recipe 'data0' (now 'data1')", "--overwrite",
                          prog="augment")
    assert tree(tmp_path) == before
    assert commands.augment_main([str(frames), str(out), "--recipe", "data1", "--overwrite"] + common) == 0
    names = sorted(os.listdir(out))
    assert "a_colors.png" not in names and "augment_data0.csv" not in names
    assert [n for n in names if n.endswith("_colors.png")] == sorted(
        f"a_v{k}{flip}_colors.png" for k in range(5) for flip in ("", "f"))
    # convert_nyu: another depth format into the same folder would resume into 8-bit pairs
    assert commands.make_synthetic_main(["3", str(tmp_path / "mat"), "--format", "nyu-mat"] + common) == 0
    mat = [str(tmp_path / "mat" / "nyu_depth_v2_labeled.mat"), str(tmp_path / "mat" / "splits.mat")]
    assert commands.convert_nyu_main(mat + [str(tmp_path / "nyu")] + common) == 0
    before = tree(tmp_path)
    assert commands.convert_nyu_main(mat + [str(tmp_path / "nyu"), "--depth-format", "png16mm"] + common) == 2
    assert_one_line_error(capsys.readouterr().err, None, "depth_format 'png8' (now 'png16mm')", prog="convert_nyu")
    assert tree(tmp_path) == before
    assert commands.convert_nyu_main(mat + [str(tmp_path / "nyu"), "--depth-format", "png16mm", "--overwrite"]
                                     + common) == 0
    depth = cv2.imread(str(next((tmp_path / "nyu" / "test").glob("*_depth.png"))), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16
