"""Caffe's upgrade-on-load: V1 `layers` -> V2 `layer`, data transform fields, solver_type, BatchNorm."""
import numpy as np
import pytest

from eigen_depth.caffe import (NetParameter, SolverParameter, array_to_blob, load_weights, parse_text,
                               read_caffemodel, read_prototxt, read_solver, upgrade_net, upgrade_solver,
                               write_caffemodel)
from eigen_depth.errors import CaffemodelError, PrototxtError

V1_NET = """
name: "v1"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers {
  name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 4 kernel_size: 3 }
}
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers { name: "fc" type: INNER_PRODUCT bottom: "conv1" top: "fc" blobs_lr: 0.5
         inner_product_param { num_output: 2 } include { phase: TEST } }
layers { name: "loss" type: EUCLIDEAN_LOSS bottom: "fc" bottom: "label" top: "loss" loss_weight: 2 }
"""


def v1_net(tmp_path, text=V1_NET):
    path = tmp_path / "v1.prototxt"
    path.write_text(text)
    return read_prototxt(path, NetParameter)


def test_v1_layers_become_v2_layers_with_type_strings(tmp_path):
    net = v1_net(tmp_path)
    assert [(layer.name, layer.type) for layer in net.layer] == [
        ("input", "Input"), ("conv1", "Convolution"), ("relu1", "ReLU"), ("fc", "InnerProduct"),
        ("loss", "EuclideanLoss")]
    assert len(net.layers) == 0


def test_v1_blobs_lr_and_weight_decay_become_param_specs(tmp_path):
    conv1 = v1_net(tmp_path).layer[1]
    assert [(p.lr_mult, p.decay_mult) for p in conv1.param] == [(1.0, 1.0), (2.0, 0.0)]
    assert [p.HasField("decay_mult") for p in conv1.param] == [True, True]


def test_v1_blobs_lr_without_weight_decay_leaves_decay_mult_unset(tmp_path):
    fc = v1_net(tmp_path).layer[3]
    assert len(fc.param) == 1 and fc.param[0].lr_mult == 0.5 and not fc.param[0].HasField("decay_mult")


def test_v1_bottoms_tops_include_loss_weight_and_params_carry_over(tmp_path):
    net = v1_net(tmp_path)
    conv1, fc, loss = net.layer[1], net.layer[3], net.layer[4]
    assert list(conv1.bottom) == ["data"] and list(conv1.top) == ["conv1"]
    assert (conv1.convolution_param.num_output, list(conv1.convolution_param.kernel_size)) == (4, [3])
    assert fc.inner_product_param.num_output == 2 and fc.include[0].phase == 1
    assert list(loss.bottom) == ["fc", "label"] and list(loss.loss_weight) == [2.0]


def test_v1_net_input_becomes_the_first_layer(tmp_path):
    first = v1_net(tmp_path).layer[0]
    assert list(first.top) == ["data"] and list(first.input_param.shape[0].dim) == [1, 3, 8, 8]


def test_v1_param_names_become_param_spec_names():
    net = upgrade_net(parse_text(NetParameter, 'layers { name: "a" type: CONVOLUTION param: "w" param: "b" }'))
    assert [p.name for p in net.layer[0].param] == ["w", "b"]


def test_v1_data_layer_transform_fields_move_into_transform_param():
    net = upgrade_net(parse_text(NetParameter, """
        layers { name: "data" type: DATA top: "data" top: "label"
                 data_param { source: "train_lmdb" backend: LMDB batch_size: 32
                              scale: 0.00390625 mean_file: "mean.binaryproto" crop_size: 227 mirror: true } }"""))
    layer = net.layer[0]
    assert layer.type == "Data"
    transform = layer.transform_param
    assert (transform.scale, transform.mean_file, transform.crop_size, transform.mirror) == (
        0.00390625, "mean.binaryproto", 227, True)
    data = layer.data_param
    assert (data.source, data.backend, data.batch_size) == ("train_lmdb", 1, 32)
    assert not any(data.HasField(name) for name in ("scale", "mean_file", "crop_size", "mirror"))


def test_mixed_v1_and_v2_layers_are_refused(tmp_path):
    with pytest.raises(PrototxtError, match="mixes V1"):
        v1_net(tmp_path, 'layers { name: "a" type: RELU } layer { name: "b" type: "ReLU" }')


def test_v0_layer_definition_is_refused_with_an_explanation():
    with pytest.raises(PrototxtError, match="V0"):
        parse_text(NetParameter, 'layers { layer { name: "a" } }')


def test_read_prototxt_with_upgrade_false_keeps_v1(tmp_path):
    path = tmp_path / "v1.prototxt"
    path.write_text(V1_NET)
    net = read_prototxt(path, NetParameter, upgrade=False)
    assert len(net.layers) == 4 and len(net.layer) == 0 and list(net.input) == ["data"]


def test_old_batch_norm_param_specs_are_dropped():
    net = upgrade_net(parse_text(NetParameter, 'layer { name: "bn" type: "BatchNorm" '
                                               'param { lr_mult: 0 } param { lr_mult: 0 } param { lr_mult: 0 } }'))
    assert len(net.layer[0].param) == 0


def test_v2_net_is_returned_unchanged():
    net = parse_text(NetParameter, 'layer { name: "a" type: "ReLU" }')
    assert upgrade_net(net) is net


# ------------------------------------------------------------------------------------- V1 caffemodel
def v1_caffemodel(path):
    """A V1 caffemodel (NetParameter.layers, V1LayerParameter with legacy 4-D blobs), as Caffe wrote in 2014."""
    rng = np.random.default_rng(5)
    arrays = {"conv1": [rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                        rng.standard_normal(4).astype(np.float32)],
              "fc": [rng.standard_normal((2, 36)).astype(np.float32), rng.standard_normal(2).astype(np.float32)]}
    net = NetParameter(name="v1")
    for name, kind in (("conv1", "CONVOLUTION"), ("relu1", "RELU"), ("fc", "INNER_PRODUCT")):
        layer = net.layers.add(name=name, type=kind)
        for array in arrays.get(name, []):
            layer.blobs.append(array_to_blob(array, legacy=True))
    write_caffemodel(net, path)
    return arrays


def test_v1_caffemodel_is_written_as_netparameter_field_2(tmp_path):
    v1_caffemodel(tmp_path / "v1.caffemodel")
    data = (tmp_path / "v1.caffemodel").read_bytes()
    assert data[:4] == b"\x0a\x02v1" and data[4] == 0x12  # name, then field 2 (layers), wire type 2


def test_v1_caffemodel_loads_by_layer_name_with_the_same_arrays(tmp_path):
    arrays = v1_caffemodel(tmp_path / "v1.caffemodel")
    weights = load_weights(tmp_path / "v1.caffemodel")
    assert list(weights) == ["conv1", "fc"]
    assert np.array_equal(weights["conv1"][0], arrays["conv1"][0])
    assert np.array_equal(weights["conv1"][1].reshape(-1), arrays["conv1"][1])
    assert weights["fc"][0].shape == (1, 1, 2, 36) and np.array_equal(weights["fc"][0][0, 0], arrays["fc"][0])


def test_v1_caffemodel_reads_as_v2_layers(tmp_path):
    v1_caffemodel(tmp_path / "v1.caffemodel")
    net = read_caffemodel(tmp_path / "v1.caffemodel")
    assert [(layer.name, layer.type, len(layer.blobs)) for layer in net.layer] == [
        ("conv1", "Convolution", 2), ("relu1", "ReLU", 0), ("fc", "InnerProduct", 2)]
    assert len(net.layers) == 0


def test_v1_caffemodel_with_upgrade_false_keeps_v1_layers(tmp_path):
    v1_caffemodel(tmp_path / "v1.caffemodel")
    net = read_caffemodel(tmp_path / "v1.caffemodel", upgrade=False)
    assert len(net.layer) == 0 and [layer.type for layer in net.layers] == [4, 18, 14]


def test_caffemodel_mixing_v1_and_v2_layers_is_a_caffemodel_error(tmp_path):
    net = NetParameter()
    net.layers.add(name="a")
    net.layer.add(name="b")
    write_caffemodel(net, tmp_path / "mixed.caffemodel")
    with pytest.raises(CaffemodelError, match="mixes V1"):
        read_caffemodel(tmp_path / "mixed.caffemodel")


# ------------------------------------------------------------------------------------------- solver
@pytest.mark.parametrize("enum_text, type_string", [
    ("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAGRAD", "AdaGrad"), ("RMSPROP", "RMSProp"),
    ("ADADELTA", "AdaDelta"), ("ADAM", "Adam")])
def test_solver_type_enum_becomes_the_type_string(tmp_path, enum_text, type_string):
    path = tmp_path / "solver.prototxt"
    path.write_text(f'net: "n.prototxt"\nsolver_type: {enum_text}\n')
    message = read_solver(path)
    assert message.type == type_string and not message.HasField("solver_type")


def test_solver_type_and_a_conflicting_type_string_are_refused(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text('solver_type: ADAM\ntype: "SGD"\n')
    with pytest.raises(PrototxtError, match="solver_type"):
        read_solver(path)


def test_solver_without_solver_type_is_unchanged():
    message = parse_text(SolverParameter, 'type: "Adam" base_lr: 0.1')
    assert upgrade_solver(message).type == "Adam"
