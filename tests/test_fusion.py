"""Inference fusion of BatchNorm / Scale / ReLU chains (eigen_depth.fusion), against NumPy written from Caffe's
definitions of the three layers: BatchNorm y = (x - mean / f) / sqrt(var / f + eps) with the stored statistics
and scale factor f; Scale y = x * gamma + beta per channel; ReLU y = max(x, 0) + slope * min(x, 0)."""
import os

import numpy as np
import pytest
import torch

from eigen_depth.caffe import parse_text, schema
from eigen_depth.net import CaffeNet

SHAPE = (2, 3, 4, 5)
EPS = 1e-5


def make_net(layers, phase="TEST", fuse=True, shape=SHAPE):
    dims = " ".join(f"dim: {d}" for d in shape)
    text = f'name: "f" layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ {dims} }} }} }}\n'
    net = CaffeNet(parse_text(schema.NetParameter, text + layers), phase=phase, fuse=fuse)
    rng = np.random.default_rng(0)
    channels = shape[1]
    for layer in net.layers:
        with torch.no_grad():
            if layer.type_name == "BatchNorm":
                layer.blobs[0].copy_(torch.from_numpy(rng.normal(3, 2, channels)))        # mean * f
                layer.blobs[1].copy_(torch.from_numpy(rng.uniform(0.5, 4, channels)))     # var * f
                layer.blobs[2].fill_(2.0)                                                 # f
            elif layer.type_name == "Scale":
                for blob in layer.blobs:
                    blob.copy_(torch.from_numpy(rng.normal(0, 1.5, blob.shape)))
    return net


def batch_norm(x, layer):
    mean, var, factor = (b.detach().double().numpy() for b in layer.blobs)
    mean, var = mean / factor[0], var / factor[0]
    return (x - mean[None, :, None, None]) / np.sqrt(var + EPS)[None, :, None, None]


def scale(x, layer):
    gamma = layer.blobs[0].detach().double().numpy()[None, :, None, None]
    out = x * gamma
    if len(layer.blobs) == 2:
        out = out + layer.blobs[1].detach().double().numpy()[None, :, None, None]
    return out


def relu(x, slope=0.0):
    return np.maximum(x, 0) + slope * np.minimum(x, 0)


def inputs(shape=SHAPE):
    return np.random.default_rng(1).normal(2, 3, shape).astype(np.float32)


BN = 'layer {{ name: "bn" type: "BatchNorm" bottom: "{b}" top: "{t}" batch_norm_param {{ eps: 1e-5 }} }}\n'
SC = 'layer {{ name: "sc" type: "Scale" bottom: "{b}" top: "{t}" scale_param {{ bias_term: {bias} }} }}\n'
RELU = 'layer {{ name: "relu" type: "ReLU" bottom: "{b}" top: "{t}" relu_param {{ negative_slope: {s} }} }}\n'


def refuse(*layers):
    """Makes the layers' own forward fail: a fused chain never calls it."""
    def fail(*args):
        raise AssertionError("ran layer by layer")
    for layer in layers:
        layer.forward = fail


def close(a, b):
    return np.abs(np.asarray(a, np.float64) - b).max() <= 2e-6 * np.abs(b).max()


@pytest.mark.parametrize("names", [("x", "x", "x"), ("x", "bn", "sc")], ids=["in-place", "named"])
def test_batchnorm_scale_relu_runs_as_one_operation_with_caffes_numbers(names):
    layers = (BN.format(b=names[0], t=names[1]) + SC.format(b=names[1], t=names[2], bias="true")
              + RELU.format(b=names[2], t=names[2], s=0))
    net = make_net(layers)
    x = inputs()
    expected = relu(scale(batch_norm(x.astype(np.float64), net.layers[1]), net.layers[2]))
    refuse(*net.layers[1:])
    with torch.no_grad():
        out = net({"x": x})[names[2]].numpy()
    assert close(out, expected)


def test_without_fusion_every_layer_runs_and_gives_the_same_numbers():
    net = make_net(BN.format(b="x", t="x") + SC.format(b="x", t="x", bias="true") + RELU.format(b="x", t="x", s=0),
                   fuse=False)
    x = inputs()
    expected = relu(scale(batch_norm(x.astype(np.float64), net.layers[1]), net.layers[2]))
    calls = []
    for layer in net.layers[1:]:
        original = layer.forward
        layer.forward = lambda *args, f=original, n=layer.name: calls.append(n) or f(*args)
    with torch.no_grad():
        out = net({"x": x})["x"].numpy()
    assert calls == ["bn", "sc", "relu"] and close(out, expected)


def test_leaky_relu_and_a_scale_without_bias():
    net = make_net(BN.format(b="x", t="a") + SC.format(b="a", t="b", bias="false") + RELU.format(b="b", t="c", s=0.2))
    x = inputs()
    expected = relu(scale(batch_norm(x.astype(np.float64), net.layers[1]), net.layers[2]), 0.2)
    refuse(*net.layers[1:])
    with torch.no_grad():
        assert close(net({"x": x})["c"].numpy(), expected)


def test_a_step_read_by_another_layer_is_not_fused_away():
    # "a" (the BatchNorm's output) is read by the Scale and by a second ReLU: it must exist as itself
    layers = (BN.format(b="x", t="a") + SC.format(b="a", t="b", bias="true")
              + 'layer { name: "other" type: "ReLU" bottom: "a" top: "c" }\n')
    net = make_net(layers)
    x = inputs()
    normalised = batch_norm(x.astype(np.float64), net.layers[1])
    with torch.no_grad():
        out = net({"x": x})
    assert close(out["b"].numpy(), scale(normalised, net.layers[2]))
    assert close(out["c"].numpy(), relu(normalised))


def test_keep_blobs_sees_every_step_of_a_named_chain():
    net = make_net(BN.format(b="x", t="a") + SC.format(b="a", t="b", bias="true") + RELU.format(b="b", t="c", s=0))
    x = inputs()
    normalised = batch_norm(x.astype(np.float64), net.layers[1])
    with torch.no_grad():
        blobs = net({"x": x}, keep_blobs=True)
    assert close(blobs["a"].numpy(), normalised)
    assert close(blobs["b"].numpy(), scale(normalised, net.layers[2]))
    assert close(blobs["c"].numpy(), relu(scale(normalised, net.layers[2])))


def test_a_range_that_ends_inside_a_chain_returns_that_layers_top():
    net = make_net(BN.format(b="x", t="a") + SC.format(b="a", t="b", bias="true") + RELU.format(b="b", t="c", s=0))
    x = inputs()
    with torch.no_grad():
        out = net({"x": x}, end="bn")["a"].numpy()
    assert close(out, batch_norm(x.astype(np.float64), net.layers[1]))


def test_batch_statistics_are_not_fused():
    net = make_net(BN.format(b="x", t="x") + SC.format(b="x", t="x", bias="true"), phase="TRAIN")
    x = inputs().astype(np.float64)
    mean = x.mean(axis=(0, 2, 3))[None, :, None, None]
    var = x.var(axis=(0, 2, 3))[None, :, None, None]
    with torch.no_grad():
        out = net({"x": x.astype(np.float32)})["x"].numpy()
    assert close(out, scale((x - mean) / np.sqrt(var + EPS), net.layers[2]))


def test_gradients_flow_through_the_layers_when_they_are_needed():
    net = make_net(BN.format(b="x", t="x") + SC.format(b="x", t="x", bias="true") + RELU.format(b="x", t="x", s=0))
    x = inputs()
    normalised = batch_norm(x.astype(np.float64), net.layers[1])
    gamma = net.layers[2].blobs[0].detach().double().numpy()[None, :, None, None]
    beta = net.layers[2].blobs[1].detach().double().numpy()[None, :, None, None]
    out = net({"x": x})["x"]
    out.sum().backward()
    expected = (normalised * (normalised * gamma + beta > 0)).sum(axis=(0, 2, 3))  # d sum(relu(n g + b)) / d g
    assert close(net.layers[2].blobs[0].grad.numpy(), expected)


# The commands: --no-fuse reaches the net --------------------------------------------------------------------------
DEPLOY = """name: "bn_deploy"
layer { name: "input" type: "Input" top: "X" input_param { shape { dim: 1 dim: 3 dim: 12 dim: 16 } } }
layer { name: "conv" type: "Convolution" bottom: "X" top: "c" convolution_param { num_output: 1 kernel_size: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "c" top: "c" }
layer { name: "sc" type: "Scale" bottom: "c" top: "c" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "c" top: "depth" }
"""


@pytest.mark.parametrize("command", ["get-depth", "predict"])
@pytest.mark.parametrize("fuse", [True, False])
def test_the_commands_fuse_unless_told_not_to(tmp_path, monkeypatch, command, fuse):
    import cv2

    from eigen_depth import cli, fusion
    snaps, images = tmp_path / "snaps", tmp_path / "in"
    os.makedirs(snaps)
    os.makedirs(images)
    (snaps / "snap.prototxt").write_text(DEPLOY)
    net = CaffeNet(str(snaps / "snap.prototxt"))
    with torch.no_grad():
        net.layer_by_name("bn").blobs[2].fill_(1.0)
        net.layer_by_name("bn").blobs[1].fill_(1.0)
        net.layer_by_name("sc").blobs[1].fill_(3.0)
    net.save(str(snaps / "snap.caffemodel"))
    cv2.imwrite(str(images / "a.png"), np.full((30, 40, 3), 100, np.uint8))
    calls = []
    original = fusion.AffineChain.__call__
    monkeypatch.setattr(fusion.AffineChain, "__call__", lambda self, *a: calls.append(1) or original(self, *a))
    no_fuse = [] if fuse else ["--no-fuse"]
    if command == "get-depth":
        argv = ["get-depth", images, tmp_path / "out", snaps, "--no-progress"]
    else:
        argv = ["predict", images, "--model", snaps / "snap.prototxt", "--weights", snaps / "snap.caffemodel",
                "--out", tmp_path / "out", "--no-progress"]
    assert cli.main([str(arg) for arg in argv + no_fuse]) == 0
    assert bool(calls) == fuse


# Concat chains (DenseNet's blocks): one buffer -------------------------------------------------------------------
def concat_net(extra="", head=""):
    text = head + "".join(f'layer {{ name: "{n}" type: "Input" top: "{n}" input_param {{ shape {{ dim: 2 '
                          f'dim: {c} dim: 3 dim: 4 }} }} }}\n' for n, c in (("a", 2), ("b", 1), ("c", 3), ("d", 2)))
    text += ('layer { name: "ab" type: "Concat" bottom: "a" bottom: "b" top: "ab" }\n'
             'layer { name: "abc" type: "Concat" bottom: "ab" bottom: "c" top: "abc" }\n'
             'layer { name: "abcd" type: "Concat" bottom: "abc" bottom: "d" top: "abcd" }\n') + extra
    return CaffeNet(parse_text(schema.NetParameter, text))


def concat_inputs(channels_last=False):
    rng = np.random.default_rng(2)
    feed = {n: torch.from_numpy(rng.normal(0, 1, (2, c, 3, 4)).astype(np.float32))
            for n, c in (("a", 2), ("b", 1), ("c", 3), ("d", 2))}
    if channels_last:
        feed = {n: t.contiguous(memory_format=torch.channels_last) for n, t in feed.items()}
    return feed


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_chain_of_concats_fills_one_buffer_and_earlier_blobs_keep_their_values(channels_last):
    # "ab" is read again after the chain has grown past it
    net = concat_net('layer { name: "late" type: "ReLU" bottom: "ab" top: "late" }\n')
    feed = concat_inputs(channels_last)
    x = {n: t.numpy() for n, t in feed.items()}
    with torch.no_grad():
        blobs = net(feed, keep_blobs=True)
    np.testing.assert_array_equal(blobs["abcd"].numpy(), np.concatenate([x["a"], x["b"], x["c"], x["d"]], axis=1))
    np.testing.assert_array_equal(blobs["abc"].numpy(), np.concatenate([x["a"], x["b"], x["c"]], axis=1))
    np.testing.assert_array_equal(blobs["late"].numpy(), np.maximum(np.concatenate([x["a"], x["b"]], axis=1), 0))
    assert blobs["ab"].data_ptr() == blobs["abcd"].data_ptr()  # one buffer, not a copy per Concat


def test_two_concats_extending_the_same_blob_do_not_share_a_buffer():
    net = concat_net('layer { name: "abd" type: "Concat" bottom: "ab" bottom: "d" top: "abd" }\n')
    feed = concat_inputs()
    x = {n: t.numpy() for n, t in feed.items()}
    with torch.no_grad():
        blobs = net(feed)
    np.testing.assert_array_equal(blobs["abcd"].numpy(), np.concatenate([x["a"], x["b"], x["c"], x["d"]], axis=1))
    np.testing.assert_array_equal(blobs["abd"].numpy(), np.concatenate([x["a"], x["b"], x["d"]], axis=1))


def test_a_range_starting_inside_a_concat_chain_and_gradients():
    net = concat_net()
    feed = concat_inputs()
    x = {n: t.numpy() for n, t in feed.items()}
    with torch.no_grad():
        out = net({"abc": np.concatenate([x["a"], x["b"], x["c"]], axis=1), "d": x["d"]}, start="abcd")["abcd"]
    np.testing.assert_array_equal(out.numpy(), np.concatenate([x["a"], x["b"], x["c"], x["d"]], axis=1))
    net = concat_net(head="force_backward: true\n")
    leaves = {n: t.clone().requires_grad_(True) for n, t in feed.items()}
    weights = torch.arange(8 * 12, dtype=torch.float32).reshape(1, 8, 3, 4)
    (net(leaves)["abcd"] * weights).sum().backward()
    bounds = {"a": (0, 2), "b": (2, 3), "c": (3, 6), "d": (6, 8)}
    for name, (lo, hi) in bounds.items():   # d (sum w * concat) / d input = the weights of its channels
        np.testing.assert_array_equal(leaves[name].grad.numpy(), np.broadcast_to(weights[:, lo:hi].numpy(),
                                                                                 (2, hi - lo, 3, 4)))


def test_inputs_that_require_grad_in_a_net_that_needs_none_give_plain_values():
    # without force_backward nothing in this net needs a gradient: its layers run without one, fused or not
    net = concat_net()
    feed = {n: t.clone().requires_grad_(True) for n, t in concat_inputs().items()}
    out = net(feed)["abcd"]
    assert not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), np.concatenate([feed[n].detach().numpy() for n in "abcd"], axis=1))


# ReLU in place after a layer that makes new tensors -------------------------------------------------------------
CONV_RELU = """name: "c" layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 7 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 4 kernel_size: 3 pad: 1
        weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 } } }
"""


def conv_relu_net(layers, head=""):
    return CaffeNet(parse_text(schema.NetParameter, head + CONV_RELU + layers), phase="TEST")


def conv_numpy(net, x):
    """Caffe's convolution (cross-correlation, pad 1) in float64."""
    conv = net.layer_by_name("conv")
    w, b = (blob.detach().double().numpy() for blob in conv.blobs)
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((x.shape[0], w.shape[0]) + x.shape[2:])
    for i in range(x.shape[2]):
        for j in range(x.shape[3]):
            out[:, :, i, j] = np.einsum("nckl,ockl->no", padded[:, :, i:i + 3, j:j + 3], w)
    return out + b[None, :, None, None]


def record_tops(net):
    """{layer name: data address of its first top} as each layer returns."""
    seen = {}
    for layer in net.layers:
        layer.register_forward_hook(lambda module, args, outputs: seen.__setitem__(
            module.name, outputs[0].untyped_storage().data_ptr()))
    return seen


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_a_relu_caffe_runs_in_place_overwrites_the_convolutions_output(slope):
    net = conv_relu_net(RELU.format(b="c", t="c", s=slope))
    x = inputs((2, 3, 6, 7))
    seen = record_tops(net)
    with torch.no_grad():
        out = net({"x": x})["c"].numpy()
    assert seen["relu"] == seen["conv"]
    assert close(out, relu(conv_numpy(net, x), slope))


def test_a_relu_does_not_overwrite_an_input_or_a_blob_that_another_blob_views():
    # on the fed input: x is the caller's array
    net = make_net(RELU.format(b="x", t="x", s=0))
    x = inputs()
    kept = x.copy()
    with torch.no_grad():
        out = net({"x": torch.from_numpy(x)})["x"].numpy()
    np.testing.assert_array_equal(x, kept)
    np.testing.assert_array_equal(out, np.maximum(kept, 0))
    # a Reshape's top views the convolution's output, and is read after the ReLU: it keeps the values before it
    net = conv_relu_net('layer { name: "view" type: "Reshape" bottom: "c" top: "v" '
                        'reshape_param { shape { dim: 0 dim: 0 dim: 0 dim: -1 } } }\n'
                        + RELU.format(b="c", t="c", s=0)
                        + 'layer { name: "sum" type: "Eltwise" bottom: "v" bottom: "c" top: "s" }\n')
    seen = record_tops(net)
    x = inputs((2, 3, 6, 7))
    with torch.no_grad():
        out = net({"x": x})["s"].numpy()
    conv = conv_numpy(net, x)
    assert seen["relu"] != seen["conv"]
    assert close(out, conv + relu(conv))


def test_with_gradients_the_relu_makes_a_new_tensor_and_the_backward_is_right():
    net = conv_relu_net(RELU.format(b="c", t="c", s=0), head="force_backward: true\n")
    x = torch.from_numpy(inputs((2, 3, 6, 7))).requires_grad_(True)
    seen = record_tops(net)
    out = net({"x": x})["c"]
    assert seen["relu"] != seen["conv"]
    out.sum().backward()
    conv = conv_numpy(net, x.detach().numpy())
    bias_grad = net.layer_by_name("conv").blobs[1].grad.numpy()
    np.testing.assert_allclose(bias_grad, (conv > 0).sum(axis=(0, 2, 3)), rtol=0, atol=0)
