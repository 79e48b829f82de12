"""`eigen-depth time` prints per-layer forward/backward times like `caffe time`; runtime errors a user can
cause end as one line on stderr with exit status 2."""
import numpy as np
import pytest

from eigen_depth.caffe import array_to_blob, schema, write_caffemodel
from eigen_depth.cli import main

TINY = """
name: "tiny"
layer { name: "input" type: "Input" top: "X" input_param { shape { dim: 1 dim: 3 dim: 12 dim: 12 } } }
layer { name: "conv" type: "Convolution" bottom: "X" top: "conv" convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "norm" type: "LRN" bottom: "conv" top: "norm" }
layer { name: "pool" type: "Pooling" bottom: "norm" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
"""


def test_time_prints_every_layer_and_the_totals(tmp_path, capsys):
    prototxt = tmp_path / "tiny.prototxt"
    prototxt.write_text(TINY)
    assert main(["time", "--model", str(prototxt), "--iterations", "2", "--batch", "3"]) == 0
    out = capsys.readouterr().out
    for layer, kind in (("conv", "Convolution"), ("norm", "LRN"), ("pool", "Pooling")):
        assert any(line.split()[:2] == [layer, kind] for line in out.splitlines()), layer
    assert "Average Forward pass" in out and "batch 3" in out and "Average Forward-Backward" in out


def one_line_error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_weights_of_another_network_are_one_line_error(tmp_path, capsys):
    prototxt = tmp_path / "tiny.prototxt"
    prototxt.write_text(TINY)
    other = schema.NetParameter()
    other.layer.add(name="fc7", type="InnerProduct").blobs.append(array_to_blob(np.zeros((2, 2), np.float32)))
    write_caffemodel(other, tmp_path / "other.caffemodel")
    err = one_line_error(capsys, ["time", "--model", str(prototxt), "--weights", str(tmp_path / "other.caffemodel")])
    assert "fc7" in err and "another network" in err


def test_wrong_blob_shape_in_weights_is_one_line_error(tmp_path, capsys):
    prototxt = tmp_path / "tiny.prototxt"
    prototxt.write_text(TINY)
    model = schema.NetParameter()
    layer = model.layer.add(name="conv", type="Convolution")
    layer.blobs.append(array_to_blob(np.zeros((4, 1, 3, 3), np.float32)))
    layer.blobs.append(array_to_blob(np.zeros(4, np.float32)))
    write_caffemodel(model, tmp_path / "bad.caffemodel")
    err = one_line_error(capsys, ["time", "--model", str(prototxt), "--weights", str(tmp_path / "bad.caffemodel")])
    assert "'conv'" in err and "(4, 3, 3, 3)" in err and "(4, 1, 3, 3)" in err


def test_unknown_layer_type_is_one_line_error(tmp_path, capsys):
    prototxt = tmp_path / "odd.prototxt"
    prototxt.write_text(TINY.replace('type: "LRN"', 'type: "Norm"'))
    err = one_line_error(capsys, ["time", "--model", str(prototxt)])
    assert "'norm'" in err and "'Norm'" in err and "LRN" in err


def test_impossible_shape_is_one_line_error(tmp_path, capsys):
    prototxt = tmp_path / "big.prototxt"
    prototxt.write_text(TINY.replace("kernel_size: 3", "kernel_size: 13"))
    err = one_line_error(capsys, ["time", "--model", str(prototxt)])
    assert "'conv'" in err


@pytest.mark.parametrize("argv, option", [
    (["train", "--solver", "s.prototxt", "--iters", "0"], "--iters"),
    (["train", "--stage", "all", "--batch", "-2"], "--batch"),
    (["train", "--stage", "all", "--minutes", "nan"], "--minutes"),
    (["train", "--stage", "all", "--test-interval", "-1"], "--test-interval"),
    (["time", "--model", "m.prototxt", "--iterations", "x"], "--iterations"),
    (["test-depth", "a", "b", "c", "d", "--batch-size", "0"], "--batch-size"),
    (["predict", "a.png", "--model", "m", "--weights", "w", "--max-depth", "inf"], "--max-depth"),
])
def test_bad_numbers_are_refused_where_they_are_parsed(argv, option, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and f"argument {option}" in err[-1] and "Traceback" not in "\n".join(err)


def test_an_unknown_device_is_one_line_with_what_to_use(tmp_path, capsys):
    assert main(["time", "--model", str(tmp_path / "none.prototxt"), "--device", "tpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--device tpu" in err and "cuda:N" in err
