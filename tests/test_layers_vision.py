"""Convolution, Deconvolution, Pooling and LRN against slow NumPy references written from Caffe's sources
(base_conv_layer.cpp, pooling_layer.cpp, lrn_layer.cpp), plus shapes, gradients and errors."""
import math

import numpy as np
import pytest
import torch

from eigen_depth.caffe import parse_text, schema
from eigen_depth.errors import LayerError, ShapeError

from layer_helpers import gradcheck_layer, make, rand, randomise, run

FLT_MAX = float(np.finfo(np.float32).max)


# ----------------------------------------------------------------------------- references
def conv_ref(x, w, b, stride, pad, dilation, group):
    n, c, h, wd = x.shape
    out_c, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (wd + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), np.float64)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    out = np.zeros((n, out_c, oh, ow))
    og = out_c // group
    for g in range(group):
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, g * cg:(g + 1) * cg, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                           j * sw:j * sw + dw * (kw - 1) + 1:dw]
                out[:, g * og:(g + 1) * og, i, j] = np.einsum("nckl,ockl->no", patch, w[g * og:(g + 1) * og])
    if b is not None:
        out += b[None, :, None, None]
    return out


def deconv_ref(x, w, b, stride, pad, dilation, group):
    """Caffe's deconvolution = scatter of every input value times the kernel (col2im of the conv backward)."""
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    fh, fw = sh * (h - 1) + dh * (kh - 1) + 1, sw * (wd - 1) + dw * (kw - 1) + 1
    full = np.zeros((n, og * group, fh, fw))
    cg = c // group
    for ch in range(c):
        g = ch // cg
        for i in range(h):
            for j in range(wd):
                for ky in range(kh):
                    for kx in range(kw):
                        full[:, g * og:(g + 1) * og, i * sh + ky * dh, j * sw + kx * dw] += (
                            x[:, ch, i, j][:, None] * w[ch, :, ky, kx][None, :])
    out = full[:, :, ph:fh - ph, pw:fw - pw]
    if b is not None:
        out = out + b[None, :, None, None]
    return out


def pooled_size_ref(size, k, s, p, any_pad, floor=False):
    value = (size + 2 * p - k) / s
    out = int(math.floor(value) if floor else math.ceil(value)) + 1
    if any_pad and (out - 1) * s >= size + p:
        out -= 1
    return out


def pool_ref(x, method, kernel, stride, pad, floor=False):
    """pooling_layer.cpp's Forward_cpu, loop for loop; returns (top, mask) (mask for MAX only)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    any_pad = ph > 0 or pw > 0
    oh, ow = pooled_size_ref(h, kh, sh, ph, any_pad, floor), pooled_size_ref(w, kw, sw, pw, any_pad, floor)
    top = np.zeros((n, c, oh, ow))
    mask = np.full((n, c, oh, ow), -1.0)
    for i in range(oh):
        for j in range(ow):
            hstart, wstart = i * sh - ph, j * sw - pw
            if method == "MAX":
                hend, wend = min(hstart + kh, h), min(wstart + kw, w)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                for a in range(n):
                    for b in range(c):
                        best, arg = -FLT_MAX, -1
                        for y in range(hstart, hend):
                            for xx in range(wstart, wend):
                                if x[a, b, y, xx] > best:
                                    best, arg = x[a, b, y, xx], y * w + xx
                        top[a, b, i, j], mask[a, b, i, j] = best, arg
            else:
                hend, wend = min(hstart + kh, h + ph), min(wstart + kw, w + pw)
                pool_size = (hend - hstart) * (wend - wstart)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                hend, wend = min(hend, h), min(wend, w)
                total = x[:, :, hstart:hend, wstart:wend].astype(np.float64).sum(axis=(2, 3))
                with np.errstate(invalid="ignore", divide="ignore"):
                    top[:, :, i, j] = total / pool_size
    return top, mask


def lrn_ref(x, size, alpha, beta, k, region):
    n, c, h, w = x.shape
    half = (size - 1) // 2
    x = x.astype(np.float64)
    scale = np.zeros_like(x)
    if region == "ACROSS_CHANNELS":
        for ch in range(c):
            lo, hi = max(ch - half, 0), min(ch + half, c - 1)
            scale[:, ch] = k + alpha / size * (x[:, lo:hi + 1] ** 2).sum(axis=1)
    else:
        # AVE pooling of x^2 (kernel size, pad half, stride 1) with Caffe's divisor, then 1 + alpha * avg
        avg, _ = pool_ref(x ** 2, "AVE", (size, size), (1, 1), (half, half))
        scale = 1 + alpha * avg
    return x * scale ** -beta


# ----------------------------------------------------------------------------- convolution
CONV_CASES = [
    # (conv_param text, bottom shape)
    ("num_output: 4 kernel_size: 3", (2, 3, 6, 7)),
    ("num_output: 6 kernel_size: 3 stride: 2 pad: 1", (2, 4, 7, 8)),
    ("num_output: 4 kernel_size: 3 pad: 1 group: 2", (1, 6, 5, 5)),
    ("num_output: 6 kernel_size: 2 group: 3 bias_term: false", (2, 3, 4, 5)),
    ("num_output: 3 kernel_size: 3 dilation: 2 pad: 2", (1, 2, 7, 6)),
    ("num_output: 2 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0", (1, 3, 7, 6)),
    ("num_output: 2 kernel_size: 3 kernel_size: 1 stride: 1 stride: 2 pad: 0 pad: 1 dilation: 1 dilation: 2",
     (2, 2, 6, 7)),
    ("num_output: 5 kernel_size: 11 stride: 4", (1, 3, 23, 27)),
]


def _conv_geometry(cp):
    def pair(values, h, w, default):
        if h is not None:
            return h, w
        return (values[0], values[-1]) if values else (default, default)
    p = parse_text(schema.ConvolutionParameter, cp)
    kernel = pair(list(p.kernel_size), p.kernel_h if p.HasField("kernel_h") else None, p.kernel_w, None)
    stride = pair(list(p.stride), p.stride_h if p.HasField("stride_h") else None, p.stride_w, 1)
    pad = pair(list(p.pad), p.pad_h if p.HasField("pad_h") else None, p.pad_w, 0)
    dilation = pair(list(p.dilation), None, None, 1)
    return kernel, stride, pad, dilation, p.group


@pytest.mark.parametrize("cp, shape", CONV_CASES)
def test_convolution_matches_reference(cp, shape):
    layer = make(f'name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param {{ {cp} }}', [shape])
    kernel, stride, pad, dilation, group = _conv_geometry(cp)
    blobs = randomise(layer)
    x = rand(*shape)
    (y,) = run(layer, x)
    expected = conv_ref(x, blobs[0], blobs[1] if len(blobs) > 1 else None, stride, pad, dilation, group)
    assert layer.top_shapes == [expected.shape]
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_convolution_blob_shapes():
    layer = make('name: "c" type: "Convolution" convolution_param { num_output: 8 kernel_size: 3 group: 2 }',
                 [(1, 6, 5, 5)])
    assert [tuple(b.shape) for b in layer.blobs] == [(8, 3, 3, 3), (8,)]
    layer = make('name: "c" type: "Convolution" convolution_param { num_output: 8 kernel_h: 1 kernel_w: 3 '
                 'bias_term: false }', [(1, 6, 5, 5)])
    assert [tuple(b.shape) for b in layer.blobs] == [(8, 6, 1, 3)]


def test_convolution_output_size_formula():
    # floor((in + 2p - d(k-1) - 1)/s) + 1, e.g. the thesis's conv1: 11x11/4 on 218x298 gives 52x72
    layer = make('name: "conv1" type: "Convolution" convolution_param { num_output: 96 kernel_size: 11 stride: 4 }',
                 [(1, 3, 218, 298)])
    assert layer.top_shapes == [(1, 96, 52, 72)]
    layer = make('name: "c" type: "Convolution" convolution_param { num_output: 1 kernel_size: 3 stride: 2 '
                 'pad: 1 dilation: 3 }', [(1, 1, 10, 11)])
    assert layer.top_shapes == [(1, 1, (10 + 2 - 7) // 2 + 1, (11 + 2 - 7) // 2 + 1)]


def test_convolution_multiple_bottoms_share_weights():
    layer = make('name: "c" type: "Convolution" bottom: "a" bottom: "b" top: "p" top: "q" '
                 'convolution_param { num_output: 2 kernel_size: 2 }', [(1, 2, 4, 4), (1, 2, 4, 4)])
    blobs = randomise(layer)
    a, b = rand(1, 2, 4, 4, seed=5), rand(1, 2, 4, 4, seed=6)
    p, q = run(layer, a, b)
    for x, y in ((a, p), (b, q)):
        np.testing.assert_allclose(y, conv_ref(x, blobs[0], blobs[1], (1, 1), (0, 0), (1, 1), 1), rtol=1e-4,
                                   atol=1e-5)


def test_convolution_works_for_other_batch_sizes():
    layer = make('name: "c" type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 }', [(1, 2, 5, 5)])
    randomise(layer)
    assert layer(torch.zeros(3, 2, 5, 5))[0].shape == (3, 2, 3, 3)


def test_convolution_gradients():
    layer = make('name: "c" type: "Convolution" convolution_param { num_output: 4 kernel_size: 2 stride: 2 '
                 'pad: 1 group: 2 dilation: 1 }', [(1, 2, 3, 3)])
    randomise(layer)
    gradcheck_layer(layer, rand(1, 2, 3, 3))


@pytest.mark.parametrize("cp, shape, fragment", [
    ("num_output: 4 kernel_size: 5", (1, 3, 4, 4), "too small"),
    ("num_output: 4 kernel_size: 3 group: 2", (1, 3, 5, 5), "group"),
    ("num_output: 3 kernel_size: 3 group: 2", (1, 4, 5, 5), "group"),
    ("num_output: 4", (1, 3, 5, 5), "kernel"),
    ("num_output: 4 kernel_size: 3 kernel_h: 3 kernel_w: 3", (1, 3, 5, 5), "not both"),
    ("num_output: 4 kernel_size: 3 stride_h: 2", (1, 3, 5, 5), "stride"),
    ("num_output: 4 kernel_size: 3 axis: 2", (1, 3, 5, 5), "axis"),
    ("num_output: 0 kernel_size: 3", (1, 3, 5, 5), "num_output"),
    ("num_output: 4 kernel_size: 3", (3, 5, 5), "4-axis"),
])
def test_convolution_errors_name_the_layer(cp, shape, fragment):
    with pytest.raises((LayerError, ShapeError), match=fragment) as info:
        make(f'name: "conv9" type: "Convolution" convolution_param {{ {cp} }}', [shape])
    assert "conv9" in str(info.value)


def test_convolution_kernel_larger_than_padded_input_is_a_shape_error():
    with pytest.raises(ShapeError, match="conv9"):
        make('name: "conv9" type: "Convolution" convolution_param { num_output: 1 kernel_size: 7 pad: 1 }',
             [(1, 1, 4, 4)])


def test_convolution_wrong_number_of_bottoms():
    with pytest.raises(LayerError, match="conv9.*bottom"):
        make('name: "conv9" type: "Convolution" convolution_param { num_output: 1 kernel_size: 1 }', [])


def test_convolution_fill_uses_fillers_and_defaults_to_zero():
    layer = make('name: "c" type: "Convolution" convolution_param { num_output: 2 kernel_size: 2 '
                 'bias_filler { type: "constant" value: 0.5 } }', [(1, 1, 3, 3)])
    randomise(layer)
    layer.fill(torch.Generator().manual_seed(0))
    assert torch.all(layer.blobs[0] == 0) and torch.all(layer.blobs[1] == 0.5)


# ----------------------------------------------------------------------------- deconvolution
DECONV_CASES = [
    ("num_output: 3 kernel_size: 3", (1, 2, 4, 5)),
    ("num_output: 2 kernel_size: 2 stride: 2 bias_term: false", (2, 3, 3, 4)),
    ("num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2", (1, 4, 3, 3)),
    ("num_output: 2 kernel_size: 3 stride: 1 group: 2 bias_term: false", (1, 2, 5, 7)),
    ("num_output: 3 kernel_size: 4 stride: 3 pad: 1", (1, 1, 3, 2)),
    ("num_output: 2 kernel_size: 3 dilation: 2 stride: 2 pad: 1", (1, 2, 3, 4)),
]


@pytest.mark.parametrize("cp, shape", DECONV_CASES)
def test_deconvolution_matches_reference(cp, shape):
    layer = make(f'name: "d" type: "Deconvolution" convolution_param {{ {cp} }}', [shape])
    kernel, stride, pad, dilation, group = _conv_geometry(cp)
    blobs = randomise(layer)
    x = rand(*shape)
    (y,) = run(layer, x)
    expected = deconv_ref(x, blobs[0], blobs[1] if len(blobs) > 1 else None, stride, pad, dilation, group)
    assert layer.top_shapes == [expected.shape]
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_deconvolution_blob_and_top_shapes_of_the_thesis():
    # upsample: 2 ch, k3 s1 group 2: 25x35 -> 27x37; upsample-global: 3 ch, k2 s2 group 3: 27x37 -> 54x74
    up = make('name: "upsample" type: "Deconvolution" convolution_param { num_output: 2 kernel_size: 3 '
              'group: 2 bias_term: false weight_filler { type: "bilinear" } }', [(1, 2, 25, 35)])
    assert up.top_shapes == [(1, 2, 27, 37)] and [tuple(b.shape) for b in up.blobs] == [(2, 1, 3, 3)]
    glob = make('name: "upsample-global" type: "Deconvolution" convolution_param { num_output: 3 kernel_size: 2 '
                'stride: 2 group: 3 bias_term: false weight_filler { type: "bilinear" } }', [(1, 3, 27, 37)])
    assert glob.top_shapes == [(1, 3, 54, 74)] and [tuple(b.shape) for b in glob.blobs] == [(3, 1, 2, 2)]
    glob.fill(torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(glob.blobs[0].detach().numpy(), np.tile([[1, 0], [0, 0]], (3, 1, 1, 1)))
    glob.fill(torch.Generator().manual_seed(0), bilinear="2017")
    np.testing.assert_array_equal(glob.blobs[0].detach().numpy(), np.full((3, 1, 2, 2), 0.25))
    # with the 2016 k=2 kernel, every output pixel copies one input pixel (nearest-neighbour-like)
    glob.fill(torch.Generator().manual_seed(0))
    x = rand(1, 3, 27, 37)
    (y,) = run(glob, x)
    np.testing.assert_array_equal(y[:, :, ::2, ::2], x)
    assert np.all(y[:, :, 1::2, :] == 0) and np.all(y[:, :, :, 1::2] == 0)


def test_deconvolution_gradients():
    layer = make('name: "d" type: "Deconvolution" convolution_param { num_output: 2 kernel_size: 3 stride: 2 '
                 'pad: 1 group: 2 }', [(1, 2, 2, 3)])
    randomise(layer)
    gradcheck_layer(layer, rand(1, 2, 2, 3))


def test_deconvolution_negative_output_is_a_shape_error():
    with pytest.raises(ShapeError, match="deconv1"):
        make('name: "deconv1" type: "Deconvolution" convolution_param { num_output: 1 kernel_size: 1 pad: 2 }',
             [(1, 1, 2, 2)])


# ----------------------------------------------------------------------------- pooling
POOL_CASES = [
    # (method, pooling_param text after pool, input H, W, (kernel), (stride), (pad))
    ("kernel_size: 3 stride: 2 pad: 1", (7, 7), (3, 3), (2, 2), (1, 1)),       # ceil edge, in=7 k3 s2 p1
    ("kernel_size: 2 stride: 2 pad: 1", (6, 6), (2, 2), (2, 2), (1, 1)),       # in=6 k2 s2 p1
    ("kernel_size: 2 stride: 2 pad: 1", (5, 7), (2, 2), (2, 2), (1, 1)),       # last window dropped (5)
    ("kernel_size: 3 stride: 2 pad: 1", (6, 8), (3, 3), (2, 2), (1, 1)),       # window past in+pad (AVE /2)
    ("kernel_size: 3 stride: 2", (7, 8), (3, 3), (2, 2), (0, 0)),              # ceil without pad
    ("kernel_size: 4 stride: 2", (13, 16), (4, 4), (2, 2), (0, 0)),            # the thesis's 4x4/2 pool
    ("kernel_size: 3 stride: 3 pad: 2", (7, 5), (3, 3), (3, 3), (2, 2)),       # pad > kernel/2
    ("kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0", (6, 5), (3, 2), (2, 1), (1, 0)),
    ("kernel_h: 2 kernel_w: 3 stride_h: 3 stride_w: 2 pad_h: 0 pad_w: 1", (8, 6), (2, 3), (3, 2), (0, 1)),
    ("kernel_size: 1 stride: 3", (5, 4), (1, 1), (3, 3), (0, 0)),              # empty last window
    ("kernel_size: 5 stride: 2", (4, 5), (5, 5), (2, 2), (0, 0)),              # kernel > input: one window
]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("text, size, kernel, stride, pad", POOL_CASES)
def test_pooling_matches_reference(method, text, size, kernel, stride, pad):
    shape = (2, 3) + size
    layer = make(f'name: "p" type: "Pooling" pooling_param {{ pool: {method} {text} }}', [shape])
    x = rand(*shape, seed=size[0] * 10 + size[1])
    (y,) = run(layer, x)
    expected, _ = pool_ref(x, method, kernel, stride, pad)
    assert layer.top_shapes == [expected.shape]
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


MAX_PATHS = ["nchw", "channels_last", "requires_grad", "chunked"]


@pytest.mark.parametrize("path", MAX_PATHS)
@pytest.mark.parametrize("text, size, kernel, stride, pad", POOL_CASES + [
    ("kernel_size: 2 stride: 2 pad: 1", (106, 146), (2, 2), (2, 2), (1, 1)),     # pool1-refine's geometry
    ("kernel_size: 3 stride: 2 round_mode: FLOOR", (9, 8), (3, 3), (2, 2), (0, 0))])
def test_max_pooling_is_exact_in_every_layout_and_mode(path, text, size, kernel, stride, pad, monkeypatch):
    """The MAX forward runs differently by input: running maxima of strided views for NCHW tensors without a
    gradient (in chunks of samples for large batches), torch's kernel for channels-last tensors (in ceil
    mode where its sizes are Caffe's) and while a gradient is needed. Every one equals pooling_layer.cpp."""
    from eigen_depth.layers import vision
    shape = (3, 2) + size
    layer = make(f'name: "p" type: "Pooling" pooling_param {{ pool: MAX {text} }}', [shape])
    x = rand(*shape, seed=size[0] + 7 * size[1])
    expected, _ = pool_ref(x, "MAX", kernel, stride, pad, floor="FLOOR" in text)
    tensor = torch.from_numpy(x)
    if path == "channels_last":
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    elif path == "requires_grad":
        tensor.requires_grad_(True)
    elif path == "chunked":  # one sample per chunk
        monkeypatch.setattr(vision, "CHUNK_ELEMENTS", x[0].size)
    (y,) = layer(tensor)
    assert tuple(y.shape) == expected.shape
    np.testing.assert_array_equal(y.detach().numpy(), expected)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("size, k, s, p", [((7, 7), 3, 2, 1), ((8, 9), 2, 3, 0), ((6, 7), 3, 2, 1),
                                           ((10, 7), 4, 3, 2)])
def test_pooling_round_mode_floor(method, size, k, s, p):
    shape = (1, 2) + size
    layer = make(f'name: "p" type: "Pooling" pooling_param {{ pool: {method} kernel_size: {k} stride: {s} '
                 f'pad: {p} round_mode: FLOOR }}', [shape])
    x = rand(*shape, seed=3)
    (y,) = run(layer, x)
    expected, _ = pool_ref(x, method, (k, k), (s, s), (p, p), floor=True)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_pooling_ave_divisor_counts_padding_up_to_in_plus_pad():
    # in=6, k=3, s=2, p=1, ones: windows start at -1, 1, 3, 5; the first has 1 padded cell of 3 counted
    # (sum 2 / 3), the last reaches in+pad=7 and stops there (sum 1 / 2).
    layer = make('name: "p" type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }',
                 [(1, 1, 6, 6)])
    (y,) = run(layer, np.ones((1, 1, 6, 6), np.float32))
    row = np.array([2 / 3, 1, 1, 1 / 2])
    np.testing.assert_allclose(y[0, 0], np.outer(row, row), rtol=1e-6)


def test_pooling_output_sizes_follow_caffe():
    cases = [((7, 3, 2, 1), 4), ((6, 2, 2, 1), 4), ((5, 2, 2, 1), 3), ((13, 3, 2, 0), 6), ((106, 2, 2, 1), 54),
             ((146, 2, 2, 1), 74), ((52, 3, 2, 0), 26), ((72, 4, 2, 0), 35), ((27, 3, 2, 0), 13)]
    for (size, k, s, p), expected in cases:
        layer = make(f'name: "p" type: "Pooling" pooling_param {{ kernel_size: {k} stride: {s} pad: {p} }}',
                     [(1, 1, size, size)])
        assert layer.top_shapes == [(1, 1, expected, expected)], (size, k, s, p)


def test_pooling_padding_never_wins_the_max():
    layer = make('name: "p" type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }',
                 [(1, 1, 5, 5)])
    x = -np.arange(1, 26, dtype=np.float32).reshape(1, 1, 5, 5)
    (y,) = run(layer, x)
    assert np.all(y < 0)
    np.testing.assert_array_equal(y[0, 0], [[-1, -2, -4], [-6, -7, -9], [-16, -17, -19]])


def test_pooling_window_without_image_cells_gives_minus_flt_max():
    layer = make('name: "p" type: "Pooling" pooling_param { pool: MAX kernel_size: 1 stride: 3 }',
                 [(1, 1, 5, 5)])
    (y,) = run(layer, rand(1, 1, 5, 5))
    assert y.shape == (1, 1, 3, 3) and np.all(y[0, 0, 2, :] == -FLT_MAX)


def test_pooling_max_mask_top():
    layer = make('name: "p" type: "Pooling" top: "y" top: "mask" pooling_param { pool: MAX kernel_size: 3 '
                 'stride: 2 pad: 1 }', [(2, 2, 6, 7)])
    x = rand(2, 2, 6, 7, seed=4)
    y, mask = run(layer, x)
    expected, expected_mask = pool_ref(x, "MAX", (3, 3), (2, 2), (1, 1))
    assert layer.top_shapes == [expected.shape, expected.shape]
    np.testing.assert_allclose(y, expected)
    np.testing.assert_array_equal(mask, expected_mask)


def test_pooling_global():
    layer = make('name: "p" type: "Pooling" pooling_param { pool: AVE global_pooling: true }', [(2, 3, 4, 5)])
    x = rand(2, 3, 4, 5)
    (y,) = run(layer, x)
    assert layer.top_shapes == [(2, 3, 1, 1)]
    np.testing.assert_allclose(y[:, :, 0, 0], x.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    layer = make('name: "p" type: "Pooling" pooling_param { pool: MAX global_pooling: true }', [(2, 3, 4, 5)])
    np.testing.assert_array_equal(run(layer, x)[0][:, :, 0, 0], x.max(axis=(2, 3)))


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_pooling_gradients(method):
    for text, size in (("kernel_size: 3 stride: 2 pad: 1", (6, 7)), ("kernel_size: 2 stride: 2 pad: 1", (5, 6)),
                       ("kernel_size: 3 stride: 2 pad: 2", (5, 5))):
        layer = make(f'name: "p" type: "Pooling" pooling_param {{ pool: {method} {text} }}', [(1, 2) + size])
        gradcheck_layer(layer, rand(1, 2, *size, seed=7))


@pytest.mark.parametrize("text, fragment", [
    ("pool: STOCHASTIC kernel_size: 2", "not supported"),
    ("kernel_size: 2 pad: 2", "pad"),
    ("kernel_size: 2 kernel_h: 2 kernel_w: 2", "not both"),
    ("stride: 2", "kernel"),
    ("global_pooling: true kernel_size: 2", "global_pooling"),
    ("global_pooling: true stride: 2", "global_pooling"),
    ("kernel_size: 2 pad: 1 pad_h: 1 pad_w: 1", "pad"),
    ("pool: AVE kernel_size: 2", "mask"),
])
def test_pooling_parameter_errors(text, fragment):
    tops = 'top: "y" top: "mask"' if fragment == "mask" else 'top: "y"'
    with pytest.raises(LayerError, match=fragment) as info:
        make(f'name: "pool7" type: "Pooling" {tops} pooling_param {{ {text} }}', [(1, 1, 6, 6)])
    assert "pool7" in str(info.value)


def test_pooling_impossible_shape_is_a_shape_error():
    with pytest.raises(ShapeError, match="pool7"):
        make('name: "pool7" type: "Pooling" pooling_param { kernel_size: 5 }', [(1, 1, 1, 1)])
    with pytest.raises(ShapeError, match="pool7"):
        make('name: "pool7" type: "Pooling" pooling_param { kernel_size: 3 round_mode: FLOOR }', [(1, 1, 2, 2)])
    with pytest.raises(ShapeError, match="pool7"):
        make('name: "pool7" type: "Pooling" pooling_param { kernel_size: 3 }', [(1, 6, 6)])


# ----------------------------------------------------------------------------- LRN
@pytest.mark.parametrize("region", ["ACROSS_CHANNELS", "WITHIN_CHANNEL"])
@pytest.mark.parametrize("size, alpha, beta, k, shape", [
    (5, 1e-4, 0.75, 1.0, (2, 7, 5, 6)), (3, 0.5, 0.6, 2.0, (2, 4, 5, 6)), (1, 0.3, 1.0, 1.5, (2, 3, 5, 6)),
    (7, 2.0, 0.75, 1.0, (2, 3, 5, 6)), (5, 1.0, 0.75, 1.0, (1, 2, 2, 3))])
def test_lrn_matches_reference(region, size, alpha, beta, k, shape):
    layer = make(f'name: "norm1" type: "LRN" lrn_param {{ local_size: {size} alpha: {alpha} beta: {beta} k: {k} '
                 f'norm_region: {region} }}', [shape])
    x = 3 * rand(*shape)
    (y,) = run(layer, x)
    assert layer.top_shapes == [shape]
    np.testing.assert_allclose(y, lrn_ref(x, size, alpha, beta, k, region), rtol=1e-5, atol=1e-6)


def test_lrn_within_channel_divides_by_n_squared_at_the_borders():
    layer = make('name: "n" type: "LRN" lrn_param { local_size: 3 alpha: 9 beta: 1 norm_region: WITHIN_CHANNEL }',
                 [(1, 1, 3, 3)])
    (y,) = run(layer, np.ones((1, 1, 3, 3), np.float32))
    # corner: 4 ones in the 3x3 window, 1 + 9 * 4/9 = 5
    assert y[0, 0, 0, 0] == pytest.approx(1 / 5) and y[0, 0, 1, 1] == pytest.approx(1 / 10)


def test_lrn_defaults():
    layer = make('name: "n" type: "LRN"', [(1, 6, 2, 2)])
    x = rand(1, 6, 2, 2)
    np.testing.assert_allclose(run(layer, x)[0], lrn_ref(x, 5, 1.0, 0.75, 1.0, "ACROSS_CHANNELS"), rtol=1e-5)


@pytest.mark.parametrize("region", ["ACROSS_CHANNELS", "WITHIN_CHANNEL"])
def test_lrn_gradients(region):
    layer = make(f'name: "n" type: "LRN" lrn_param {{ local_size: 3 alpha: 0.5 beta: 0.75 k: 1.5 '
                 f'norm_region: {region} }}', [(1, 4, 3, 3)])
    gradcheck_layer(layer, rand(1, 4, 3, 3))


@pytest.mark.parametrize("training", [False, True])
def test_lrn_over_a_batch_in_chunks(monkeypatch, training):
    """A batch larger than a chunk runs a few samples at a time (here 2, 2 and 1 of 5), with and without
    gradients: the same values as the reference, and the same gradients as a finite-difference check."""
    from eigen_depth.layers import vision
    monkeypatch.setattr(vision, "CHUNK_ELEMENTS", 2 * 4 * 3 * 3)
    layer = make('name: "n" type: "LRN" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 1.5 }', [(5, 4, 3, 3)])
    x = 3 * rand(5, 4, 3, 3)
    bottom = torch.tensor(x, requires_grad=training)
    (y,) = layer(bottom)
    assert y.requires_grad == training
    np.testing.assert_allclose(y.detach().numpy(), lrn_ref(x, 3, 0.5, 0.75, 1.5, "ACROSS_CHANNELS"), rtol=1e-5)
    if training:
        gradcheck_layer(layer, x)


def test_lrn_even_local_size_is_an_error():
    with pytest.raises(LayerError, match="norm1.*odd"):
        make('name: "norm1" type: "LRN" lrn_param { local_size: 4 }', [(1, 6, 2, 2)])
