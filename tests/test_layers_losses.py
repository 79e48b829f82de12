"""EuclideanLoss against NumPy (euclidean_loss_layer.cpp: dot(a - b, a - b) / N / 2)."""
import numpy as np
import pytest
import torch

from eigen_depth.caffe import parse_text, schema
from eigen_depth.errors import LayerError, ShapeError
from eigen_depth.layers import layer_class

from layer_helpers import run


def make(text, bottom_shapes, phase=schema.TEST):
    param = parse_text(schema.LayerParameter, text)
    return layer_class(param.type)(param, bottom_shapes, phase)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape_a, shape_b", [((4, 1, 27, 37), (4, 1, 27, 37)), ((3, 2, 5), (3, 10)),
                                              ((1, 6), (1, 2, 3))])
def test_euclidean_loss_matches_reference(shape_a, shape_b):
    a, b = rand(*shape_a), rand(*shape_b, seed=1)
    layer = make('name: "loss" type: "EuclideanLoss" bottom: "depth" bottom: "gt" top: "loss"', [a.shape, b.shape])
    assert layer.top_shapes == [()] and layer.IS_LOSS
    (loss,) = layer(torch.from_numpy(a), torch.from_numpy(b))
    assert loss.shape == ()
    diff = a.reshape(a.shape[0], -1).astype(np.float64) - b.reshape(b.shape[0], -1)
    assert loss.item() == pytest.approx((diff ** 2).sum() / a.shape[0] / 2, rel=1e-6)


def test_euclidean_loss_gradients():
    layer = make('name: "loss" type: "EuclideanLoss"', [(2, 3), (2, 3)]).double()
    a = torch.tensor(rand(2, 3), dtype=torch.float64, requires_grad=True)
    b = torch.tensor(rand(2, 3, seed=1), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: layer(x, y)[0], (a, b))
    layer(a, b)[0].backward()
    torch.testing.assert_close(a.grad, (a - b).detach() / 2)  # Caffe: (a - b) / N
    torch.testing.assert_close(b.grad, (b - a).detach() / 2)


@pytest.mark.parametrize("shapes, error", [([(2, 3), (3, 3)], ShapeError), ([(2, 3), (2, 4)], ShapeError),
                                           ([(2, 3)], LayerError), ([(2, 3)] * 3, LayerError)])
def test_euclidean_loss_errors(shapes, error):
    with pytest.raises(error, match="loss-depth"):
        make('name: "loss-depth" type: "EuclideanLoss"', shapes)


# --------------------------------------------------------------------------- SoftmaxWithLoss, Accuracy
def softmax_loss_reference(x, labels, axis=1, ignore=None, mode="VALID"):
    """Caffe's softmax_loss_layer.cpp in NumPy, loop by loop."""
    x = x.astype(np.float64)
    outer, channels, inner = int(np.prod(x.shape[:axis])), x.shape[axis], int(np.prod(x.shape[axis + 1:]))
    scores = x.reshape(outer, channels, inner)
    label = labels.reshape(outer, inner).astype(int)
    loss, count = 0.0, 0
    for i in range(outer):
        for j in range(inner):
            if ignore is not None and label[i, j] == ignore:
                continue
            column = np.exp(scores[i, :, j] - scores[i, :, j].max())
            prob = column / column.sum()
            loss -= np.log(max(prob[label[i, j]], np.finfo(np.float32).tiny))
            count += 1
    normalizer = {"FULL": outer * inner, "VALID": count, "BATCH_SIZE": outer, "NONE": 1}[mode]
    return loss / max(1.0, normalizer)


@pytest.mark.parametrize("extra, shape, ignore, mode", [
    ("", (5, 13), None, "VALID"),
    ("loss_param { ignore_label: 2 }", (4, 3, 2, 3), 2, "VALID"),
    ("loss_param { normalization: FULL ignore_label: 0 }", (4, 3, 2, 3), 0, "FULL"),
    ("loss_param { normalize: false }", (4, 3, 5), None, "BATCH_SIZE"),
    ("softmax_param { axis: 2 } loss_param { normalization: NONE }", (2, 3, 4), None, "NONE"),
])
def test_softmax_with_loss_matches_caffes_definition(extra, shape, ignore, mode):
    axis = 2 if "axis: 2" in extra else 1
    x = rand(*shape, seed=3) * 3
    label_shape = shape[:axis] + shape[axis + 1:]
    labels = np.random.default_rng(4).integers(0, shape[axis], size=label_shape).astype(np.float32)
    layer = make(f'name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "loss" {extra}',
                 [x.shape, labels.shape])
    (loss,) = run(layer, x, labels)
    assert loss.shape == () and loss == pytest.approx(softmax_loss_reference(x, labels, axis, ignore, mode), rel=1e-5)
    # the gradient reaches the scores only: (softmax - onehot) / normaliser, checked numerically in float64
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda t: layer.double()(t, torch.tensor(labels, dtype=torch.float64))[0], (xt,))


def test_softmax_with_loss_second_top_is_the_softmax():
    x = rand(3, 4, seed=5)
    layer = make('name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "loss" top: "prob"',
                 [x.shape, (3,)])
    _, prob = run(layer, x, np.array([0, 1, 3], np.float32))
    expected = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(prob, expected / expected.sum(1, keepdims=True), rtol=1e-5)


def test_accuracy_counts_ties_against_the_label_and_skips_ignored_ones():
    scores = np.array([[0.1, 0.7, 0.2],     # label 1: top-1 right
                       [0.5, 0.5, 0.0],     # label 1: tied with class 0, so not in the top 1 (Caffe: >=)
                       [0.6, 0.3, 0.1],     # label 2: wrong at top 1, wrong at top 2
                       [0.2, 0.3, 0.5]],    # label 0: ignored
                      np.float32)
    labels = np.array([1, 1, 2, 0], np.float32)
    top1 = make('name: "a" type: "Accuracy" bottom: "s" bottom: "l" top: "acc" top: "per_class" '
                'accuracy_param { ignore_label: 0 }', [scores.shape, labels.shape])
    accuracy, per_class = run(top1, scores, labels)
    assert accuracy == pytest.approx(1 / 3) and per_class.tolist() == pytest.approx([0.0, 0.5, 0.0])
    top2 = make('name: "a" type: "Accuracy" bottom: "s" bottom: "l" top: "acc" accuracy_param { top_k: 2 }',
                [scores.shape, labels.shape])
    # rows 1 and 2 are right at top 2; row 3 (label 2, score 0.1) and row 4 (label 0, score 0.2) are not
    assert run(top2, scores, labels)[0] == pytest.approx(2 / 4)


def test_softmax_with_loss_keeps_caffes_gradient_where_the_probability_underflows():
    # scores far apart: p(label) underflows float32, the loss is -log(FLT_MIN) and Caffe's gradient is still
    # (softmax - onehot) / N: -1 at the label, +1 at the winning class
    x = np.array([[0.0, 200.0, 0.0]], np.float32)
    layer = make('name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "loss"', [x.shape, (1,)])
    xt = torch.tensor(x, requires_grad=True)
    (loss,) = layer(xt, torch.tensor([0.0]))
    loss.backward()
    assert float(loss) == pytest.approx(-np.log(np.finfo(np.float32).tiny), rel=1e-6)
    np.testing.assert_allclose(xt.grad.numpy(), [[-1.0, 1.0, 0.0]], atol=1e-6)
