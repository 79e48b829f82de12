"""Inputs a user can get wrong or that are merely unusual: each runs the real command (in a child process where
a crash inside a native library would otherwise take the test runner down) and checks the exit status, the
one-line message, and that every file that was there before is byte-identical afterwards."""
import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from eigen_depth.testing import write_random_caffemodel

from test_evaluate import DEPTH_NET  # input X (N,3,218,298) -> positive `depth` (N,1,27,37)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--no-progress", "--device", "cpu"]
NOT_UTF8 = os.fsdecode(b"room\xff")  # a file name whose bytes are not UTF-8 (Linux allows any bytes)


def eigen_depth(*argv, cwd):
    return subprocess.run([sys.executable, "-m", "eigen_depth", *map(str, argv)], cwd=cwd, capture_output=True,
                          text=True, errors="backslashreplace", timeout=600)


def tree(folder):
    hashes = {}
    for root, _, names in os.walk(os.fsencode(folder)):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                hashes[path] = hashlib.sha256(handle.read()).hexdigest()
    return hashes


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("examples")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_examples.py"), str(folder)], check=True,
                   capture_output=True)
    snaps = folder / "snaps"
    snaps.mkdir()
    (snaps / "tiny_iter_1.prototxt").write_text(DEPTH_NET)
    write_random_caffemodel(str(snaps / "tiny_iter_1.prototxt"), str(snaps / "tiny_iter_1.caffemodel"), seed=1)
    return folder


def test_file_names_that_are_not_utf8_are_evaluated_and_named_by_their_own_bytes(examples, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(examples / "test" / "motorcycle_centre_colors.png", data / f"{NOT_UTF8}_colors.png")
    shutil.copy(examples / "test" / "motorcycle_centre_depth.png", data / f"{NOT_UTF8}_depth.png")
    before = tree(data)
    done = eigen_depth("test-depth", data, data, tmp_path / "out", examples / "snaps", *FAST, cwd=tmp_path)
    assert done.returncode == 0, done.stderr  # no crash (OpenCV's text drawing used to segfault here)
    written = set(os.listdir(os.fsencode(tmp_path / "out" / "tiny_iter_1")))
    assert {b"room\xff_colors.png", b"room\xff_depth.png", b"room\xff_gt.png", b"contact_sheet.png"} <= written
    with open(tmp_path / "out" / "tiny_iter_1" / "metrics.csv", "rb") as handle:
        assert handle.read().splitlines()[1].startswith(b"room\xff_colors,")  # the name's own bytes
    done = eigen_depth("get-depth", data, tmp_path / "raw", examples / "snaps", *FAST, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert b"room\xff_colors_depth.png" in os.listdir(os.fsencode(tmp_path / "raw_abs" / "tiny_iter_1"))
    assert tree(data) == before


@pytest.mark.parametrize("text, layer", [
    ('layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n'
     'layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 500000000 } }',
     "fc"),
    ('layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 100000 dim: 3 dim: 10000 dim: 10000 } } }',
     "x"),
])
def test_a_net_larger_than_the_machine_is_refused_before_allocating(tmp_path, text, layer):
    (tmp_path / "huge.prototxt").write_text(text)
    done = eigen_depth("time", "--model", "huge.prototxt", "--iterations", "1", cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert f"layer '{layer}'" in lines[0] and "GiB, more than this machine's" in lines[0]


@pytest.mark.parametrize("encoding, bom", [("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe")])
def test_list_files_with_a_byte_order_mark_are_read(tmp_path, encoding, bom):
    import h5py
    import numpy as np

    from eigen_depth.data.hdf5 import read_source_list
    from eigen_depth.data.lmdb_io import read_list_file
    with h5py.File(tmp_path / "rows.h5", "w") as handle:
        handle["x"] = np.zeros((2, 1), np.float32)
    (tmp_path / "sources.txt").write_bytes(bom + "rows.h5\r\n".encode(encoding))
    assert read_source_list(str(tmp_path / "sources.txt")) == [str(tmp_path / "rows.h5")]
    (tmp_path / "list.txt").write_bytes(bom + "a b.png 3\nc.png 1\n".encode(encoding))
    assert read_list_file(str(tmp_path / "list.txt")) == [("a b.png", 3), ("c.png", 1)]


@pytest.mark.parametrize("argv, option", [
    (["tools/make_lmdb.py", "pairs", "out", "--color-size", "100000x100000"], "--color-size"),
    (["tools/convert_imageset.py", "root", "list.txt", "db", "--resize_height", "300000"], "--resize_height"),
    (["tools/get_depth.py", "in", "out", "snaps", "--size", "100000x100000"], "--size"),
    (["tools/augment.py", "in", "out", "--crop", "0x5"], "--crop"),
])
def test_impossible_sizes_are_refused_where_they_are_parsed(tmp_path, argv, option):
    done = subprocess.run([sys.executable, os.path.join(ROOT, argv[0]), *argv[1:]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and f"argument {option}" in lines[-1], done.stderr
    assert not os.listdir(tmp_path)  # nothing was written


@pytest.mark.parametrize("tool, extra", [("test-depth", []), ("test-depth", ["--output-blob", "nothing"]),
                                         ("test-grad", [])])
def test_no_snapshot_evaluated_is_exit_status_2(examples, tmp_path, tool, extra):
    # a caffemodel without its prototxt, an output blob the net lacks, a depth net given to test-grad
    snaps = tmp_path / "snaps"
    shutil.copytree(examples / "snaps", snaps)
    if not extra and tool == "test-depth":
        os.remove(snaps / "tiny_iter_1.prototxt")
    before = tree(examples / "test")
    done = eigen_depth(tool, examples / "test", examples / "test", tmp_path / "out", snaps, *extra, *FAST,
                       cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "skipping tiny_iter_1:" in done.stderr and "no snapshot could be evaluated: 1 of 1 snapshot(s) skipped" in done.stderr
    assert tree(examples / "test") == before


def test_the_evaluators_help_states_the_exit_statuses(tmp_path):
    done = eigen_depth("test-depth", "--help", cwd=tmp_path)
    assert done.returncode == 0 and "1 when some were skipped" in " ".join(done.stdout.split())


def test_info_refuses_another_nets_weights_and_upgrade_an_empty_prototxt(examples, tmp_path):
    other = tmp_path / "other.prototxt"
    other.write_text('layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }\n'
                     'layer { name: "fc9" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } }\n')
    write_random_caffemodel(str(other), str(tmp_path / "other.caffemodel"), seed=1)
    done = eigen_depth("info", examples / "snaps" / "tiny_iter_1.prototxt", "--weights", tmp_path / "other.caffemodel",
                       cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "other.caffemodel" in lines[0] and "another network" in lines[0]
    (tmp_path / "empty.prototxt").write_text("\n")
    done = eigen_depth("upgrade", "empty.prototxt", "out.prototxt", cwd=tmp_path)
    assert done.returncode == 2 and "empty.prototxt: holds no layers" in done.stderr
    assert not (tmp_path / "out.prototxt").exists()


# ============================================================== one case per class and per command, in process
# Every case runs a command's real entry point in this process against one shared workspace and checks the exit
# status, that stderr holds one error line (after argparse's usage lines) naming what is at fault, and that the
# workspace is byte-identical afterwards: nothing changed, nothing added.
def _load_tool(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"tool_{name}", os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _demo_main(argv):
    import unittest.mock
    with unittest.mock.patch.object(sys, "argv", ["demo.py", *argv]):
        return _load_tool("demo").main()


def _mains():
    from eigen_depth import cli
    from eigen_depth.data import commands
    from eigen_depth.evaluate.command import tool_main
    from eigen_depth.train import staged_main
    return {
        "eigen-depth": cli.main,
        "augment.py": commands.augment_main,
        "convert_imageset.py": commands.convert_imageset_main,
        "convert_nyu.py": commands.convert_nyu_main,
        "make_lmdb.py": commands.make_lmdb_main,
        "make_synthetic.py": commands.make_synthetic_main,
        "test_depth.py": lambda argv: tool_main("test_depth", argv),
        "get_depth.py": lambda argv: tool_main("get_depth", argv),
        "test_grad.py": lambda argv: tool_main("test_grad", argv),
        "train.py": staged_main,
        "synthetic_stats.py": lambda argv: _load_tool("synthetic_stats").main(argv),
        "make_examples.py": lambda argv: _load_tool("make_examples").main(argv),
        "demo.py": _demo_main,
    }


HDF5_NET = """name: "h"
layer { name: "d" type: "HDF5Data" top: "data" top: "label" hdf5_data_param { source: "h5_list.txt" batch_size: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 1 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


@pytest.fixture(scope="module")
def workspace(examples, tmp_path_factory):
    import cv2
    import h5py
    import numpy as np
    ws = tmp_path_factory.mktemp("workspace")
    shutil.copytree(examples / "test", ws / "test")
    shutil.copytree(examples / "photos", ws / "photos")
    shutil.copytree(examples / "snaps", ws / "snaps")
    net = (ws / "snaps" / "tiny_iter_1.prototxt").read_text()
    (ws / "net.prototxt").write_text(net)
    shutil.copy(ws / "snaps" / "tiny_iter_1.caffemodel", ws / "net.caffemodel")
    (ws / "garbage.bin").write_bytes(b"not an image, a model or a folder\n")
    (ws / "empty").mkdir()
    (ws / "bom.prototxt").write_bytes(b"\xef\xbb\xbf" + net.encode())
    (ws / "latin1_comment.prototxt").write_bytes(b"# caf\xe9 (Latin-1)\n" + net.encode())
    (ws / "latin1_name.prototxt").write_bytes(net.encode().replace(b'name: "tiny_depth"', b'name: "caf\xe9"', 1))
    (ws / "solver_no_net.prototxt").write_text('base_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 1\n')
    (ws / "h5.prototxt").write_text(HDF5_NET)
    (ws / "solver_bad_policy.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "stpe"\n'
                                                  'max_iter: 1\nsnapshot_prefix: "never"\n')
    (ws / "solver_h5.prototxt").write_text('net: "h5.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 1\n'
                                          'snapshot_prefix: "never"\n')
    with h5py.File(ws / "no_label.h5", "w") as handle:
        handle["data"] = np.zeros((4, 3), np.float32)
    (ws / "h5_list.txt").write_text("no_label.h5\n")
    (ws / "list_missing.txt").write_text("photos/chelsea.jpg 0\nphotos/absent.jpg 1\n")
    (ws / "list.txt").write_text("photos/chelsea.jpg 0\n")
    small = ws / "small"
    small.mkdir()
    cv2.imwrite(str(small / "a_colors.png"), np.zeros((100, 120, 3), np.uint8))
    cv2.imwrite(str(small / "a_depth.png"), np.full((100, 120), 50, np.uint8))
    unequal = ws / "unequal"
    unequal.mkdir()
    cv2.imwrite(str(unequal / "a_colors.png"), np.zeros((500, 600, 3), np.uint8))
    cv2.imwrite(str(unequal / "a_depth.png"), np.full((400, 600), 50, np.uint8))
    _more_bad_files(ws)
    broken = ws / "broken"
    broken.mkdir()
    (broken / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # OpenCV logs a WARN line for this one
    return ws


TRAIN_NET = """name: "t"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 2 dim: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "p" inner_product_param { num_output: 1 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "loss" }
"""


def _more_bad_files(ws):
    """Solvers whose settings give no number, an HDF5 top that is a group, a label beyond int32, a layer
    with a bad parameter, an empty prototxt, a solver naming a missing net, a solverstate without its weights,
    and a pycaffe script that meets one of them."""
    import h5py
    import numpy as np

    from eigen_depth.caffe import array_to_blob, schema, write_solverstate
    (ws / "train_in.prototxt").write_text(TRAIN_NET)
    solver = 'net: "train_in.prototxt"\nbase_lr: 0.01\nmax_iter: 3\nsnapshot_prefix: "never"\n'
    (ws / "solver_ok.prototxt").write_text(solver + 'lr_policy: "fixed"\n')
    (ws / "solver_adam.prototxt").write_text(solver + 'lr_policy: "fixed"\ntype: "Adam"\nmomentum2: 2\n')
    (ws / "solver_inv.prototxt").write_text(solver + 'lr_policy: "inv"\ngamma: -1\npower: 0.5\n')
    (ws / "solver_l3.prototxt").write_text(solver + 'lr_policy: "fixed"\nregularization_type: "L3"\n')
    (ws / "solver_lost_net.prototxt").write_text(solver.replace("train_in.prototxt", "lost.prototxt")
                                                 + 'lr_policy: "fixed"\n')
    state = schema.SolverState(iter=1, learned_net="gone_iter_1.caffemodel")
    for shape in ((1, 3), (1,)):
        state.history.append(array_to_blob(np.zeros(shape, np.float32)))
    write_solverstate(state, str(ws / "gone_iter_1.solverstate"))
    (ws / "h5g.prototxt").write_text(HDF5_NET.replace("h5_list.txt", "h5g_list.txt"))
    (ws / "solver_h5g.prototxt").write_text(solver.replace("train_in.prototxt", "h5g.prototxt")
                                            + 'lr_policy: "fixed"\n')
    with h5py.File(ws / "group.h5", "w") as handle:
        handle["data"] = np.zeros((4, 3), np.float32)
        handle.create_group("label")
    (ws / "h5g_list.txt").write_text("group.h5\n")
    (ws / "list_big_label.txt").write_text("photos/chelsea.jpg 99999999999999999999\n")
    (ws / "stride0.prototxt").write_text(
        'layer { name: "d" type: "Input" top: "d" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }\n'
        'layer { name: "c" type: "Convolution" bottom: "d" top: "c" '
        'convolution_param { num_output: 1 kernel_size: 1 stride: 0 } }\n')
    (ws / "nothing.prototxt").write_text("")
    (ws / "script_bad_net.py").write_text('import caffe\nnet = caffe.Net("stride0.prototxt", caffe.TEST)\n')


NET = ["--model", "net.prototxt", "--weights", "net.caffemodel"]
CASES = {
    # 1. no user file is lost: outputs that are folders, files, or under a file
    "upgrade onto a folder": ("eigen-depth", ["upgrade", "net.prototxt", "empty"], 2, "empty: is a folder"),
    "export-onnx onto a folder": ("eigen-depth", ["export-onnx", *NET, "--out", "empty"], 2, "empty: is a folder"),
    "export-onnx under a file": ("eigen-depth", ["export-onnx", *NET, "--out", "garbage.bin/x.onnx"], 2,
                                 "garbage.bin: is a file"),
    "predict into a file": ("eigen-depth", ["predict", "photos", *NET, "--out", "garbage.bin", *FAST], 2,
                            "garbage.bin: is a file, not a folder"),
    "test-depth into a file": ("eigen-depth", ["test-depth", "test", "test", "garbage.bin", "snaps", *FAST], 2,
                               "garbage.bin: is a file, not a folder"),
    "make_lmdb into a file": ("make_lmdb.py", ["test", "garbage.bin", "--quiet"], 2, "garbage.bin: is a file"),
    "augment into a file": ("augment.py", ["test", "garbage.bin", "--recipe", "data0", "--quiet"], 2,
                            "garbage.bin: is a file"),
    "make_examples into a file": ("make_examples.py", ["garbage.bin"], 2, "garbage.bin: is a file"),
    "convert_imageset over a file": ("convert_imageset.py", ["", "list.txt", "garbage.bin", "--quiet"], 2,
                                     "garbage.bin: exists and is not an LMDB"),
    "synthetic_stats json onto a folder": ("synthetic_stats.py", ["--count", "1", "--json", "empty"], 2,
                                           "argument --json: empty is a folder"),
    # 2. options refused where they are parsed
    "time --iterations 0": ("eigen-depth", ["time", "--model", "net.prototxt", "--iterations", "0"], 2,
                            "argument --iterations"),
    "test --iterations -1": ("eigen-depth", ["test", *NET, "--iterations", "-1"], 2, "argument --iterations"),
    "predict --max-depth nan": ("eigen-depth", ["predict", "photos", *NET, "--max-depth", "nan"], 2,
                                "argument --max-depth"),
    "predict --intrinsics": ("eigen-depth", ["predict", "photos", *NET, "--intrinsics", "1,2"], 2,
                             "argument --intrinsics"),
    "predict --device": ("eigen-depth", ["predict", "photos", *NET, "--device", "tpu", "--no-progress"], 2,
                         "--device tpu"),
    "get-depth --size": ("eigen-depth", ["get-depth", "photos", "out", "snaps", "--size", "0x5"], 2,
                         "argument --size"),
    "test_depth.py --batch-size 0": ("test_depth.py", ["test", "test", "out", "snaps", "--batch-size", "0"], 2,
                                     "argument --batch-size"),
    "test-depth --cache-mb -1": ("eigen-depth", ["test-depth", "test", "test", "out", "snaps", "--cache-mb", "-1"], 2,
                                 "argument --cache-mb"),
    "test-depth --sheet-images -1": ("eigen-depth", ["test-depth", "test", "test", "out", "snaps",
                                                     "--sheet-images", "-1"], 2, "argument --sheet-images"),
    "get_depth.py --device": ("get_depth.py", ["photos", "out", "snaps", "--device", "cuda:7", "--no-progress"], 2,
                              "--device cuda:7"),
    "augment --workers 0": ("augment.py", ["test", "out", "--recipe", "data0", "--workers", "0"], 2,
                            "argument --workers"),
    "augment --seed -1": ("augment.py", ["test", "out", "--recipe", "data1", "--seed", "-1"], 2, "argument --seed"),
    "make_lmdb --seed -1": ("make_lmdb.py", ["test", "out", "--seed", "-1"], 2, "argument --seed"),
    "make_synthetic count 0": ("make_synthetic.py", ["0", "out"], 2, "argument count"),
    "make_synthetic --test-fraction nan": ("make_synthetic.py", ["2", "out", "--test-fraction", "nan"], 2,
                                           "argument --test-fraction"),
    "make_synthetic --workers -1": ("make_synthetic.py", ["2", "out", "--workers", "-1"], 2, "argument --workers"),
    "convert_nyu --workers 0": ("convert_nyu.py", ["garbage.bin", "garbage.bin", "out", "--workers", "0"], 2,
                                "argument --workers"),
    "convert_imageset --resize_height -1": ("convert_imageset.py", ["", "list_missing.txt", "db", "--resize_height",
                                                                    "-1"], 2, "argument --resize_height"),
    "synthetic_stats --seed -1": ("synthetic_stats.py", ["--seed", "-1"], 2, "argument --seed"),
    "train.py --minutes nan": ("train.py", ["--stage", "global", "--minutes", "nan"], 2, "argument --minutes"),
    "demo --rooms 1": ("demo.py", ["--rooms", "1", "--out", "out"], 2, "argument --rooms"),
    "demo --seed -1": ("demo.py", ["--seed", "-1", "--out", "out"], 2, "argument --seed"),
    # 3. impossible sizes refused before allocation
    "augment --crop larger than any frame": ("augment.py", ["test", "out", "--recipe", "data0", "--crop",
                                                            "100000x10", "--quiet"], 2, "smaller than the 100000x10"),
    "make_lmdb --color-size": ("make_lmdb.py", ["test", "out", "--color-size", "100000x100000"], 2,
                               "argument --color-size"),
    # 4. encodings: a byte-order mark and a Latin-1 comment are read; a Latin-1 string is refused at its line
    "prototxt with a byte-order mark": ("eigen-depth", ["info", "bom.prototxt"], 0, None),
    "prototxt with a Latin-1 comment": ("eigen-depth", ["info", "latin1_comment.prototxt"], 0, None),
    "prototxt with a Latin-1 name": ("eigen-depth", ["info", "latin1_name.prototxt"], 2,
                                     "latin1_name.prototxt:1:7: string for 'name' is not valid UTF-8"),
    "binary given as prototxt": ("eigen-depth", ["info", "net.caffemodel", "--weights", "net.prototxt"], 2,
                                 "net.prototxt: byte 0"),
    # 5. exit status: nothing done is 2 (partial success, 1, is tested below)
    "predict with no readable image": ("eigen-depth", ["predict", "broken", *NET, "--out", "out", *FAST], 2,
                                       "no image could be read: broken/truncated.png"),
    "test-depth with no snapshot": ("eigen-depth", ["test-depth", "test", "test", "out", "empty", *FAST], 2,
                                    "empty: no .caffemodel files"),
    "test_grad.py on a depth net": ("test_grad.py", ["test", "test", "out", "snaps", *FAST], 2,
                                    "no snapshot could be evaluated: 1 of 1"),
    # 6. every error names its file
    "solver without a net": ("eigen-depth", ["train", "--solver", "solver_no_net.prototxt"], 2,
                             "solver_no_net.prototxt: the solver names no net"),
    "solver with an unknown lr_policy": ("eigen-depth", ["train", "--solver", "solver_bad_policy.prototxt"], 2,
                                         "solver_bad_policy.prototxt: unknown lr_policy 'stpe'"),
    "HDF5 file without a top's dataset": ("eigen-depth", ["train", "--solver", "solver_h5.prototxt"], 2,
                                          "no_label.h5 has no dataset 'label'"),
    "augment frame smaller than the crop": ("augment.py", ["small", "out", "--recipe", "data1", "--quiet"], 2,
                                            "small/a_colors.png: the 120x100 frame is smaller than the 420x320 crop"),
    "augment depth of another size": ("augment.py", ["unequal", "out", "--recipe", "data0", "--quiet"], 2,
                                      "unequal/a_depth.png: the depth is 600x400, its colour image 600x500"),
    "convert_imageset list naming absent files": ("convert_imageset.py", ["", "list_missing.txt", "db", "--quiet"],
                                                  2, "list_missing.txt: 1 of the 2 files it lists do not exist: "
                                                     "photos/absent.jpg"),
    "make_lmdb on an empty folder": ("make_lmdb.py", ["empty", "out", "--quiet"], 2, "empty: holds no"),
    "convert_nyu on a non-MATLAB file": ("convert_nyu.py", ["garbage.bin", "garbage.bin", "out", "--quiet"], 2,
                                         "garbage.bin: neither a v7.3"),
    "time with a corrupt caffemodel": ("eigen-depth", ["time", "--model", "net.prototxt", "--weights", "garbage.bin"],
                                       2, "garbage.bin: byte 0"),
    "pycaffe without a script": ("eigen-depth", ["pycaffe", "absent.py"], 2, "absent.py: no such script"),
    "pycaffe script meeting a bad net": ("eigen-depth", ["pycaffe", "script_bad_net.py"], 2,
                                         "script_bad_net.py:2: stride0.prototxt: layer 'c' (Convolution): stride"),
    "pycaffe -m an absent module": ("eigen-depth", ["pycaffe", "-m", "absent_module"], 2,
                                    "no module named 'absent_module'"),
    "Adam with momentum2 2": ("eigen-depth", ["train", "--solver", "solver_adam.prototxt"], 2,
                              "solver_adam.prototxt: Adam's momentum2 must be in [0, 1) (got 2)"),
    "an lr_policy with no rate at some iteration": ("eigen-depth", ["train", "--solver", "solver_inv.prototxt"], 2,
                                                    "solver_inv.prototxt: lr_policy 'inv' with gamma -1"),
    "an unknown regularization_type": ("eigen-depth", ["train", "--solver", "solver_l3.prototxt"], 2,
                                       "solver_l3.prototxt: unknown regularization_type 'L3'"),
    "a solver naming a missing net": ("eigen-depth", ["train", "--solver", "solver_lost_net.prototxt"], 2,
                                      "solver_lost_net.prototxt: names the net 'lost.prototxt', which does not exist"),
    "a solverstate without its weights": ("eigen-depth", ["train", "--solver", "solver_ok.prototxt", "--snapshot",
                                                          "gone_iter_1.solverstate"], 2,
                                          "gone_iter_1.solverstate: its weights gone_iter_1.caffemodel are missing"),
    "train with --weights and --snapshot": ("eigen-depth", ["train", "--solver", "solver_ok.prototxt", "--weights",
                                                            "net.caffemodel", "--snapshot", "gone_iter_1.solverstate"],
                                            2, "not both"),
    "HDF5 top that is a group": ("eigen-depth", ["train", "--solver", "solver_h5g.prototxt"], 2,
                                 "'label' in group.h5 is a group, not a dataset"),
    "convert_imageset label beyond int32": ("convert_imageset.py", ["", "list_big_label.txt", "db", "--quiet"], 2,
                                            "list_big_label.txt:1: label 99999999999999999999 does not fit"),
    "a layer's bad parameter names the prototxt": ("eigen-depth", ["time", "--model", "stride0.prototxt"], 2,
                                                   "stride0.prototxt: layer 'c' (Convolution): stride dimensions"),
    "time on an empty prototxt": ("eigen-depth", ["time", "--model", "nothing.prototxt"], 2,
                                  "nothing.prototxt: holds no layers"),
    "info on an empty prototxt": ("eigen-depth", ["info", "nothing.prototxt"], 2, "nothing.prototxt: holds no layers"),
    "nets with an unknown option": ("eigen-depth", ["nets", "--family"], 2, "unrecognized arguments: --family"),
}


def _error_lines(err):
    """stderr without argparse's usage lines (`usage: ...` and its indented continuation)."""
    return [line for line in err.strip().splitlines() if line and not line.startswith(("usage:", " "))]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(workspace, monkeypatch, capsys, case):
    program, argv, status, named = CASES[case]
    monkeypatch.chdir(workspace)
    before = tree(workspace)
    try:
        got = _mains()[program](argv)
    except SystemExit as done:  # argparse
        got = done.code
    out, err = capsys.readouterr()
    assert got == status, err
    if named is not None:
        lines = _error_lines(err)
        assert named in lines[-1], err
        assert "Traceback" not in err and "WARN" not in err and len(lines) <= 2, err  # at most a skip reason first
        assert sum(": error: " in line for line in lines) == 1, err
    assert tree(workspace) == before  # nothing changed and nothing written


def test_predict_with_some_unreadable_images_exits_1_after_writing_the_others(workspace, tmp_path, capsys,
                                                                           monkeypatch):
    from eigen_depth import cli
    monkeypatch.chdir(workspace)
    shutil.copy(workspace / "photos" / "chelsea.jpg", tmp_path / "cat.jpg")
    shutil.copy(workspace / "broken" / "truncated.png", tmp_path / "truncated.png")
    status = cli.main(["predict", str(tmp_path / "cat.jpg"), str(tmp_path / "truncated.png"), *NET,
                       "--out", str(tmp_path / "out"), *FAST])
    err = capsys.readouterr().err
    assert status == 1 and _error_lines(err) == [line for line in err.strip().splitlines()], err
    assert "1 of 2 image(s) could not be read" in err and "truncated.png" in err and "WARN" not in err
    assert (tmp_path / "out" / "cat_depth.npy").exists()


def test_the_demo_stops_with_the_status_and_the_line_of_the_tool_that_failed(tmp_path):
    (tmp_path / "afile").write_text("a file where the demo's folder would go")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "demo.py"), "--out", "afile"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"make_examples.py: error: {tmp_path / 'afile'}: is a file, so the folder "
        f"{tmp_path / 'afile' / 'examples' / 'test'} cannot be made: choose another output folder"]
