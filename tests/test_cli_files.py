"""The `eigen-depth info` and `eigen-depth upgrade` commands, their one-line errors, and atomic writes."""
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from eigen_depth import cli
from eigen_depth.atomic import atomic_write
from eigen_depth.caffe import (NetParameter, array_to_blob, load_weights, parse_text, read_caffemodel,
                               read_prototxt, write_caffemodel)

DEPLOY = """name: "alex"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 227 input_dim: 227
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 96 kernel_size: 11 stride: 4 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc" inner_product_param { num_output: 2 } }
"""
V1_PROTOTXT = """name: "old"
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1" blobs_lr: 1 blobs_lr: 2
         weight_decay: 1 weight_decay: 0 convolution_param { num_output: 4 kernel_size: 3 } }
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
"""


def run_cli(capsys, *argv):
    """(exit status, stdout, stderr) of cli.main(argv)."""
    status = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def deploy_files(tmp_path):
    """deploy.prototxt and weights.caffemodel with conv1 96x3x11x11 + 96 and fc 2x290400 + 2 (legacy 4-D; the
    fc layer sees conv1's 96x55x55 outputs)."""
    (tmp_path / "deploy.prototxt").write_text(DEPLOY)
    weights = NetParameter(name="alex")
    conv = weights.layer.add(name="conv1")
    conv.blobs.append(array_to_blob(np.zeros((96, 3, 11, 11), np.float32)))
    conv.blobs.append(array_to_blob(np.zeros(96, np.float32)))
    fc = weights.layer.add(name="fc")
    fc.blobs.append(array_to_blob(np.zeros((2, 96 * 55 * 55), np.float32), legacy=True))
    fc.blobs.append(array_to_blob(np.zeros(2, np.float32), legacy=True))
    write_caffemodel(weights, tmp_path / "weights.caffemodel")
    return tmp_path / "deploy.prototxt", tmp_path / "weights.caffemodel"


# ---------------------------------------------------------------------------------------------- info
def test_info_prints_layer_names_types_and_blob_shapes(capsys, deploy_files):
    prototxt, caffemodel = deploy_files
    status, out, _ = run_cli(capsys, "info", prototxt, "--weights", caffemodel)
    rows = [line.split() for line in out.splitlines()]
    assert status == 0
    # name, type, bottoms -> tops, top shape, blob shapes (Caffe's output size for conv1: (227-11)/4+1 = 55)
    assert ["input", "Input", "-", "->", "data", "1x3x227x227"] in rows
    assert ["conv1", "Convolution", "data", "->", "conv1", "1x96x55x55", "96x3x11x11", "96"] in rows
    assert ["relu1", "ReLU", "conv1", "->", "conv1", "1x96x55x55"] in rows
    assert ["fc", "InnerProduct", "conv1", "->", "fc", "1x2", "1x1x2x290400", "1x1x1x2"] in rows


def test_info_prints_the_parameter_count(capsys, deploy_files):
    prototxt, caffemodel = deploy_files
    _, out, _ = run_cli(capsys, "info", prototxt, "--weights", caffemodel)
    # 96*3*11*11 + 96 + 2*(96*55*55) + 2
    assert out.splitlines()[-1] == "parameters: 615,746 (blob shapes from weights)"


def test_info_on_a_caffemodel_alone_uses_its_own_blobs(capsys, deploy_files):
    _, caffemodel = deploy_files
    status, out, _ = run_cli(capsys, "info", caffemodel)
    assert status == 0 and "96x3x11x11" in out
    assert out.splitlines()[-1] == "parameters: 615,746 (blob shapes from weights)"


def test_info_without_weights_derives_blob_shapes_from_the_definition(capsys, deploy_files):
    prototxt, _ = deploy_files
    _, out, _ = run_cli(capsys, "info", prototxt)
    # conv1 96*3*11*11 + 96 = 34,944; fc over 96*55*55 = 290,400 inputs: 2*290,400 + 2
    assert out.splitlines()[-1] == f"parameters: {34944 + 2 * 290400 + 2:,} (blob shapes from the net's definition)"


def test_info_without_weights_or_a_buildable_net_says_how_to_give_them(capsys, tmp_path):
    (tmp_path / "odd.prototxt").write_text('layer { name: "a" type: "Frobnicate" top: "a" }')
    _, out, _ = run_cli(capsys, "info", tmp_path / "odd.prototxt")
    assert out.splitlines()[-2] == "parameters: 0 (no blob shapes: pass --weights)"
    assert "Frobnicate" in out.splitlines()[-1]


# ------------------------------------------------------------------------------------------- upgrade
def test_upgrade_rewrites_a_v1_prototxt_as_v2(capsys, tmp_path):
    (tmp_path / "old.prototxt").write_text(V1_PROTOTXT)
    status, out, _ = run_cli(capsys, "upgrade", tmp_path / "old.prototxt", tmp_path / "new.prototxt")
    assert status == 0 and out == f"wrote {tmp_path / 'new.prototxt'} (2 layers, V2)\n"
    net = read_prototxt(tmp_path / "new.prototxt", NetParameter, upgrade=False)
    assert len(net.layers) == 0
    assert [(layer.name, layer.type) for layer in net.layer] == [("conv1", "Convolution"), ("relu1", "ReLU")]
    assert [(p.lr_mult, p.decay_mult) for p in net.layer[0].param] == [(1.0, 1.0), (2.0, 0.0)]


def test_upgraded_prototxt_text_has_v2_layers(capsys, tmp_path):
    (tmp_path / "old.prototxt").write_text(V1_PROTOTXT)
    run_cli(capsys, "upgrade", tmp_path / "old.prototxt", tmp_path / "new.prototxt")
    text = (tmp_path / "new.prototxt").read_text()
    assert 'type: "Convolution"' in text and "layers {" not in text and "blobs_lr" not in text


def test_upgrade_rewrites_a_v1_caffemodel_as_v2(capsys, tmp_path):
    old = parse_text(NetParameter, V1_PROTOTXT)
    weight = np.random.default_rng(0).standard_normal((4, 1, 3, 3)).astype(np.float32)
    old.layers[0].blobs.append(array_to_blob(weight, legacy=True))
    write_caffemodel(old, tmp_path / "old.caffemodel")
    status, _, _ = run_cli(capsys, "upgrade", tmp_path / "old.caffemodel", tmp_path / "new.caffemodel")
    assert status == 0
    data = (tmp_path / "new.caffemodel").read_bytes()
    assert data[:5] == b"\x0a\x03old" and data[5:7] == b"\xa2\x06"  # name, then field 100 (layer), not 2
    net = read_caffemodel(tmp_path / "new.caffemodel", upgrade=False)
    assert len(net.layers) == 0 and net.layer[0].type == "Convolution"
    assert np.array_equal(load_weights(tmp_path / "new.caffemodel")["conv1"][0], weight)


def test_upgrade_runs_as_a_command(tmp_path):
    (tmp_path / "old.prototxt").write_text(V1_PROTOTXT)
    done = subprocess.run([sys.executable, "-m", "eigen_depth", "upgrade", str(tmp_path / "old.prototxt"),
                           str(tmp_path / "new.prototxt")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == ""
    assert read_prototxt(tmp_path / "new.prototxt", NetParameter).layer[0].type == "Convolution"


# -------------------------------------------------------------------------------------------- errors
def assert_one_line_error(status, err):
    assert status == 2
    assert len(err.splitlines()) == 1 and err.endswith("\n") and "Traceback" not in err
    return err


def test_bad_prototxt_is_one_line_with_file_line_column(capsys, tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "n"\nlayer {\n  bottom: data\n}\n')
    err = assert_one_line_error(*run_cli(capsys, "info", path)[::2])
    assert err.startswith("eigen-depth info: error: ") and f"{path}:3:11" in err and "'data'" in err


def test_unknown_field_is_one_line_with_a_suggestion(capsys, tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('layer { convolution_param { num_ouput: 3 } }\n')
    err = assert_one_line_error(*run_cli(capsys, "info", path)[::2])
    assert f"{path}:1:29" in err and "did you mean num_output" in err


def test_truncated_caffemodel_is_one_line_with_the_byte_offset(capsys, tmp_path, deploy_files):
    _, caffemodel = deploy_files
    caffemodel.write_bytes(caffemodel.read_bytes()[:1000])
    err = assert_one_line_error(*run_cli(capsys, "info", caffemodel)[::2])
    assert "byte 6: truncated field 100" in err  # name "alex" is bytes 0-5, the first layer starts at 6


def test_prototxt_given_as_weights_is_one_line_with_a_hint(capsys, deploy_files, tmp_path):
    prototxt, _ = deploy_files
    disguised = tmp_path / "deploy.caffemodel"
    disguised.write_text(DEPLOY)
    err = assert_one_line_error(*run_cli(capsys, "info", prototxt, "--weights", disguised)[::2])
    assert "is it a prototxt?" in err


def test_missing_file_is_one_line(capsys, tmp_path):
    err = assert_one_line_error(*run_cli(capsys, "info", tmp_path / "absent.prototxt")[::2])
    assert f"{tmp_path / 'absent.prototxt'}: no such file" in err


def test_missing_caffemodel_in_upgrade_is_one_line(capsys, tmp_path):
    err = assert_one_line_error(*run_cli(capsys, "upgrade", tmp_path / "absent.caffemodel",
                                         tmp_path / "out.caffemodel")[::2])
    assert "no such file" in err


def test_failed_upgrade_writes_no_output(capsys, tmp_path):
    (tmp_path / "bad.prototxt").write_text("layers { name: @ }")
    status, _, _ = run_cli(capsys, "upgrade", tmp_path / "bad.prototxt", tmp_path / "out.prototxt")
    assert status == 2 and sorted(os.listdir(tmp_path)) == ["bad.prototxt"]


def test_error_with_a_line_break_in_a_token_is_still_one_line(capsys, tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_bytes(b'force_backward: "a\rb"\n')  # the offending token holds a carriage return
    assert_one_line_error(*run_cli(capsys, "info", path)[::2])


def test_command_line_error_has_no_traceback(tmp_path):
    (tmp_path / "bad.prototxt").write_text("layer { num_ouput: 3 }")
    done = subprocess.run([sys.executable, "-m", "eigen_depth", "info", str(tmp_path / "bad.prototxt")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "unknown field 'num_ouput'" in done.stderr


def test_no_command_prints_help_and_exits_2(capsys):
    status, out, _ = run_cli(capsys)
    assert status == 2 and "upgrade" in out and "info" in out


# -------------------------------------------------------------------------------------- atomic writes
def test_atomic_write_replaces_the_file_on_success(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with atomic_write(path, "w") as handle:
        handle.write("new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["f.txt"]


def test_atomic_write_keeps_the_old_file_and_no_temporary_on_error(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as handle:
            handle.write("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_atomic_write_syncs_the_data_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    # A crash after the rename but before the data reached the disk would leave an empty file under the
    # final name: the temporary file must be fsynced (holding all its bytes) before os.replace, and the
    # folder after it, so the rename itself survives.
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        size = os.fstat(fd).st_size
        events.append(("fsync", os.path.basename(target), size))
        real_fsync(fd)

    def replace(source, target):
        events.append(("replace", os.path.basename(target), os.path.getsize(source)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "model.caffemodel"
    with atomic_write(path) as handle:
        handle.write(b"x" * 5000)
    kinds = [event[0] for event in events]
    assert kinds == ["fsync", "replace", "fsync"]
    assert events[0][1].startswith(".model.caffemodel.") and events[0][2] == 5000
    assert events[1] == ("replace", "model.caffemodel", 5000)
    assert events[2][1] == tmp_path.name


def test_atomic_write_keeps_a_files_permissions_and_gives_a_new_one_the_umasks(tmp_path):
    private = tmp_path / "private.prototxt"
    private.write_text("old")
    os.chmod(private, 0o600)
    with atomic_write(private, "w") as handle:
        handle.write("new")
    assert private.read_text() == "new" and stat.S_IMODE(os.stat(private).st_mode) == 0o600
    mask = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "new.txt", "w") as handle:
            handle.write("x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "new.txt").st_mode) == 0o640


def test_atomic_write_through_a_link_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "net.prototxt"
    target.write_text("old")
    link = tmp_path / "current.prototxt"
    link.symlink_to(os.path.join("models", "net.prototxt"))
    with atomic_write(link, "w") as handle:
        handle.write("new")
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(os.listdir(tmp_path / "models")) == ["net.prototxt"]
