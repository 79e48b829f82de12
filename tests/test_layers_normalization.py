"""MVN, BatchNorm, Scale and Bias against NumPy written from Caffe's mvn_layer.cpp, batch_norm_layer.cpp,
scale_layer.cpp and bias_layer.cpp, plus gradients and errors."""
import numpy as np
import pytest
import torch

from eigen_depth.caffe import parse_text, schema
from eigen_depth.errors import LayerError, ShapeError
from eigen_depth.layers import layer_class

from layer_helpers import gradcheck_layer, make, rand, run


def set_blobs(layer, *arrays):
    with torch.no_grad():
        for blob, array in zip(layer.blobs, arrays):
            blob.copy_(torch.as_tensor(np.asarray(array, np.float32)))


# ----------------------------------------------------------------------------- MVN
def mvn_ref(x, normalize_variance=True, across_channels=False, eps=1e-9):
    x = x.astype(np.float64)
    num = x.shape[0] if across_channels else x.shape[0] * x.shape[1]
    rows = x.reshape(num, -1)
    centered = rows - rows.mean(axis=1, keepdims=True)
    if normalize_variance:
        centered = centered / (np.sqrt((centered ** 2).mean(axis=1, keepdims=True)) + eps)
    return centered.reshape(x.shape)


@pytest.mark.parametrize("text, kwargs", [
    ("", {}),
    ("normalize_variance: false", {"normalize_variance": False}),
    ("across_channels: true", {"across_channels": True}),
    ("across_channels: true normalize_variance: false", {"across_channels": True, "normalize_variance": False}),
    ("eps: 0.5", {"eps": 0.5}),
])
def test_mvn_matches_reference(text, kwargs):
    x = 3 * rand(2, 3, 4, 5) + 1
    layer = make(f'name: "mvn" type: "MVN" mvn_param {{ {text} }}', [x.shape])
    (y,) = run(layer, x)
    np.testing.assert_allclose(y, mvn_ref(x, **kwargs), rtol=1e-5, atol=1e-5)
    # the same numbers when a gradient is wanted (Caffe's backward runs through a custom function)
    xt = torch.tensor(x, requires_grad=True)
    np.testing.assert_allclose(layer(xt)[0].detach().numpy(), y, rtol=1e-6, atol=1e-7)


def test_mvn_eps_is_outside_the_square_root():
    layer = make('name: "mvn" type: "MVN" mvn_param { eps: 1 }', [(1, 1, 2)])
    (y,) = run(layer, np.array([[[0, 2]]], np.float32))  # mean 1, population std 1: y = +-1 / (1 + 1)
    np.testing.assert_allclose(y, [[[-0.5, 0.5]]])


def test_mvn_on_2d_blobs():
    x = rand(3, 7)
    layer = make('name: "mvn" type: "MVN"', [x.shape])
    np.testing.assert_allclose(run(layer, x)[0], mvn_ref(x[:, :, None])[:, :, 0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("text", ["", "normalize_variance: false", "across_channels: true"])
def test_mvn_gradients(text):
    gradcheck_layer(make(f'name: "mvn" type: "MVN" mvn_param {{ {text} }}', [(2, 2, 2, 3)]), rand(2, 2, 2, 3))


def test_mvn_gradient_is_caffes_and_finite_for_constant_input():
    layer = make('name: "mvn" type: "MVN"', [(1, 1, 2, 2)])
    x = torch.full((1, 1, 2, 2), 3.0, requires_grad=True)
    top_diff = torch.tensor([1.0, 2.0, 3.0, 6.0]).reshape(1, 1, 2, 2)
    layer(x)[0].backward(top_diff)
    # y = 0, so Caffe's dx = (dy - mean(dy)) / (0 + eps)
    expected = (top_diff - top_diff.mean()) / 1e-9
    torch.testing.assert_close(x.grad, expected, rtol=1e-5, atol=0)


# ----------------------------------------------------------------------------- BatchNorm
def test_batch_norm_global_stats_divides_by_the_scale_factor():
    x = rand(2, 3, 4, 5)
    mean, var, factor = np.array([1.0, -2.0, 0.5]), np.array([4.0, 0.5, 2.0]), 2.0
    layer = make('name: "bn" type: "BatchNorm" batch_norm_param { eps: 0.001 }', [x.shape], schema.TEST)
    assert [tuple(b.shape) for b in layer.blobs] == [(3,), (3,), (1,)]
    set_blobs(layer, mean, var, [factor])
    (y,) = run(layer, x)
    m, v = (mean / factor)[None, :, None, None], (var / factor)[None, :, None, None]
    np.testing.assert_allclose(y, (x - m) / np.sqrt(v + 0.001), rtol=1e-5, atol=1e-5)


def test_batch_norm_leaves_the_callers_layer_parameter_as_given():
    param = parse_text(schema.LayerParameter, 'name: "bn" type: "BatchNorm"')
    layer = layer_class("BatchNorm")(param, [(2, 3, 4, 4)], schema.TRAIN)
    assert len(param.param) == 0  # the caller's message is untouched
    assert [spec.lr_mult for spec in layer.param.param] == [0.0, 0.0, 0.0]  # the layer's own copy


def test_a_saved_net_with_batch_norm_carries_the_frozen_specs_as_caffe_writes_them(tmp_path):
    from eigen_depth.caffe import read_caffemodel
    from eigen_depth.net import CaffeNet
    net_param = parse_text(schema.NetParameter, """
        layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 2 dim: 2 } } }
        layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" }""")
    net = CaffeNet(net_param, schema.TRAIN)
    assert len(net_param.layer[1].param) == 0
    net.save(str(tmp_path / "bn.caffemodel"))
    saved = read_caffemodel(str(tmp_path / "bn.caffemodel"), upgrade=False)  # as written, before the BatchNorm upgrade
    assert [spec.lr_mult for spec in saved.layer[1].param] == [0.0, 0.0, 0.0]


def test_batch_norm_zero_scale_factor_means_zero_statistics():
    x = rand(2, 3, 2, 2)
    layer = make('name: "bn" type: "BatchNorm"', [x.shape], schema.TEST)
    set_blobs(layer, [1, 2, 3], [4, 5, 6], [0])
    np.testing.assert_allclose(run(layer, x)[0], x / np.sqrt(1e-5), rtol=1e-5)


def batch_norm_train_ref(x, mean_blob, var_blob, factor_blob, maf=0.9, eps=1e-5):
    """batch_norm_layer.cpp in TRAIN: (top, new mean blob, new variance blob, new factor) in float64."""
    x64 = x.astype(np.float64)
    rows = x64.reshape(x.shape[0], x.shape[1] if x.ndim > 1 else 1, -1)
    mean = rows.mean(axis=(0, 2))
    var = ((rows - mean[None, :, None]) ** 2).mean(axis=(0, 2))
    top = ((rows - mean[None, :, None]) / np.sqrt(var + eps)[None, :, None]).reshape(x.shape)
    m = x.size // rows.shape[1]
    correction = m / (m - 1) if m > 1 else 1.0
    return (top, maf * np.asarray(mean_blob) + mean, maf * np.asarray(var_blob) + var * correction,
            [maf * factor_blob[0] + 1])


@pytest.mark.parametrize("shape, channels_last, grad", [
    ((4, 3, 2, 5), False, False),
    ((4, 3, 2, 5), True, False),    # a channels-last batch normalises the same channels
    ((4, 3, 2, 5), False, True),    # an input that needs a gradient (training)
    ((6, 3), False, False),         # an inner product's output
    ((5, 3, 7), False, True),
    ((1, 3), False, False),         # one value per channel: variance 0, Caffe's correction 1
    ((1, 3), False, True),
    ((7,), False, False),           # one axis: a single channel
])
def test_batch_norm_train_uses_batch_statistics_and_updates_the_blobs(shape, channels_last, grad):
    x = 2 * rand(*shape) + 1
    layer = make('name: "bn" type: "BatchNorm" batch_norm_param { moving_average_fraction: 0.9 }', [x.shape],
                 schema.TRAIN)
    channels = shape[1] if len(shape) > 1 else 1
    blobs = [np.arange(1, channels + 1), np.full(channels, 2.0), [3.0]]
    set_blobs(layer, *blobs)
    bottom = torch.from_numpy(x)
    if channels_last:
        bottom = bottom.contiguous(memory_format=torch.channels_last)
    (y,) = layer(bottom.requires_grad_(grad))
    top, mean_blob, var_blob, factor = batch_norm_train_ref(x, *blobs)
    np.testing.assert_allclose(y.detach().numpy(), top, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.blobs[0].detach().numpy(), mean_blob, rtol=1e-5)
    np.testing.assert_allclose(layer.blobs[1].detach().numpy(), var_blob, rtol=1e-5)
    np.testing.assert_allclose(layer.blobs[2].detach().numpy(), factor, rtol=1e-6)


def test_batch_norm_use_global_stats_overrides_the_phase():
    x = rand(2, 2, 3)
    layer = make('name: "bn" type: "BatchNorm" batch_norm_param { use_global_stats: false }', [x.shape], schema.TEST)
    (y,) = run(layer, x)
    np.testing.assert_allclose(y.mean(axis=(0, 2)), 0, atol=1e-6)
    layer = make('name: "bn" type: "BatchNorm" batch_norm_param { use_global_stats: true }', [x.shape], schema.TRAIN)
    set_blobs(layer, [1, 2], [1, 1], [1])
    np.testing.assert_allclose(run(layer, x)[0], (x - np.array([1, 2])[None, :, None]) / np.sqrt(1 + 1e-5),
                               rtol=1e-5)


@pytest.mark.parametrize("shape", [(3, 2, 2), (4, 3), (2, 3, 2, 3)])
def test_batch_norm_gradients_and_frozen_blobs(shape):
    train = make('name: "bn" type: "BatchNorm"', [shape], schema.TRAIN)
    assert not any(b.requires_grad for b in train.blobs)
    gradcheck_layer(train, rand(*shape), blobs=False)
    test = make('name: "bn" type: "BatchNorm"', [(3, 2, 2)], schema.TEST)
    set_blobs(test, [0.5, -1], [2, 3], [2])
    gradcheck_layer(test, rand(3, 2, 2), blobs=False)


def test_batch_norm_statistics_get_lr_mult_zero_and_fill_with_zeros():
    param = parse_text(schema.LayerParameter, 'name: "bn" type: "BatchNorm" param { lr_mult: 0 decay_mult: 0 }')
    layer = layer_class("BatchNorm")(param, [(2, 3, 4)], schema.TRAIN)
    assert [spec.lr_mult for spec in layer.param.param] == [0, 0, 0] and layer.param.param[0].decay_mult == 0
    set_blobs(layer, [1, 2, 3], [1, 1, 1], [5])
    layer.fill(torch.Generator().manual_seed(0), bilinear="2017")
    assert all(torch.all(b == 0) for b in layer.blobs)


def test_batch_norm_learned_statistics_are_an_error():
    with pytest.raises(LayerError, match="bn1.*lr_mult"):
        make('name: "bn1" type: "BatchNorm" param { lr_mult: 1 }', [(2, 3)])
    make('name: "bn1" type: "BatchNorm" param { lr_mult: 0 } param { lr_mult: 0 } param { lr_mult: 0 }', [(2, 3)])


# ----------------------------------------------------------------------------- Scale / Bias
@pytest.mark.parametrize("text, shape, blob_shape", [
    ("", (2, 3, 4, 5), (3,)),
    ("axis: 2", (2, 3, 4, 5), (4,)),
    ("axis: 1 num_axes: 2", (2, 3, 4, 5), (3, 4)),
    ("axis: 1 num_axes: -1", (2, 3, 4, 5), (3, 4, 5)),
    ("num_axes: 0", (2, 3, 4, 5), ()),
    ("axis: 0 num_axes: 1", (2, 3), (2,)),
    ("axis: -1", (2, 3, 4), (4,)),
])
def test_scale_and_bias_with_a_learned_blob(text, shape, blob_shape):
    x = rand(*shape)
    p = parse_text(schema.ScaleParameter, text)
    axis = p.axis % len(shape)
    trailing = len(shape) - axis - len(blob_shape) if blob_shape else 0
    for kind in ("Scale", "Bias"):
        field = "scale_param" if kind == "Scale" else "bias_param"
        layer = make(f'name: "s" type: "{kind}" {field} {{ {text} }}', [shape])
        assert [tuple(b.shape) for b in layer.blobs] == [blob_shape]
        blob = rand(*blob_shape, seed=3) if blob_shape else np.float32(1.7)
        set_blobs(layer, blob)
        b = np.asarray(blob).reshape(np.shape(blob) + (1,) * trailing)
        (y,) = run(layer, x)
        np.testing.assert_allclose(y, x * b if kind == "Scale" else x + b, rtol=1e-6, atol=1e-7)
        assert layer.top_shapes == [shape]


def test_scale_with_bias_term_and_fillers():
    layer = make('name: "sc" type: "Scale" scale_param { bias_term: true }', [(2, 3, 2)])
    assert [tuple(b.shape) for b in layer.blobs] == [(3,), (3,)]
    layer.fill(torch.Generator().manual_seed(0))
    assert torch.all(layer.blobs[0] == 1) and torch.all(layer.blobs[1] == 0)  # Caffe's default: identity
    layer = make('name: "sc" type: "Scale" scale_param { bias_term: true filler { type: "constant" value: 3 } '
                 'bias_filler { type: "constant" value: 2 } }', [(2, 3, 2)])
    layer.fill(torch.Generator().manual_seed(0))
    x = rand(2, 3, 2)
    np.testing.assert_allclose(run(layer, x)[0], 3 * x + 2, rtol=1e-6)
    bias = make('name: "b" type: "Bias" bias_param { filler { type: "constant" value: 4 } }', [(2, 3)])
    bias.fill(torch.Generator().manual_seed(0))
    assert torch.all(bias.blobs[0] == 4)
    assert torch.all(make('name: "b" type: "Bias"', [(2, 3)]).blobs[0] == 0)


def test_scale_and_bias_from_a_second_bottom():
    x, s = rand(2, 3, 4, 5), rand(3, 4, seed=1)
    layer = make('name: "sc" type: "Scale" scale_param { bias_term: true }', [x.shape, s.shape])
    assert [tuple(b.shape) for b in layer.blobs] == [(3, 4)]
    set_blobs(layer, rand(3, 4, seed=2))
    np.testing.assert_allclose(run(layer, x, s)[0], x * s[None, :, :, None] + rand(3, 4, seed=2)[None, :, :, None],
                               rtol=1e-5, atol=1e-6)
    layer = make('name: "b" type: "Bias" bias_param { axis: 0 }', [x.shape, (2, 3)])
    assert len(layer.blobs) == 0
    np.testing.assert_allclose(run(layer, x, s[:2, :3])[0], x + s[:2, :3, None, None], rtol=1e-6)


def test_scale_and_bias_gradients():
    gradcheck_layer(make('name: "s" type: "Scale" scale_param { bias_term: true }', [(2, 3, 2)]), rand(2, 3, 2))
    gradcheck_layer(make('name: "s" type: "Scale"', [(2, 3, 2), (3, 2)]), rand(2, 3, 2), rand(3, 2))
    gradcheck_layer(make('name: "b" type: "Bias" bias_param { num_axes: 0 }', [(2, 3)]), rand(2, 3))
    gradcheck_layer(make('name: "b" type: "Bias"', [(2, 3), (3,)]), rand(2, 3), rand(3))


@pytest.mark.parametrize("kind, field, text, shapes", [
    ("Scale", "scale_param", "", [(2, 3, 4), (4,)]),
    ("Scale", "scale_param", "axis: 1 num_axes: 3", [(2, 3, 4)]),
    ("Scale", "scale_param", "num_axes: -2", [(2, 3, 4)]),
    ("Bias", "bias_param", "axis: 3", [(2, 3, 4)]),
    ("Bias", "bias_param", "axis: 2", [(2, 3, 4), (4, 1)]),
])
def test_scale_and_bias_shape_errors(kind, field, text, shapes):
    with pytest.raises((LayerError, ShapeError), match="affine"):
        make(f'name: "affine" type: "{kind}" {field} {{ {text} }}', shapes)
