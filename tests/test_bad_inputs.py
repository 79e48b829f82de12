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
    assert "skipping tiny_iter_1:" in done.stderr and "1 of 1 snapshot(s) skipped" in done.stderr
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
