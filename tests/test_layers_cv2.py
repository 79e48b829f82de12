"""Layers against an independent Caffe implementation: OpenCV's dnn module reading a one-layer prototxt
(and, for layers with weights, a caffemodel holding the same blobs).

Known OpenCV deviations, not tested here: it ignores LRN's `k` and Log's scale/shift, reads a transposed
InnerProduct weight as if it were not transposed, and has no Bias layer.
"""
import numpy as np
import pytest
import torch

from eigen_depth.caffe import NetParameter, array_to_blob, parse_text, schema, write_caffemodel
from eigen_depth.layers import layer_class

cv2 = pytest.importorskip("cv2")


def opencv_forward(layer_text, x, model=None):
    dims = " ".join(f"dim: {d}" for d in x.shape)
    proto = f'name: "t" input: "x" input_shape {{ {dims} }}\nlayer {{ {layer_text} bottom: "x" top: "y" }}'
    if model is None:
        net = cv2.dnn.readNetFromCaffe(bytearray(proto.encode()))
    else:
        net = cv2.dnn.readNetFromCaffe(bytearray(proto.encode()), bytearray(model))
    net.setInput(x, "x")
    return net.forward()


def our_forward(layer_text, x):
    param = parse_text(schema.LayerParameter, layer_text + ' bottom: "x" top: "y"')
    layer = layer_class(param.type)(param, [x.shape])
    (y,) = layer(torch.from_numpy(x))
    assert layer.top_shapes == [tuple(y.shape)]
    return y.numpy()


POOLS = [(7, 3, 2, 1), (6, 2, 2, 1), (5, 2, 2, 1), (6, 3, 2, 1), (7, 3, 2, 0), (13, 4, 2, 0), (7, 3, 3, 2),
         (106, 2, 2, 1), (9, 3, 2, 1), (10, 3, 3, 1)]
CASES = [f'name: "p" type: "Pooling" pooling_param {{ pool: {m} kernel_size: {k} stride: {s} pad: {p} }}|{h}'
         for m in ("MAX", "AVE") for h, k, s, p in POOLS]
CASES += [f'name: "n" type: "LRN" lrn_param {{ local_size: {n} alpha: {a} beta: 0.75 norm_region: {r} }}|5'
          for n, a in ((1, 0.5), (3, 0.5), (5, 1e-4), (5, 2.0)) for r in ("ACROSS_CHANNELS", "WITHIN_CHANNEL")]
CASES += [f'name: "m" type: "MVN" mvn_param {{ {t} }}|4' for t in ("", "normalize_variance: false",
                                                                  "across_channels: true")]
CASES += ['name: "m" type: "Power" power_param { power: 2 scale: 0.5 shift: 1 }|4',
          'name: "m" type: "Power" power_param { scale: 0.01 }|4',
          'name: "m" type: "Exp" exp_param { base: 2 scale: 0.5 shift: 1 }|4',
          'name: "m" type: "Log"|4',
          'name: "m" type: "Softmax"|4',
          'name: "m" type: "AbsVal"|4',
          'name: "m" type: "TanH"|4',
          'name: "m" type: "Sigmoid"|4',
          'name: "m" type: "ReLU" relu_param { negative_slope: 0.1 }|4',
          'name: "m" type: "Flatten"|4',
          'name: "m" type: "Reshape" reshape_param { shape { dim: 0 dim: -1 dim: 2 } }|4']


@pytest.mark.parametrize("case", CASES)
def test_layer_matches_opencv(case):
    text, size = case.split("|")
    size = int(size)
    x = np.random.default_rng(size).standard_normal((2, 7, size, size + 1)).astype(np.float32) * 2
    if "Log" in text:
        x = np.abs(x) + 0.1
    expected = opencv_forward(text, x)
    np.testing.assert_allclose(our_forward(text, x), expected, rtol=1e-4, atol=1e-5)


WEIGHTED = [
    ('name: "c" type: "Convolution" convolution_param { num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2 }',
     (2, 4, 7, 8)),
    ('name: "c" type: "Convolution" convolution_param { num_output: 3 kernel_size: 3 dilation: 2 pad: 2 }',
     (1, 2, 7, 8)),
    ('name: "c" type: "Convolution" convolution_param { num_output: 3 kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 1 '
     'pad_h: 0 pad_w: 1 }', (1, 2, 7, 8)),
    ('name: "c" type: "Convolution" convolution_param { num_output: 6 kernel_size: 11 stride: 4 }', (1, 3, 30, 35)),
    ('name: "c" type: "Deconvolution" convolution_param { num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2 }',
     (2, 4, 4, 5)),
    ('name: "c" type: "Deconvolution" convolution_param { num_output: 3 kernel_size: 2 stride: 2 group: 3 '
     'bias_term: false }', (1, 3, 4, 5)),
    ('name: "c" type: "Deconvolution" convolution_param { num_output: 2 kernel_size: 3 group: 2 bias_term: false }',
     (1, 2, 4, 5)),
    ('name: "c" type: "Deconvolution" convolution_param { num_output: 3 kernel_size: 4 stride: 3 pad: 1 }',
     (1, 2, 4, 5)),
    ('name: "c" type: "InnerProduct" inner_product_param { num_output: 5 }', (2, 3, 4, 5)),
    ('name: "c" type: "BatchNorm" batch_norm_param { eps: 0.001 }', (2, 3, 4, 5)),
    ('name: "c" type: "Scale" scale_param { bias_term: true }', (2, 3, 4, 5)),
    ('name: "c" type: "Scale" scale_param { axis: 1 num_axes: 2 }', (2, 3, 4, 5)),
]


@pytest.mark.parametrize("text, shape", WEIGHTED)
def test_layer_with_weights_matches_opencv(text, shape, tmp_path):
    rng = np.random.default_rng(len(text))
    param = parse_text(schema.LayerParameter, text + ' bottom: "x" top: "y"')
    layer = layer_class(param.type)(param, [shape])
    with torch.no_grad():
        for blob in layer.blobs:
            blob.copy_(torch.from_numpy(rng.standard_normal(tuple(blob.shape)).astype(np.float32)))
        if param.type == "BatchNorm":
            layer.blobs[1].abs_()
            layer.blobs[2].fill_(2.0)
    x = rng.standard_normal(shape).astype(np.float32)
    (y,) = layer(torch.from_numpy(x))
    net = NetParameter(name="t")
    stored = net.layer.add()
    stored.CopyFrom(param)
    for blob in layer.blobs:
        stored.blobs.append(array_to_blob(blob.detach().numpy()))
    write_caffemodel(net, tmp_path / "m.caffemodel")
    expected = opencv_forward(text, x, (tmp_path / "m.caffemodel").read_bytes())
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-4, atol=1e-4)


MULTI = [
    ('name: "l" type: "Concat"', [(2, 1, 3, 4), (2, 2, 3, 4), (2, 3, 3, 4)]),
    ('name: "l" type: "Concat" concat_param { axis: 2 }', [(2, 3, 1, 4), (2, 3, 2, 4)]),
    ('name: "l" type: "Eltwise" eltwise_param { operation: SUM coeff: 2 coeff: -0.5 }', [(2, 3, 4, 5)] * 2),
    ('name: "l" type: "Eltwise" eltwise_param { operation: PROD }', [(2, 3, 4, 5)] * 3),
    ('name: "l" type: "Eltwise" eltwise_param { operation: MAX }', [(2, 3, 4, 5)] * 3),
    ('name: "l" type: "Crop" crop_param { offset: 1 offset: 2 }', [(2, 3, 7, 8), (2, 3, 4, 5)]),
    ('name: "l" type: "Crop" crop_param { axis: 1 offset: 1 }', [(2, 3, 7, 8), (2, 2, 4, 5)]),
    ('name: "l" type: "Crop"', [(2, 3, 7, 8), (1, 1, 4, 5)]),
]


@pytest.mark.parametrize("text, shapes", MULTI)
def test_layer_with_several_bottoms_matches_opencv(text, shapes):
    rng = np.random.default_rng(len(text))
    xs = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    bottoms = " ".join(f'bottom: "x{i}"' for i in range(len(xs)))
    proto = 'name: "t"\n' + "".join(f'input: "x{i}" input_shape {{ {" ".join(f"dim: {d}" for d in x.shape)} }}\n'
                                    for i, x in enumerate(xs))
    proto += f'layer {{ {text} {bottoms} top: "y" }}'
    net = cv2.dnn.readNetFromCaffe(bytearray(proto.encode()))
    for i, x in enumerate(xs):
        net.setInput(x, f"x{i}")
    expected = net.forward()
    param = parse_text(schema.LayerParameter, f'{text} {bottoms} top: "y"')
    layer = layer_class(param.type)(param, shapes)
    (y,) = layer(*[torch.from_numpy(x) for x in xs])
    assert layer.top_shapes == [expected.shape]
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_pooling_ceil_mode_false_of_converted_models_floors_like_opencv(tmp_path):
    # 7x7 input, kernel 2, stride 2: Caffe's ceil gives 4x4, `ceil_mode: false` (as OpenCV reads it) 3x3
    import cv2
    from eigen_depth.caffe import parse_text, schema
    from eigen_depth.net import CaffeNet
    text = ('layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 7 dim: 7 } } }\n'
            'layer { name: "p" type: "Pooling" bottom: "x" top: "p" '
            'pooling_param { pool: MAX kernel_size: 2 stride: 2 ceil_mode: false } }\n')
    (tmp_path / "pool.prototxt").write_text(text)
    x = np.arange(49, dtype=np.float32).reshape(1, 1, 7, 7)
    opencv = cv2.dnn.readNetFromCaffe(str(tmp_path / "pool.prototxt"))
    opencv.setInput(x)
    expected = opencv.forward()
    assert expected.shape == (1, 1, 3, 3)
    got = CaffeNet(parse_text(schema.NetParameter, text))({"x": x})["p"].numpy()
    np.testing.assert_array_equal(got, expected)
