"""ONNX export: every deploy net in eigen_depth/prototxt/ (one of each group of identical ones) exports, passes
onnx.checker and runs in onnxruntime with our numbers (max |difference| <= 1e-4 of the output's largest magnitude,
random weights and input); the batch axis can be made symbolic; the graph's inputs and outputs carry the Caffe
blob names; MVN keeps Caffe's eps outside the square root; errors are one line with exit status 2; the .onnx file
is written atomically."""
import os

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from eigen_depth import cli
from eigen_depth.export import DEFAULT_OPSET, ExportError, to_onnx
from eigen_depth.net import CaffeNet
from eigen_depth.testing import random_weights, write_random_caffemodel
from eigen_depth.prototxt import ROOT as PROTOTXT_ROOT

from deploy_nets import DEPLOY_NETS, DISTINCT_DEPLOY_NETS

REFINING = os.path.join(PROTOTXT_ROOT, "refining", "norm_abs", "net_deploy.prototxt")
GRADIENT = os.path.join(PROTOTXT_ROOT, "gradient", "abs", "net_deploy.prototxt")
JOINT = os.path.join(PROTOTXT_ROOT, "joint", "A", "net_deploy.prototxt")
TOLERANCE = 1e-4


def run_cli(capsys, *argv):
    """(exit status, stdout, stderr) of cli.main(argv)."""
    status = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def caffemodel_for(tmp_path_factory):
    """prototxt -> a random-weight caffemodel for it. The loss variants of one network have the same
    layers with weights, so they share one file: each distinct set is written once."""
    folder = tmp_path_factory.mktemp("weights")
    written = {}

    def get(prototxt):
        net = CaffeNet(prototxt, "TEST", fill=False)
        key = tuple((layer.name, tuple(tuple(b.shape) for b in layer.blobs))
                    for layer in net.layers if len(layer.blobs))
        if key not in written:
            path = str(folder / f"random{len(written)}.caffemodel")
            random_weights(net, seed=len(written) + 3).save(path)
            written[key] = path
        return written[key]
    return get


@pytest.fixture(scope="module")
def exported(tmp_path_factory, caffemodel_for):
    """prototxt -> (ONNX file, caffemodel) of to_onnx with the default settings, made once."""
    folder = tmp_path_factory.mktemp("onnx")
    done = {}

    def get(prototxt):
        if prototxt not in done:
            weights = caffemodel_for(prototxt)
            out = folder / f"net{len(done)}.onnx"
            to_onnx(prototxt, weights, out)
            done[prototxt] = (out, weights)
        return done[prototxt]
    return get


def session(path):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def random_input(batch, seed=5):
    """A batch in the range of a preprocessed image (RGB * 255 - 127)."""
    return np.random.default_rng(seed).uniform(-127, 128, (batch, 3, 218, 298)).astype(np.float32)


def assert_close(theirs, ours, name):
    assert theirs.shape == ours.shape, name
    scale = np.abs(ours).max()
    assert scale > 0, name
    assert np.abs(theirs - ours).max() <= TOLERANCE * scale, name


def pytorch_outputs(prototxt, weights, x):
    net = CaffeNet(prototxt, "TEST", weights=weights)
    with torch.no_grad():
        return {name: value.numpy() for name, value in net({"X": x}).items()}


def test_every_thesis_deploy_net_is_exported():
    assert len(DEPLOY_NETS) == 13 and len(DISTINCT_DEPLOY_NETS) == 7  # tests/test_fidelity_cv2.py checks the groups


@pytest.mark.parametrize("prototxt", DISTINCT_DEPLOY_NETS, ids=lambda p: "/".join(p.split(os.sep)[-3:-1]))
def test_onnxruntime_matches_pytorch(prototxt, exported):
    out, weights = exported(prototxt)
    onnx.checker.check_model(str(out), full_check=True)
    x = random_input(1)
    model = session(out)
    names = [o.name for o in model.get_outputs()]
    theirs = dict(zip(names, model.run(None, {"X": x})))
    ours = pytorch_outputs(prototxt, weights, x)
    assert sorted(theirs) == sorted(ours)
    for name in ours:
        assert_close(theirs[name], ours[name], name)


def test_input_and_output_names_are_the_caffe_blob_names(exported):
    out, _ = exported(JOINT)
    model = onnx.load(str(out))
    initializers = {i.name for i in model.graph.initializer}
    assert [v.name for v in model.graph.input if v.name not in initializers] == ["X"]
    assert [v.name for v in model.graph.output] == ["depth", "gradient"]
    runner = session(out)
    assert [i.name for i in runner.get_inputs()] == ["X"]
    assert [o.name for o in runner.get_outputs()] == ["depth", "gradient"]
    # the weights and the nodes are named after the Caffe layers too
    layers = set(CaffeNet(JOINT, "TEST", fill=False).layer_names)
    assert {"conv1/blob0", "conv1/blob1", "conv5-grad/blob0", "fc-depth/blob1"} <= initializers
    assert {node.name.split("/")[0] for node in model.graph.node if node.op_type != "Constant"} <= layers


def test_without_dynamic_batch_every_shape_is_the_prototxts(exported):
    model = onnx.load(str(exported(JOINT)[0]))
    def dims(value):
        return [d.dim_value for d in value.type.tensor_type.shape.dim]
    assert dims(model.graph.input[0]) == [1, 3, 218, 298]
    assert {v.name: dims(v) for v in model.graph.output} == {"depth": [1, 1, 27, 37], "gradient": [1, 2, 25, 35]}
    # shape inference reaches every intermediate tensor (no unknown axis left by the exporter)
    assert model.graph.value_info and all(all(d.dim_value > 0 for d in v.type.tensor_type.shape.dim)
                                          for v in model.graph.value_info)
    assert model.opset_import[0].version == DEFAULT_OPSET


def test_cli_dynamic_batch_runs_at_batch_1_and_3(caffemodel_for, tmp_path, capsys):
    weights = caffemodel_for(REFINING)
    out = tmp_path / "refining.onnx"
    status, stdout, _ = run_cli(capsys, "export-onnx", "--model", REFINING, "--weights", weights, "--out", out,
                                "--dynamic-batch")
    assert status == 0
    assert str(out) in stdout
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    runner = session(out)
    for batch in (1, 3):
        x = random_input(batch, seed=batch)
        (theirs,) = runner.run(["depth-refine"], {"X": x})
        ours = pytorch_outputs(REFINING, weights, x)["depth-refine"]
        assert theirs.shape == (batch, 1, 54, 74)
        assert_close(theirs, ours, f"batch {batch}")
        # each sample is computed on its own: MVN's statistics do not mix the batch
        if batch == 3:
            (single,) = runner.run(["depth-refine"], {"X": x[1:2]})
            assert_close(theirs[1:2], single, "sample 1 alone")


def test_cli_opset_is_written_and_verified(caffemodel_for, tmp_path, capsys):
    out = tmp_path / "g11.onnx"
    status, stdout, _ = run_cli(capsys, "export-onnx", "--model", GRADIENT, "--weights", caffemodel_for(GRADIENT),
                                "--out", out, "--opset", 11, "--verify")
    assert status == 0
    assert [o.version for o in onnx.load(str(out)).opset_import if o.domain in ("", "ai.onnx")] == [11]
    assert "onnxruntime vs PyTorch" in stdout and "gradient" in stdout


MVN_NET = """name: "mvn"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 5 } } }
layer { name: "mvn" type: "MVN" bottom: "data" top: "normalized" mvn_param { eps: 0.5 } }
"""


def test_mvn_keeps_caffes_eps_outside_the_square_root(tmp_path):
    prototxt = tmp_path / "mvn.prototxt"
    prototxt.write_text(MVN_NET)
    weights = tmp_path / "mvn.caffemodel"
    write_random_caffemodel(str(prototxt), str(weights))          # no weights: an empty caffemodel
    out = tmp_path / "mvn.onnx"
    to_onnx(str(prototxt), str(weights), out)
    x = np.random.default_rng(0).normal(3.0, 0.2, (2, 3, 4, 5)).astype(np.float32)
    (theirs,) = session(out).run(["normalized"], {"data": x})
    rows = x.reshape(6, 20).astype(np.float64)
    centered = rows - rows.mean(axis=1, keepdims=True)
    variance = (centered ** 2).mean(axis=1, keepdims=True)
    caffe = (centered / (np.sqrt(variance) + 0.5)).reshape(x.shape)
    inside = (centered / np.sqrt(variance + 0.5)).reshape(x.shape)
    np.testing.assert_allclose(theirs, caffe, rtol=1e-5, atol=1e-6)
    assert np.abs(caffe - inside).max() > 0.01   # the two formulas are told apart at this eps


def test_bad_prototxt_is_a_one_line_error(tmp_path, capsys, caffemodel_for):
    bad = tmp_path / "bad.prototxt"
    bad.write_text('name: "x"\nlayer { name: "input" type: "Input" top: "X" input_param { shape { dim: 1 }\n')
    out = tmp_path / "bad.onnx"
    status, stdout, stderr = run_cli(capsys, "export-onnx", "--model", bad, "--weights", caffemodel_for(GRADIENT),
                                     "--out", out)
    assert status == 2
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("eigen-depth export-onnx: error: ") and "bad.prototxt" in lines[0]
    assert not out.exists()


def test_weights_of_another_net_are_a_one_line_error(tmp_path, capsys, caffemodel_for):
    status, _, stderr = run_cli(capsys, "export-onnx", "--model", GRADIENT, "--weights", caffemodel_for(JOINT),
                                "--out", tmp_path / "x.onnx")
    assert status == 2
    assert len(stderr.strip().splitlines()) == 1
    assert "conv2-grad" in stderr or "conv3-grad" in stderr or "conv4-grad" in stderr


def test_unsupported_opset_is_a_one_line_error(tmp_path, capsys, caffemodel_for):
    status, _, stderr = run_cli(capsys, "export-onnx", "--model", GRADIENT, "--weights", caffemodel_for(GRADIENT),
                                "--out", tmp_path / "x.onnx", "--opset", 3)
    assert status == 2
    assert len(stderr.strip().splitlines()) == 1 and "opset 3" in stderr


def test_a_graph_failing_the_checker_is_never_written(tmp_path, caffemodel_for, monkeypatch):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous model")

    def reject(model, full_check=False):
        raise onnx.checker.ValidationError("rejected for the test")
    monkeypatch.setattr(onnx.checker, "check_model", reject)
    with pytest.raises(ExportError, match="onnx.checker"):
        to_onnx(GRADIENT, caffemodel_for(GRADIENT), out)
    assert out.read_bytes() == b"previous model"
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_export_replaces_the_file_and_leaves_no_temporary(tmp_path, caffemodel_for):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous model")
    to_onnx(GRADIENT, caffemodel_for(GRADIENT), out)
    assert os.listdir(tmp_path) == ["model.onnx"]
    onnx.checker.check_model(str(out), full_check=True)


def test_a_layer_the_exporter_rejects_is_named_and_its_graph_dump_held_back(tmp_path, capfd):
    # torch's exporter has no ONNX form for ArgMax's sort at this opset; the layers before and after it export
    model = tmp_path / "argmax.prototxt"
    model.write_text(
        'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }\n'
        'layer { name: "c" type: "Convolution" bottom: "x" top: "c"\n'
        '        convolution_param { num_output: 2 kernel_size: 1 } }\n'
        'layer { name: "best" type: "ArgMax" bottom: "c" top: "a" }\n'
        'layer { name: "r" type: "ReLU" bottom: "c" top: "r" }\n')
    write_random_caffemodel(str(model), str(tmp_path / "argmax.caffemodel"), seed=1)
    status = cli.main(["export-onnx", "--model", str(model), "--weights", str(tmp_path / "argmax.caffemodel"),
                       "--out", str(tmp_path / "argmax.onnx")])
    out, err = capfd.readouterr()
    assert status == 2 and out == ""                  # torch's IR dump went to file descriptor 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "argmax.prototxt: layer 'best' (ArgMax) cannot be exported" in lines[0]
    assert not (tmp_path / "argmax.onnx").exists()
