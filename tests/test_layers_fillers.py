"""Caffe's fillers (filler.hpp): values, statistics, the two bilinear formulas, determinism and errors."""
import math

import numpy as np
import pytest
import torch

from eigen_depth.caffe import parse_text, schema
from eigen_depth.errors import LayerError
from eigen_depth.layers import bilinear_kernel, fill, layer_class


def filler(text):
    return parse_text(schema.FillerParameter, text)


def filled(shape, text, seed=0, **options):
    return fill(torch.zeros(shape), filler(text), torch.Generator().manual_seed(seed), **options).numpy()


def test_constant_and_default():
    assert np.all(filled((3, 4), "") == 0)
    assert np.all(filled((3, 4), 'type: "constant" value: 0.1') == np.float32(0.1))


def test_uniform_statistics():
    w = filled((200, 500), 'type: "uniform" min: -2 max: 3')
    assert w.min() >= -2 and w.max() < 3
    assert w.mean() == pytest.approx(0.5, abs=0.02) and w.var() == pytest.approx(25 / 12, rel=0.02)
    assert np.all(filled((10, 10), 'type: "uniform"') >= 0)  # default [0, 1)


def test_gaussian_statistics():
    w = filled((200, 500), 'type: "gaussian" mean: 0.5 std: 0.01')
    assert w.mean() == pytest.approx(0.5, abs=1e-4) and w.std() == pytest.approx(0.01, rel=0.01)


def test_gaussian_sparse_keeps_sparse_over_num_outputs():
    w = filled((100, 400), 'type: "gaussian" std: 1 sparse: 25')
    assert (w != 0).mean() == pytest.approx(0.25, abs=0.01)


# shape (32, 3, 5, 5): fan_in = count / shape[0] = 75, fan_out = count / shape[1] = 800
@pytest.mark.parametrize("norm, n", [("", 75), ("variance_norm: FAN_IN", 75), ("variance_norm: FAN_OUT", 800),
                                     ("variance_norm: AVERAGE", (75 + 800) / 2)])
def test_xavier_and_msra_use_caffes_fans(norm, n):
    shape = (32, 3, 5, 5)
    w = filled(shape, f'type: "xavier" {norm}')
    limit = math.sqrt(3 / n)
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit
    assert w.var() == pytest.approx(limit ** 2 / 3, rel=0.1)
    w = filled(shape, f'type: "msra" {norm}')
    assert w.std() == pytest.approx(math.sqrt(2 / n), rel=0.05) and abs(w.mean()) < 0.01


def test_xavier_on_an_inner_product_weight():
    w = filled((1024, 59904 // 64), 'type: "xavier"')
    assert np.abs(w).max() <= math.sqrt(3 / 936)


def test_positive_unitball_rows_sum_to_one():
    w = filled((5, 2, 3, 3), 'type: "positive_unitball"')
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.reshape(5, -1).sum(axis=1), 1, rtol=1e-6)


def test_bilinear_2016_is_the_default():
    np.testing.assert_array_equal(filled((1, 1, 2, 2), 'type: "bilinear"')[0, 0], [[1, 0], [0, 0]])
    np.testing.assert_allclose(filled((2, 1, 3, 3), 'type: "bilinear"'),
                               np.broadcast_to(np.outer([.25, .75, .75], [.25, .75, .75]), (2, 1, 3, 3)))


def test_bilinear_2017():
    np.testing.assert_array_equal(filled((1, 1, 2, 2), 'type: "bilinear"', bilinear="2017")[0, 0], np.full((2, 2), .25))
    np.testing.assert_allclose(filled((1, 3, 3, 3), 'type: "bilinear"', bilinear="2017")[0, 2],
                               np.outer([.5, 1, .5], [.5, 1, .5]))


def test_bilinear_formula_for_larger_kernels():
    for k in (4, 5, 6):
        f = math.ceil(k / 2)
        for version, c in (("2016", (2 * f - 1 - f % 2) / (2 * f)), ("2017", (k - 1) / (2 * f))):
            w1 = 1 - np.abs(np.arange(k) / f - c)
            np.testing.assert_allclose(bilinear_kernel((1, 1, k, k), version)[0, 0], np.outer(w1, w1), atol=1e-7)


@pytest.mark.parametrize("shape", [(1, 3, 3), (1, 1, 2, 3)])
def test_bilinear_needs_square_4d_blobs(shape):
    with pytest.raises(LayerError, match="bilinear"):
        filled(shape, 'type: "bilinear"')


def test_same_seed_same_weights_and_dtype_follows_the_tensor():
    a = filled((4, 5), 'type: "gaussian"', seed=3)
    np.testing.assert_array_equal(a, filled((4, 5), 'type: "gaussian"', seed=3))
    assert not np.array_equal(a, filled((4, 5), 'type: "gaussian"', seed=4))
    t = fill(torch.zeros(3, dtype=torch.float64), filler('type: "constant" value: 0.1'), None)
    assert t.dtype == torch.float64 and t[0].item() == pytest.approx(0.1)


@pytest.mark.parametrize("text", ['type: "nope"', 'type: "constant" sparse: 2', 'type: "uniform" min: 2 max: 1',
                                  'type: "gaussian" std: 0', 'type: "gaussian" sparse: 7'])
def test_filler_errors(text):
    with pytest.raises(LayerError):
        filled((5, 4), text)


def test_layer_fill_errors_name_the_layer():
    param = parse_text(schema.LayerParameter, 'name: "fc9" type: "InnerProduct" inner_product_param { num_output: 2 '
                                              'weight_filler { type: "bilinear" } }')
    layer = layer_class(param.type)(param, [(1, 3)])
    with pytest.raises(LayerError, match="fc9.*bilinear"):
        layer.fill(torch.Generator().manual_seed(0))
