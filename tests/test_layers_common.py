"""InnerProduct, Reshape, Flatten, Concat, Slice, Split, Eltwise, Crop, Silence, Input and DummyData against
NumPy written from Caffe's layer sources, plus shapes, gradients and errors."""
import numpy as np
import pytest
import torch

from eigen_depth.caffe import parse_text, schema
from eigen_depth.errors import LayerError, ShapeError
from eigen_depth.layers import LAYER_TYPES

from layer_helpers import gradcheck_layer, make, rand, randomise, run


def test_every_layer_fill_takes_the_bilinear_option():
    # the net may call fill(generator, bilinear=...) on every layer, whatever its type
    layers = [make('name: "fc" type: "InnerProduct" inner_product_param { num_output: 2 }', [(1, 3)]),
              make('name: "r" type: "ReLU"', [(1, 3)]),
              make('name: "s" type: "Scale"', [(1, 3)]),
              make('name: "b" type: "Bias"', [(1, 3)]),
              make('name: "d" type: "Deconvolution" convolution_param { num_output: 1 kernel_size: 2 bias_term: false '
                   'weight_filler { type: "bilinear" } }', [(1, 1, 2, 2)])]
    for layer in layers:
        layer.fill(torch.Generator().manual_seed(0), bilinear="2017")
    assert torch.all(layers[-1].blobs[0] == 0.25)


def test_data_layers_are_registered_by_the_data_package():
    import eigen_depth.data.layers  # noqa: F401
    assert LAYER_TYPES["Data"].__module__ == LAYER_TYPES["HDF5Data"].__module__ == "eigen_depth.data.layers"


# ----------------------------------------------------------------------------- InnerProduct
@pytest.mark.parametrize("text, shape", [
    ("num_output: 5", (3, 2, 3, 4)),
    ("num_output: 4 axis: 2", (2, 3, 2, 2)),
    ("num_output: 3 transpose: true", (2, 6)),
    ("num_output: 2 bias_term: false axis: -1", (2, 3, 4)),
])
def test_inner_product_matches_reference(text, shape):
    layer = make(f'name: "fc" type: "InnerProduct" inner_product_param {{ {text} }}', [shape])
    p = parse_text(schema.InnerProductParameter, text)
    axis = p.axis % len(shape)
    blobs = randomise(layer)
    k = int(np.prod(shape[axis:]))
    assert blobs[0].shape == ((k, p.num_output) if p.transpose else (p.num_output, k))
    x = rand(*shape)
    (y,) = run(layer, x)
    flat = x.reshape(int(np.prod(shape[:axis])), k).astype(np.float64)
    expected = flat @ (blobs[0] if p.transpose else blobs[0].T)
    if p.bias_term:
        expected = expected + blobs[1]
    expected = expected.reshape(shape[:axis] + (p.num_output,))
    assert layer.top_shapes == [expected.shape]
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_inner_product_thesis_shapes():
    layer = make('name: "fc-main" type: "InnerProduct" inner_product_param { num_output: 1024 }', [(1, 256, 13, 18)])
    assert layer.top_shapes == [(1, 1024)] and [tuple(b.shape) for b in layer.blobs] == [(1024, 59904), (1024,)]


def test_inner_product_gradients():
    for text in ("num_output: 3", "num_output: 2 transpose: true"):
        layer = make(f'name: "fc" type: "InnerProduct" inner_product_param {{ {text} }}', [(2, 2, 2)])
        randomise(layer)
        gradcheck_layer(layer, rand(2, 2, 2))


def test_inner_product_fill_and_errors():
    layer = make('name: "fc" type: "InnerProduct" inner_product_param { num_output: 3 '
                 'weight_filler { type: "constant" value: 2 } bias_filler { type: "constant" value: -1 } }', [(1, 4)])
    layer.fill(torch.Generator().manual_seed(0))
    assert torch.all(layer.blobs[0] == 2) and torch.all(layer.blobs[1] == -1)
    with pytest.raises(ShapeError, match="fc"):
        layer(torch.zeros(1, 5))
    with pytest.raises(ShapeError, match="fc"):
        make('name: "fc" type: "InnerProduct" inner_product_param { num_output: 3 axis: 2 }', [(1, 4)])


# ----------------------------------------------------------------------------- Reshape / Flatten
@pytest.mark.parametrize("text, shape, expected", [
    ("shape { dim: 0 dim: 1 dim: 27 dim: 37 }", (2, 999), (2, 1, 27, 37)),
    ("shape { dim: 0 dim: -1 }", (2, 3, 4, 5), (2, 60)),
    ("shape { dim: -1 dim: 0 dim: 2 }", (3, 4, 6), (9, 4, 2)),
    ("shape { dim: 2 dim: 2 } axis: 1 num_axes: 1", (3, 4, 5), (3, 2, 2, 5)),
    ("shape { dim: -1 } axis: 1 num_axes: 2", (3, 4, 5, 6), (3, 20, 6)),
    ("shape { dim: 1 } axis: -1 num_axes: 0", (3, 4), (3, 4, 1)),
    ("shape { dim: 1 } axis: 0 num_axes: 0", (3, 4), (1, 3, 4)),
    ("shape { } axis: 1 num_axes: 1", (3, 1, 4), (3, 4)),
])
def test_reshape_shapes_and_values(text, shape, expected):
    layer = make(f'name: "r" type: "Reshape" reshape_param {{ {text} }}', [shape])
    assert layer.top_shapes == [expected]
    x = rand(*shape)
    (y,) = run(layer, x)
    np.testing.assert_array_equal(y, x.reshape(expected))


def test_reshape_copies_the_batch_axis_at_forward():
    layer = make('name: "r" type: "Reshape" reshape_param { shape { dim: 0 dim: 1 dim: 2 dim: 3 } }', [(1, 6)])
    assert layer(torch.zeros(4, 6))[0].shape == (4, 1, 2, 3)


@pytest.mark.parametrize("text, shape", [
    ("shape { dim: -1 dim: -1 }", (2, 3)),
    ("shape { dim: 0 dim: 0 dim: 0 }", (2, 3)),
    ("shape { dim: 5 dim: -1 }", (2, 3)),
    ("shape { dim: 4 dim: 2 }", (2, 3)),
    ("shape { dim: 1 } axis: 3", (2, 3)),
])
def test_reshape_errors(text, shape):
    with pytest.raises((LayerError, ShapeError), match="resh"):
        make(f'name: "resh" type: "Reshape" reshape_param {{ {text} }}', [shape])


@pytest.mark.parametrize("text, shape, expected", [
    ("", (2, 3, 4, 5), (2, 60)),
    ("axis: 2", (2, 3, 4, 5), (2, 3, 20)),
    ("axis: 1 end_axis: 2", (2, 3, 4, 5), (2, 12, 5)),
    ("axis: 0 end_axis: -2", (2, 3, 4, 5), (24, 5)),
    ("axis: 1", (2,  3), (2, 3)),
])
def test_flatten(text, shape, expected):
    layer = make(f'name: "f" type: "Flatten" flatten_param {{ {text} }}', [shape])
    assert layer.top_shapes == [expected]
    x = rand(*shape)
    np.testing.assert_array_equal(run(layer, x)[0], x.reshape(expected))


def test_flatten_end_before_start_is_an_error():
    with pytest.raises(ShapeError, match="flat"):
        make('name: "flat" type: "Flatten" flatten_param { axis: 2 end_axis: 1 }', [(2, 3, 4)])


def test_reshape_and_flatten_gradients():
    gradcheck_layer(make('name: "r" type: "Reshape" reshape_param { shape { dim: 0 dim: -1 } }', [(2, 2, 3)]),
                    rand(2, 2, 3))
    gradcheck_layer(make('name: "f" type: "Flatten"', [(2, 2, 3)]), rand(2, 2, 3))


# ----------------------------------------------------------------------------- Concat / Slice / Split
def test_concat_channels_and_other_axes():
    a, b, c = rand(2, 1, 3, 4), rand(2, 2, 3, 4, seed=1), rand(2, 3, 3, 4, seed=2)
    layer = make('name: "concat" type: "Concat"', [a.shape, b.shape, c.shape])
    assert layer.top_shapes == [(2, 6, 3, 4)]
    np.testing.assert_array_equal(run(layer, a, b, c)[0], np.concatenate([a, b, c], axis=1))
    x, y = rand(2, 3, 1, 4), rand(2, 3, 2, 4, seed=1)
    for text in ("axis: 2", "axis: -2", "concat_dim: 2"):
        layer = make(f'name: "concat" type: "Concat" concat_param {{ {text} }}', [x.shape, y.shape])
        np.testing.assert_array_equal(run(layer, x, y)[0], np.concatenate([x, y], axis=2))


def test_concat_single_bottom_and_gradients():
    x = rand(1, 2, 2)
    assert np.array_equal(run(make('name: "c" type: "Concat"', [x.shape]), x)[0], x)
    gradcheck_layer(make('name: "c" type: "Concat"', [(1, 2, 2), (1, 1, 2)]), x, rand(1, 1, 2))


@pytest.mark.parametrize("text, shapes", [
    ("", [(2, 3, 4, 4), (2, 3, 5, 4)]),
    ("", [(2, 3, 4, 4), (2, 3, 4)]),
    ("axis: 4", [(2, 3, 4, 4), (2, 3, 4, 4)]),
    ("axis: 1 concat_dim: 1", [(2, 3), (2, 3)]),
])
def test_concat_mismatch_errors(text, shapes):
    with pytest.raises((LayerError, ShapeError), match="concat-global"):
        make(f'name: "concat-global" type: "Concat" concat_param {{ {text} }}', shapes)


@pytest.mark.parametrize("text, tops, shape, sizes", [
    ("slice_point: 1 slice_point: 3", 3, (2, 5, 2), [1, 2, 2]),
    ("axis: 2 slice_point: 2", 2, (2, 3, 5), [2, 3]),
    ("axis: -1", 3, (2, 3, 6), [2, 2, 2]),
    ("", 2, (2, 4, 1), [2, 2]),
    ("slice_dim: 0 slice_point: 1", 2, (3, 2), [1, 2]),
    ("slice_point: 2", 2, (1, 2, 2), [2, 0]),
])
def test_slice(text, tops, shape, sizes):
    top_text = " ".join(f'top: "t{i}"' for i in range(tops))
    layer = make(f'name: "s" type: "Slice" {top_text} slice_param {{ {text} }}', [shape])
    p = parse_text(schema.SliceParameter, text)
    axis = p.slice_dim if p.HasField("slice_dim") else p.axis % len(shape)
    x = rand(*shape)
    outs = run(layer, x)
    expected = np.split(x, np.cumsum(sizes)[:-1], axis=axis)
    assert layer.top_shapes == [e.shape for e in expected]
    for out, e in zip(outs, expected):
        np.testing.assert_array_equal(out, e)


def test_slice_number_of_tops_follows_the_slice_points():
    layer = make('name: "s" type: "Slice" slice_param { slice_point: 1 slice_point: 2 }', [(1, 3)])
    assert layer.top_shapes == [(1, 1), (1, 1), (1, 1)]


@pytest.mark.parametrize("text, tops, shape", [
    ("slice_point: 1", 3, (2, 4)),
    ("slice_point: 2 slice_point: 2", 3, (2, 4)),
    ("slice_point: 5", 2, (2, 4)),
    ("", 3, (2, 4)),
    ("axis: 1 slice_dim: 1", 2, (2, 4)),
])
def test_slice_errors(text, tops, shape):
    top_text = " ".join(f'top: "t{i}"' for i in range(tops))
    with pytest.raises((LayerError, ShapeError), match="slicer"):
        make(f'name: "slicer" type: "Slice" {top_text} slice_param {{ {text} }}', [shape])


def test_slice_gradients():
    layer = make('name: "s" type: "Slice" top: "a" top: "b" slice_param { slice_point: 1 }', [(2, 3)])
    gradcheck_layer(layer, rand(2, 3))


def test_split_copies_to_every_top_and_sums_gradients():
    layer = make('name: "sp" type: "Split" top: "a" top: "b" top: "c"', [(2, 3)])
    assert layer.top_shapes == [(2, 3)] * 3
    x = torch.tensor(rand(2, 3), requires_grad=True)
    tops = layer(x)
    assert len(tops) == 3 and all(torch.equal(t, x) for t in tops)
    sum(t.sum() * (i + 1) for i, t in enumerate(tops)).backward()
    assert torch.all(x.grad == 6)


# ----------------------------------------------------------------------------- Eltwise
def test_eltwise_operations():
    a, b, c = rand(2, 3, 4), rand(2, 3, 4, seed=1), rand(2, 3, 4, seed=2)
    shapes = [a.shape] * 3
    np.testing.assert_allclose(run(make('name: "e" type: "Eltwise"', shapes), a, b, c)[0], a + b + c, rtol=1e-6)
    layer = make('name: "e" type: "Eltwise" eltwise_param { operation: SUM coeff: 1 coeff: -2 coeff: 0.5 }', shapes)
    np.testing.assert_allclose(run(layer, a, b, c)[0], a - 2 * b + 0.5 * c, rtol=1e-5, atol=1e-6)
    layer = make('name: "e" type: "Eltwise" eltwise_param { operation: PROD }', shapes)
    np.testing.assert_allclose(run(layer, a, b, c)[0], a * b * c, rtol=1e-6)
    layer = make('name: "e" type: "Eltwise" eltwise_param { operation: MAX }', shapes)
    np.testing.assert_array_equal(run(layer, a, b, c)[0], np.maximum(np.maximum(a, b), c))


def test_eltwise_max_gradient_goes_to_the_first_maximum():
    layer = make('name: "e" type: "Eltwise" eltwise_param { operation: MAX }', [(3,)] * 3)
    a = torch.tensor([1.0, 2.0, 5.0], requires_grad=True)
    b = torch.tensor([1.0, 3.0, 5.0], requires_grad=True)
    c = torch.tensor([0.0, 3.0, 5.0], requires_grad=True)
    layer(a, b, c)[0].sum().backward()
    assert a.grad.tolist() == [1, 0, 1] and b.grad.tolist() == [0, 1, 0] and c.grad.tolist() == [0, 0, 0]


def test_eltwise_gradients():
    for op in ("SUM coeff: 2 coeff: -1", "PROD", "MAX"):
        layer = make(f'name: "e" type: "Eltwise" eltwise_param {{ operation: {op} }}', [(2, 3)] * 2)
        gradcheck_layer(layer, rand(2, 3), rand(2, 3, seed=1))


@pytest.mark.parametrize("text, shapes", [
    ("", [(2, 3), (2, 4)]),
    ("coeff: 1", [(2, 3), (2, 3)]),
    ("operation: PROD coeff: 1 coeff: 1", [(2, 3), (2, 3)]),
    ("", [(2, 3)]),
])
def test_eltwise_errors(text, shapes):
    with pytest.raises((LayerError, ShapeError), match="elt"):
        make(f'name: "elt" type: "Eltwise" eltwise_param {{ {text} }}', shapes)


# ----------------------------------------------------------------------------- Crop
@pytest.mark.parametrize("text, data, like, index", [
    ("", (2, 3, 7, 8), (1, 1, 4, 5), (slice(None), slice(None), slice(0, 4), slice(0, 5))),
    ("offset: 2", (2, 3, 7, 8), (2, 3, 4, 5), (slice(None), slice(None), slice(2, 6), slice(2, 7))),
    ("offset: 1 offset: 3", (2, 3, 7, 8), (2, 3, 4, 5), (slice(None), slice(None), slice(1, 5), slice(3, 8))),
    ("axis: 1 offset: 1 offset: 2 offset: 0", (2, 3, 7, 8), (2, 2, 4, 8),
     (slice(None), slice(1, 3), slice(2, 6), slice(0, 8))),
    ("axis: -1 offset: 3", (2, 3, 7, 8), (5, 5, 5, 5), (slice(None), slice(None), slice(None), slice(3, 8))),
    ("axis: 0", (3, 2), (2, 1), (slice(0, 2), slice(0, 1))),
])
def test_crop(text, data, like, index):
    layer = make(f'name: "crop" type: "Crop" crop_param {{ {text} }}', [data, like])
    x = rand(*data)
    (y,) = run(layer, x, np.zeros(like, np.float32))
    assert layer.top_shapes == [x[index].shape]
    np.testing.assert_array_equal(y, x[index])


def test_crop_errors_and_gradients():
    with pytest.raises(ShapeError, match="crop1.*out of bounds"):
        make('name: "crop1" type: "Crop" crop_param { offset: 4 }', [(1, 1, 7, 8), (1, 1, 4, 5)])
    with pytest.raises(LayerError, match="crop1"):
        make('name: "crop1" type: "Crop" crop_param { offset: 1 offset: 1 offset: 1 }', [(1, 1, 7, 8), (1, 1, 4, 5)])
    with pytest.raises(LayerError, match="crop1.*bottom"):
        make('name: "crop1" type: "Crop"', [(1, 1, 7, 8)])
    layer = make('name: "crop" type: "Crop" crop_param { offset: 1 }', [(1, 1, 4, 4), (1, 1, 2, 2)])
    x, like = torch.tensor(rand(1, 1, 4, 4), dtype=torch.float64, requires_grad=True), torch.zeros(1, 1, 2, 2)
    assert torch.autograd.gradcheck(lambda t: layer(t, like)[0], (x,))


# ----------------------------------------------------------------------------- Silence / Input / DummyData
def test_silence_has_no_tops():
    layer = make('name: "s" type: "Silence" bottom: "a" bottom: "b"', [(1, 2), (3,)])
    assert layer.top_shapes == [] and layer(torch.zeros(1, 2), torch.zeros(3)) == ()
    with pytest.raises(LayerError, match="s.*top"):
        make('name: "s" type: "Silence" bottom: "a" top: "b"', [(1, 2)])


def test_input_shapes():
    layer = make('name: "X" type: "Input" top: "X" input_param { shape { dim: 1 dim: 3 dim: 218 dim: 298 } }', [])
    assert layer.top_shapes == [(1, 3, 218, 298)]
    layer = make('name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } }', [])
    assert layer.top_shapes == [(2, 3), (2, 3)]
    layer = make('name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 } shape { dim: 4 dim: 1 } }',
                 [])
    assert layer.top_shapes == [(2,), (4, 1)]
    with pytest.raises(LayerError, match="in"):
        layer()


def test_input_errors():
    with pytest.raises(LayerError, match="inp.*shape"):
        make('name: "inp" type: "Input" top: "a" top: "b" top: "c" input_param { shape { dim: 2 } shape { dim: 4 } }',
             [])
    with pytest.raises(LayerError, match="inp.*shape"):
        make('name: "inp" type: "Input" top: "a"', [])
    with pytest.raises(LayerError, match="inp.*bottom"):
        make('name: "inp" type: "Input" top: "a" input_param { shape { dim: 2 } }', [(2,)])


def test_dummy_data_constant_default_and_legacy_shape():
    layer = make('name: "d" type: "DummyData" top: "a" top: "b" dummy_data_param { num: 2 channels: 3 height: 4 '
                 'width: 5 num: 1 channels: 1 height: 1 width: 2 data_filler { type: "constant" value: 7 } }', [])
    assert layer.top_shapes == [(2, 3, 4, 5), (1, 1, 1, 2)]
    a, b = layer()
    assert a.dtype == torch.float32 and torch.all(a == 7) and torch.all(b == 7)
    layer = make('name: "d" type: "DummyData" top: "a" dummy_data_param { shape { dim: 3 dim: 2 } }', [])
    assert torch.equal(layer()[0], torch.zeros(3, 2))
    assert layer.double()()[0].dtype == torch.float64


def test_dummy_data_refills_random_fillers_each_forward():
    layer = make('name: "d" type: "DummyData" top: "a" top: "b" dummy_data_param { shape { dim: 1000 } '
                 'data_filler { type: "uniform" min: 2 max: 3 } data_filler { type: "constant" value: 1 } }', [])
    a1, b1 = layer()
    a2, _ = layer()
    assert a1.min() >= 2 and a1.max() < 3 and not torch.equal(a1, a2) and torch.all(b1 == 1)


def test_dummy_data_errors():
    for text in ('shape { dim: 2 } num: 1 channels: 1 height: 1 width: 1', 'num: 1 channels: 1', '',
                 'shape { dim: 2 } shape { dim: 2 } shape { dim: 2 }'):
        with pytest.raises(LayerError, match="dummy"):
            make(f'name: "dummy" type: "DummyData" top: "a" top: "b" dummy_data_param {{ {text} }}', [])
