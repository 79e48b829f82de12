"""Element-wise layers (ReLU, Dropout, Power, Log, Exp, AbsVal, Sigmoid, TanH) and Softmax against NumPy
written from Caffe's definitions, plus gradients and errors."""
import numpy as np
import pytest
import torch

from eigen_depth.caffe import schema
from eigen_depth.errors import LayerError

from layer_helpers import make, rand, run


def gradcheck(layer, x):
    layer = layer.double()
    x = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: layer(t)[0], (x,), eps=1e-6, atol=1e-5)


X = rand(2, 3, 4, 5)
POSITIVE = np.abs(X) + 0.5


@pytest.mark.parametrize("text, x, reference", [
    ('type: "ReLU"', X, lambda x: np.maximum(x, 0)),
    ('type: "ReLU" relu_param { negative_slope: 0.1 }', X, lambda x: np.where(x > 0, x, 0.1 * x)),
    ('type: "AbsVal"', X, np.abs),
    ('type: "Sigmoid"', X, lambda x: 1 / (1 + np.exp(-x))),
    ('type: "TanH"', X, np.tanh),
    ('type: "Power"', X, lambda x: x),
    ('type: "Power" power_param { scale: 0.01 }', X, lambda x: 0.01 * x),
    ('type: "Power" power_param { scale: 0.179581 shift: 1 }', X, lambda x: 1 + 0.179581 * x),
    ('type: "Power" power_param { power: 2 scale: -0.5 shift: 1 }', X, lambda x: (1 - 0.5 * x) ** 2),
    ('type: "Power" power_param { power: 0.5 scale: 2 shift: 0.1 }', POSITIVE, lambda x: (0.1 + 2 * x) ** 0.5),
    ('type: "Power" power_param { power: -1.5 }', POSITIVE, lambda x: x ** -1.5),
    ('type: "Power" power_param { power: 0 scale: 3 }', X, lambda x: np.ones_like(x)),
    ('type: "Power" power_param { power: 3 scale: 0 shift: 2 }', X, lambda x: np.full_like(x, 8)),
    ('type: "Log"', POSITIVE, np.log),
    ('type: "Log" log_param { scale: 0.996078431 shift: 0.00392156863 }', POSITIVE,
     lambda x: np.log(0.00392156863 + 0.996078431 * x)),
    ('type: "Log" log_param { base: 10 scale: 2 shift: 1 }', POSITIVE, lambda x: np.log10(1 + 2 * x)),
    ('type: "Log" log_param { base: 2 }', POSITIVE, np.log2),
    ('type: "Exp"', X, np.exp),
    ('type: "Exp" exp_param { base: 2 scale: 0.5 shift: -1 }', X, lambda x: 2.0 ** (-1 + 0.5 * x)),
    ('type: "Exp" exp_param { scale: -1 shift: 0.5 }', X, lambda x: np.exp(0.5 - x)),
    ('type: "Exp" exp_param { base: 10 }', X, lambda x: 10.0 ** x),
])
def test_elementwise_matches_reference(text, x, reference):
    layer = make(f'name: "act" {text}', [x.shape])
    (y,) = run(layer, x)
    assert layer.top_shapes == [x.shape] and y.dtype == np.float32
    np.testing.assert_allclose(y, reference(x.astype(np.float64)), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("text, positive", [
    ('type: "ReLU" relu_param { negative_slope: 0.2 }', False), ('type: "AbsVal"', False),
    ('type: "Sigmoid"', False), ('type: "TanH"', False), ('type: "Power" power_param { power: 2 shift: 1 }', False),
    ('type: "Power" power_param { power: 0.75 scale: 2 shift: 0.5 }', True),
    ('type: "Log" log_param { base: 3 scale: 2 shift: 0.5 }', True),
    ('type: "Exp" exp_param { base: 2 scale: 0.5 shift: 1 }', False),
    ('type: "Softmax"', False), ('type: "Softmax" softmax_param { axis: -1 }', False),
])
def test_elementwise_gradients(text, positive):
    x = rand(2, 3, 2, 2, seed=3)
    x = np.abs(x) + 0.5 if positive else x + np.sign(x) * 0.05  # keep away from kinks
    gradcheck(make(f'name: "act" {text}', [x.shape]), x)


def test_power_constant_case_has_zero_gradient():
    layer = make('name: "p" type: "Power" power_param { power: 2 scale: 0 shift: 3 }', [(3,)])
    x = torch.ones(3, requires_grad=True)
    y = layer(x)[0]
    assert torch.all(y == 9) and not y.requires_grad


@pytest.mark.parametrize("text", ['log_param { base: 0 }', 'log_param { base: -2 }', 'log_param { base: 1 }'])
def test_log_base_errors(text):
    with pytest.raises(LayerError, match="logGT.*base"):
        make(f'name: "logGT" type: "Log" {text}', [(2, 3)])


def test_exp_base_must_be_positive():
    with pytest.raises(LayerError, match="ex.*base"):
        make('name: "ex" type: "Exp" exp_param { base: -3 }', [(2, 3)])


@pytest.mark.parametrize("axis", [1, 0, 2, -1])
def test_softmax(axis):
    x = 5 * rand(2, 3, 4)
    layer = make(f'name: "sm" type: "Softmax" softmax_param {{ axis: {axis} }}', [x.shape])
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    np.testing.assert_allclose(run(layer, x)[0], e / e.sum(axis=axis, keepdims=True), rtol=1e-5, atol=1e-7)


def test_softmax_axis_out_of_range():
    with pytest.raises(Exception, match="sm.*axis"):
        make('name: "sm" type: "Softmax" softmax_param { axis: 3 }', [(2, 3, 4)])


def test_dropout_test_phase_is_identity():
    layer = make('name: "drop" type: "Dropout" dropout_param { dropout_ratio: 0.5 }', [(4, 5)], schema.TEST)
    x = torch.randn(4, 5)
    assert layer(x)[0] is x


@pytest.mark.parametrize("ratio", [0.5, 0.2])
def test_dropout_train_phase_masks_and_rescales(ratio):
    layer = make(f'name: "drop" type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}', [(200, 500)],
                 schema.TRAIN)
    torch.manual_seed(0)
    x = torch.rand(200, 500) + 1
    y = layer(x)[0]
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - ratio)) < 0.01
    torch.testing.assert_close(y[kept], x[kept] / (1 - ratio))
    xg = x.clone().requires_grad_(True)
    torch.manual_seed(1)
    y = layer(xg)[0]
    y.sum().backward()
    torch.testing.assert_close(xg.grad, (y != 0).float() / (1 - ratio))


def test_dropout_ratio_must_be_below_one():
    with pytest.raises(LayerError, match="drop6"):
        make('name: "drop6" type: "Dropout" dropout_param { dropout_ratio: 1 }', [(2, 3)], schema.TRAIN)


def test_wrong_number_of_bottoms_names_the_layer():
    with pytest.raises(LayerError, match="relu3.*bottom"):
        make('name: "relu3" type: "ReLU"', [(1, 2), (1, 2)])
    with pytest.raises(LayerError, match="sig.*top"):
        make('name: "sig" type: "Sigmoid" top: "a" top: "b"', [(1, 2)])


def test_layers_run_in_float64():
    for text in ('type: "Power" power_param { scale: 2 }', 'type: "Log"', 'type: "Exp"', 'type: "Softmax"'):
        layer = make(f'name: "act" {text}', [(2, 3)]).double()
        assert layer(torch.ones(2, 3, dtype=torch.float64))[0].dtype == torch.float64
