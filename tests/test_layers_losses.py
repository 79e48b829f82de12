"""EuclideanLoss against NumPy (euclidean_loss_layer.cpp: dot(a - b, a - b) / N / 2)."""
import numpy as np
import pytest
import torch

from eigen_depth.caffe import parse_text, schema
from eigen_depth.errors import LayerError, ShapeError
from eigen_depth.layers import layer_class


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
