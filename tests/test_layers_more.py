"""The further BVLC layer types (ELU, BNLL, Threshold, Swish, Clip, PReLU, Tile, Reduction, Parameter, Embed)
against NumPy written from their Caffe definitions, with gradients checked numerically, and OpenCV's reader
where it has the layer."""
import cv2
import numpy as np
import pytest
import torch

from eigen_depth.caffe import parse_text, schema
from eigen_depth.errors import LayerError
from eigen_depth.net import CaffeNet

from layer_helpers import gradcheck_layer, make, rand, run


@pytest.mark.parametrize("text, reference", [
    ('type: "ELU" elu_param { alpha: 0.7 }', lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1))),
    ('type: "BNLL"', lambda x: np.where(x > 0, x + np.log1p(np.exp(-x)), np.log1p(np.exp(x)))),
    ('type: "Swish" swish_param { beta: 1.5 }', lambda x: x / (1 + np.exp(-1.5 * x))),
    ('type: "Clip" clip_param { min: -0.5 max: 0.8 }', lambda x: np.minimum(np.maximum(x, -0.5), 0.8)),
    ('type: "Threshold" threshold_param { threshold: 0.2 }', lambda x: (x > 0.2).astype(np.float32)),
])
def test_elementwise_layers_match_their_definitions(text, reference):
    x = rand(2, 3, 4, 5, seed=1) * 2
    layer = make(f'name: "l" {text}', [x.shape])
    np.testing.assert_allclose(run(layer, x)[0], reference(x.astype(np.float64)), rtol=1e-5, atol=1e-6)
    if "Threshold" not in text and "Clip" not in text:  # piecewise constant / kinked at the bounds
        gradcheck_layer(layer, x)


def test_prelu_learns_a_slope_per_channel_or_one_shared():
    x = rand(2, 3, 4, 4, seed=2)
    layer = make('name: "p" type: "PReLU"', [x.shape])
    layer.fill(torch.Generator().manual_seed(0))
    assert layer.blobs[0].detach().numpy().tolist() == [0.25, 0.25, 0.25]   # the default filler
    with torch.no_grad():
        layer.blobs[0].copy_(torch.tensor([0.1, -0.5, 2.0]))
    slope = np.array([0.1, -0.5, 2.0])[None, :, None, None]
    np.testing.assert_allclose(run(layer, x)[0], np.maximum(x, 0) + slope * np.minimum(x, 0), rtol=1e-6)
    gradcheck_layer(layer, x)
    shared = make('name: "p" type: "PReLU" prelu_param { channel_shared: true }', [x.shape])
    assert tuple(shared.blobs[0].shape) == (1,)


def test_tile_reduction_parameter_and_embed():
    x = rand(2, 3, 4, seed=3)
    tile = make('name: "t" type: "Tile" tile_param { axis: 1 tiles: 3 }', [x.shape])
    np.testing.assert_array_equal(run(tile, x)[0], np.tile(x, (1, 3, 1)))
    for operation, reference in (("SUM", lambda a: a.sum(-1)), ("ASUM", lambda a: np.abs(a).sum(-1)),
                                 ("SUMSQ", lambda a: (a * a).sum(-1)), ("MEAN", lambda a: a.mean(-1))):
        layer = make(f'name: "r" type: "Reduction" reduction_param {{ operation: {operation} axis: 1 coeff: 2 }}',
                     [x.shape])
        np.testing.assert_allclose(run(layer, x)[0], 2 * reference(x.reshape(2, -1)), rtol=1e-5)
        if operation != "ASUM":
            gradcheck_layer(layer, x)
    everything = make('name: "r" type: "Reduction"', [x.shape])
    assert run(everything, x)[0].shape == () and run(everything, x)[0] == pytest.approx(x.sum(), rel=1e-5)
    parameter = make('name: "w" type: "Parameter" parameter_param { shape { dim: 2 dim: 3 } }', [])
    with torch.no_grad():
        parameter.blobs[0].copy_(torch.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(run(parameter)[0], np.arange(6.0).reshape(2, 3))
    embed = make('name: "e" type: "Embed" embed_param { num_output: 4 input_dim: 5 }', [(2, 3)])
    table, bias = rand(5, 4, seed=4), rand(4, seed=5)
    with torch.no_grad():
        embed.blobs[0].copy_(torch.from_numpy(table))
        embed.blobs[1].copy_(torch.from_numpy(bias))
    index = np.array([[0, 4, 2], [1, 1, 3]], np.float32)
    np.testing.assert_allclose(run(embed, index)[0], table[index.astype(int)] + bias, rtol=1e-6)
    with pytest.raises(LayerError, match="outside 0..4"):
        run(embed, np.array([[5, 0, 0], [0, 0, 0]], np.float32))


def test_elu_bnll_and_prelu_give_opencvs_numbers(tmp_path):
    text = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 5 dim: 6 } } }
layer { name: "elu" type: "ELU" bottom: "x" top: "elu" elu_param { alpha: 0.5 } }
layer { name: "bnll" type: "BNLL" bottom: "elu" top: "bnll" }
layer { name: "prelu" type: "PReLU" bottom: "x" top: "prelu" prelu_param { filler { type: "gaussian" std: 1 } } }
layer { name: "sum" type: "Eltwise" bottom: "bnll" bottom: "prelu" top: "out" }
"""
    (tmp_path / "net.prototxt").write_text(text)
    net = CaffeNet(parse_text(schema.NetParameter, text), seed=2)
    net.save(str(tmp_path / "net.caffemodel"))
    x = rand(2, 3, 5, 6, seed=6) * 3
    opencv = cv2.dnn.readNetFromCaffe(str(tmp_path / "net.prototxt"), str(tmp_path / "net.caffemodel"))
    opencv.setInput(x)
    with torch.no_grad():
        np.testing.assert_allclose(net({"x": x})["out"].numpy(), opencv.forward(), rtol=1e-5, atol=1e-5)


def test_sigmoid_cross_entropy_multinomial_logistic_and_hinge_losses():
    x = rand(4, 3, seed=7) * 4
    targets = (np.random.default_rng(8).random((4, 3)) > 0.5).astype(np.float32)
    sigmoid = 1 / (1 + np.exp(-x.astype(np.float64)))
    layer = make('name: "s" type: "SigmoidCrossEntropyLoss"', [x.shape, targets.shape])
    expected = -np.sum(targets * np.log(sigmoid) + (1 - targets) * np.log(1 - sigmoid)) / 4   # BATCH_SIZE
    assert run(layer, x, targets)[0] == pytest.approx(expected, rel=1e-5)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    layer.double()(xt, torch.tensor(targets, dtype=torch.float64))[0].backward()
    np.testing.assert_allclose(xt.grad.numpy(), (sigmoid - targets) / 4, rtol=1e-6)   # Caffe's backward

    probs = np.array([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]], np.float32)
    labels = np.array([0, 0], np.float32)
    layer = make('name: "m" type: "MultinomialLogisticLoss"', [probs.shape, labels.shape])
    assert run(layer, probs, labels)[0] == pytest.approx(-(np.log(0.7) + np.log(1e-20)) / 2, rel=1e-5)
    pt = torch.tensor(probs, dtype=torch.float64, requires_grad=True)
    layer.double()(pt, torch.tensor(labels, dtype=torch.float64))[0].backward()
    assert pt.grad[0, 0].item() == pytest.approx(-1 / 0.7 / 2) and pt.grad[1, 0].item() == pytest.approx(-1e20 / 2)

    scores = np.array([[0.5, -2.0, 0.3], [-0.2, 0.9, 1.5]], np.float32)
    labels = np.array([0, 2], np.float32)
    margins = np.array([[0.5, 0.0, 1.3], [0.8, 1.9, 0.0]])
    for norm, expected in (("L1", margins.sum() / 2), ("L2", (margins ** 2).sum() / 2)):
        layer = make(f'name: "h" type: "HingeLoss" hinge_loss_param {{ norm: {norm} }}', [scores.shape, (2,)])
        assert run(layer, scores, labels)[0] == pytest.approx(expected, rel=1e-5)


def test_argmax_ranks_with_caffes_tie_rule_with_and_without_an_axis():
    x = np.array([[[3.0, 1.0, 3.0, 2.0]], [[0.0, 5.0, 4.0, 5.0]]], np.float32)   # (2, 1, 4)
    flat = make('name: "a" type: "ArgMax" argmax_param { top_k: 2 out_max_val: true }', [x.shape])
    # ties: the larger index first (3.0 at 2 before 3.0 at 0; 5.0 at 3 before 5.0 at 1)
    np.testing.assert_array_equal(run(flat, x)[0], [[[2, 0], [3, 3]], [[3, 1], [5, 5]]])
    along = make('name: "a" type: "ArgMax" argmax_param { axis: 2 }', [x.shape])
    np.testing.assert_array_equal(run(along, x)[0], [[[2]], [[3]]])
    with pytest.raises(LayerError, match="top_k"):
        make('name: "a" type: "ArgMax" argmax_param { top_k: 5 }', [x.shape])


def test_im2col_lays_out_patches_channel_major_and_batch_reindex_picks_samples():
    x = rand(2, 2, 5, 6, seed=9)
    layer = make('name: "i" type: "Im2col" convolution_param { kernel_size: 3 stride: 2 pad: 1 }', [x.shape])
    (columns,) = run(layer, x)
    assert columns.shape == (2, 18, 3, 3)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for c in range(2):
        for ky in range(3):
            for kx in range(3):   # Caffe's im2col row: (c * kh + ky) * kw + kx
                np.testing.assert_array_equal(columns[:, (c * 3 + ky) * 3 + kx],
                                              padded[:, c, ky:ky + 5:2, kx:kx + 5:2][:, :3, :3])
    data = rand(4, 3, seed=10)
    reindex = make('name: "b" type: "BatchReindex"', [data.shape, (5,)])
    order = np.array([3, 0, 0, 2, 1], np.float32)
    np.testing.assert_array_equal(run(reindex, data, order)[0], data[[3, 0, 0, 2, 1]])
