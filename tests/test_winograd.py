"""Winograd's algorithm for 3x3 and 5x5 convolutions (eigen_depth.winograd): its matrices against the definition
of a correlation, its convolutions against a float64 NumPy convolution written from Caffe's definition, the
layer's use of it (only where no gradient is wanted; new weights seen), and a net computed this way against
OpenCV's Caffe reader."""
import numpy as np
import pytest
import torch

from eigen_depth import layout, winograd


def correlate_1d(d, g):
    """The correlation computed by hand: y[i] = sum_k g[k] d[i + k]."""
    return np.array([sum(g[k] * d[i + k] for k in range(len(g))) for i in range(len(d) - len(g) + 1)])


def convolve_reference(x, w, b, pad, groups):
    """Caffe's convolution of stride 1 in float64, from its definition: zero padding, then for each output
    channel the sum over its group's input channels and the kernel's offsets."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, c, h, width = x.shape
    k_out, c_group, r, s = w.shape
    padded = np.zeros((n, c, h + 2 * pad[0], width + 2 * pad[1]))
    padded[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + width] = x
    out_h, out_w = padded.shape[2] - r + 1, padded.shape[3] - s + 1
    out = np.zeros((n, k_out, out_h, out_w))
    k_group = k_out // groups
    for k in range(k_out):
        first = (k // k_group) * c_group
        for i in range(r):
            for j in range(s):
                window = padded[:, first:first + c_group, i:i + out_h, j:j + out_w]
                out[:, k] += np.einsum("nchw,c->nhw", window, w[k, :, i, j])
        if b is not None:
            out[:, k] += b[k]
    return out


@pytest.mark.parametrize("kernel", sorted(winograd.TILES))
def test_the_matrices_compute_the_correlation_of_every_tile(kernel):
    m, points = winograd.TILES[kernel]
    a_t, g, b_t = winograd.transforms(m, kernel, points)
    assert a_t.shape == (m, m + kernel - 1) and g.shape == (m + kernel - 1, kernel)
    rng = np.random.default_rng(kernel)
    for _ in range(5):
        d, filt = rng.normal(size=m + kernel - 1), rng.normal(size=kernel)
        np.testing.assert_allclose(a_t @ ((g @ filt) * (b_t @ d)), correlate_1d(d, filt), rtol=0, atol=1e-12)
    # every entry of the input's transform is at most 1 in magnitude (the scaling the module describes)
    assert np.abs(b_t).max(axis=1) == pytest.approx(np.ones(m + kernel - 1))


def test_lavins_f23_is_the_same_algorithm():
    """F(2, 3) from the points 0, 1, -1 against the matrices printed in Lavin and Gray (2016), which differ
    only in how each product's factor is split between G and B^T: the three-way products agree."""
    a_t, g, b_t = winograd.transforms(2, 3, (0.0, 1.0, -1.0))
    lavin_b_t = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float)
    lavin_g = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    lavin_a_t = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float)
    ours = np.einsum("ij,jk,jn->ikn", a_t, g, b_t)
    theirs = np.einsum("ij,jk,jn->ikn", lavin_a_t, lavin_g, lavin_b_t)
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


@pytest.mark.parametrize("points", [(0.0, 1.0), (0.0, 1.0, 1.0)])
def test_the_wrong_number_of_points_or_a_repeated_one_is_refused(points):
    with pytest.raises(ValueError, match="distinct finite points"):
        winograd.transforms(2, 3, points)


CASES = [  # (batch, in, out, kernel, height, width, groups, pad)
    (2, 6, 8, 3, 7, 9, 1, (1, 1)),
    (1, 16, 12, 5, 13, 11, 1, (2, 2)),
    (3, 8, 6, 5, 5, 13, 2, (0, 3)),       # no rows of padding, 3 columns: a 1 x 13 output
    (1, 4, 4, 3, 1, 1, 2, (2, 2)),        # one input pixel: the output is all padding's
    (2, 12, 9, 3, 10, 6, 3, (0, 1)),
]


@pytest.mark.parametrize("case", CASES)
def test_the_convolution_matches_the_definition(case):
    n, c, k, r, h, w, groups, pad = case
    rng = np.random.default_rng(sum(case[:7]))
    x = rng.uniform(-2, 2, (n, c, h, w)).astype(np.float32)
    weights = rng.normal(0, 0.3, (k, c // groups, r, r)).astype(np.float32)
    bias = rng.normal(0, 1, k).astype(np.float32)
    expected = convolve_reference(x, weights, bias, pad, groups)
    filters = winograd.Filters(torch.from_numpy(weights), groups)
    got = winograd.conv2d(torch.from_numpy(x), filters, torch.from_numpy(bias), pad).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_filters_and_batches_made_in_several_parts_and_channels_last_inputs(monkeypatch):
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (5, 8, 9, 10)).astype(np.float32)
    weights = rng.normal(0, 0.3, (6, 4, 5, 5)).astype(np.float32)
    expected = convolve_reference(x, weights, None, (2, 2), 2)
    monkeypatch.setattr(winograd, "FILTER_CHUNK_VALUES", 1)  # one output channel at a time
    filters = winograd.Filters(torch.from_numpy(weights), 2)
    monkeypatch.setattr(winograd, "CHUNK_VALUES", 1)  # one image at a time
    for tensor in (torch.from_numpy(x), torch.from_numpy(x).contiguous(memory_format=torch.channels_last)):
        got = winograd.conv2d(tensor, filters, None, (2, 2)).numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("kernel, stride, dilation, pad, expected", [
    ((3, 3), (1, 1), (1, 1), (1, 1), True), ((5, 5), (1, 1), (1, 1), (4, 0), True),
    ((3, 3), (2, 2), (1, 1), (1, 1), False), ((3, 3), (1, 1), (2, 2), (2, 2), False),
    ((3, 5), (1, 1), (1, 1), (1, 2), False), ((7, 7), (1, 1), (1, 1), (3, 3), False),
    ((1, 1), (1, 1), (1, 1), (0, 0), False), ((3, 3), (1, 1), (1, 1), (3, 3), False),
])
def test_which_convolutions_it_computes(kernel, stride, dilation, pad, expected):
    assert winograd.eligible(kernel, stride, dilation, pad) is expected


NET = """name: "w"
layer { name: "x" type: "Input" top: "X" input_param { shape { dim: 2 dim: 4 dim: 11 dim: 13 } } }
layer { name: "c1" type: "Convolution" bottom: "X" top: "c1" convolution_param { num_output: 6 kernel_size: 5 pad: 2 } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 group: 2 } }
layer { name: "c3" type: "Convolution" bottom: "c2" top: "out"
        convolution_param { num_output: 3 kernel_size: 3 stride: 2 } }
"""


def build(tmp_path=None):
    from eigen_depth.caffe import parse_text, schema
    from eigen_depth.net import CaffeNet
    from eigen_depth.testing import random_weights, write_random_caffemodel
    if tmp_path is None:
        return random_weights(CaffeNet(parse_text(schema.NetParameter, NET), phase="TEST"), seed=2).eval()
    prototxt, caffemodel = tmp_path / "w.prototxt", tmp_path / "w.caffemodel"
    prototxt.write_text(NET)
    return write_random_caffemodel(str(prototxt), str(caffemodel), seed=2).eval(), prototxt, caffemodel


def test_the_layout_puts_only_the_convolutions_it_computes_in_winograd():
    net = build()
    layout.apply(net, "winograd")
    assert {layer.name: layer.winograd for layer in layout.convolutions(net)} == {"c1": True, "c2": True,
                                                                                   "c3": False}
    assert layout.described(net, {"c1": "winograd", "c2": "nhwc", "c3": "winograd"}) == \
        {"c1": "winograd", "c2": "nhwc", "c3": "nchw"}
    layout.apply(net, "nchw")
    assert not any(layer.winograd or layer._filters for layer in layout.convolutions(net))


def test_a_net_computed_by_winograd_gives_opencvs_numbers(tmp_path):
    import cv2
    net, prototxt, caffemodel = build(tmp_path)
    x = np.random.default_rng(3).uniform(-50, 50, (2, 4, 11, 13)).astype(np.float32)
    reference = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    reference.setInput(x)
    expected = reference.forward()
    for chosen in ("winograd", {"c1": "winograd", "c2": "nhwc", "c3": "nchw"}):
        layout.apply(net, chosen)
        with torch.no_grad():
            got = net({"X": torch.from_numpy(x)})["out"].numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_it_is_not_used_where_a_gradient_is_wanted_and_sees_new_weights():
    import torch.nn.functional as F
    net = build()
    layout.apply(net, "winograd")
    layer = net.layers[1]
    x = torch.from_numpy(np.random.default_rng(4).uniform(-1, 1, (2, 4, 11, 13)).astype(np.float32))
    direct = F.conv2d(x, layer.blobs[0], layer.blobs[1], padding=2)
    # with a gradient wanted: torch's own convolution, bit for bit, and its gradient
    wanted = x.clone().requires_grad_(True)
    (top,) = layer(wanted)
    assert torch.equal(top, direct)
    top.sum().backward()
    assert wanted.grad is not None
    with torch.no_grad():
        (fast,) = layer(x)
        assert not torch.equal(fast, direct)       # another order of sums: this path ran
        torch.testing.assert_close(fast, direct, rtol=0, atol=1e-5 * direct.abs().max().item())
        layer.blobs[0].mul_(2)                     # in place: a new version
        (twice,) = layer(x)
        torch.testing.assert_close(twice - layer.blobs[1].view(1, -1, 1, 1),
                                   2 * (direct - layer.blobs[1].view(1, -1, 1, 1)),
                                   rtol=0, atol=2e-5 * direct.abs().max().item())
        layer.blobs[0].data = torch.zeros_like(layer.blobs[0])  # a new tensor
        (zero,) = layer(x)
        assert torch.equal(zero, layer.blobs[1].view(1, -1, 1, 1).expand_as(zero))


TRAINING_NET = """name: "frozen"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 12 dim: 14 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 2 dim: 1 dim: 12 dim: 14 } } }
layer { name: "wide" type: "Convolution" bottom: "x" top: "wide" param { lr_mult: 0 } param { lr_mult: 0 }
        convolution_param { num_output: 64 kernel_size: 5 pad: 2 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "wide-relu" type: "ReLU" bottom: "wide" top: "wide" }
layer { name: "frozen" type: "Convolution" bottom: "wide" top: "frozen" param { lr_mult: 0 } param { lr_mult: 0 }
        convolution_param { num_output: 64 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.05 } } }
layer { name: "narrow" type: "Convolution" bottom: "frozen" top: "narrow" param { lr_mult: 0 } param { lr_mult: 0 }
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.05 } } }
layer { name: "learns" type: "Convolution" bottom: "narrow" top: "p"
        convolution_param { num_output: 1 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "loss" }
"""


class Rooms:
    """Batch k drawn from seed k."""

    def __init__(self):
        self.position = 0

    def __call__(self):
        rng = np.random.default_rng(50 + self.position)
        self.position += 1
        x = rng.uniform(-1, 1, (2, 3, 12, 14)).astype(np.float32)
        return {"x": x, "y": x[:, :1] * 2 + 1}


def test_a_solver_runs_its_frozen_convolutions_of_enough_channels_by_winograd_with_todays_numbers():
    """'wide' (3 input channels) and 'narrow' (8 outputs) are below the 64 channels; 'learns' needs a gradient;
    only 'frozen' runs by Winograd's algorithm. Three SGD steps: the losses and the learnt weights within 1e-5
    of the same run computed directly."""
    from eigen_depth.caffe import parse_text, schema
    from eigen_depth.solver import Solver
    param = parse_text(schema.SolverParameter, f'net_param {{ {TRAINING_NET} }} base_lr: 0.01 momentum: 0.9 '
                                               f'lr_policy: "fixed" max_iter: 10 display: 0 random_seed: 4 '
                                               f'snapshot_after_train: false')
    runs = {}
    for use in (True, False):
        solver = Solver(param, feeder=Rooms(), winograd=use)
        assert solver.winograd_layers == (["frozen"] if use else [])
        losses = []
        for _ in range(3):
            solver.step(1)
            losses.append(solver.smoothed_loss)
        runs[use] = losses, solver.net.layer_by_name("learns").blobs[0].detach().clone()
    np.testing.assert_allclose(runs[True][0], runs[False][0], rtol=1e-5)
    direct = runs[False][1]
    torch.testing.assert_close(runs[True][1], direct, rtol=0, atol=1e-5 * direct.abs().max().item())
    assert not torch.equal(runs[True][1], direct)  # the frozen layer did run another way


def test_pycaffes_solvers_compute_directly(tmp_path):
    """pycaffe's arrays are written without torch seeing it (net surgery between steps), so its solvers keep
    Winograd's algorithm out."""
    from eigen_depth import pycaffe
    (tmp_path / "net.prototxt").write_text(TRAINING_NET)
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt" base_lr: 0.01 lr_policy: "fixed" max_iter: 2 '
                                              'display: 0 snapshot_after_train: false')
    solver = pycaffe.SGDSolver(str(tmp_path / "solver.prototxt"))
    assert solver._solver.winograd_layers == []
    assert not any(getattr(layer, "winograd", False) for layer in solver._solver.net.layers)
