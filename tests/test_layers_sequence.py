"""ContrastiveLoss, InfogainLoss, SPP, Filter and the recurrent layers (RNN, LSTM, LSTMUnit) against NumPy
references written here from BVLC Caffe's definitions (docs/caffe_format.md lists the parameters); gradients
against Caffe's analytic formulas or, where those are the exact derivative, against finite differences."""
import math

import numpy as np
import pytest
import torch
from torch.func import functional_call

from eigen_depth.caffe import write_binaryproto
from eigen_depth.errors import ShapeError

from layer_helpers import gradcheck_layer, make, rand, run


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def grads(layer, arrays, wrt):
    """d(sum of top 0) / d(arrays[i]) for i in wrt, through the layer in float32."""
    tensors = [torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    layer(*tensors)[0].sum().backward()
    return [tensors[i].grad.numpy() for i in wrt]


# -------------------------------------------------------------------------------------- ContrastiveLoss
def contrastive_reference(a, b, y, margin, legacy):
    """Caffe's forward value and backward (d loss / d a; d loss / d b is its negative)."""
    n = a.shape[0]
    diff = (a - b).reshape(n, -1).astype(np.float64)
    dist_sq = (diff ** 2).sum(1)
    dist = np.sqrt(dist_sq)
    loss, grad = 0.0, np.zeros_like(diff)
    for i in range(n):
        if int(y[i]) != 0:
            loss += dist_sq[i]
            grad[i] = diff[i] / n
        elif legacy:
            loss += max(margin - dist_sq[i], 0)
            grad[i] = -diff[i] / n if margin - dist_sq[i] > 0 else 0
        else:
            loss += max(margin - dist[i], 0) ** 2
            mdist = margin - dist[i]
            grad[i] = -mdist / (dist[i] + 1e-4) * diff[i] / n if mdist > 0 else 0
    return loss / n / 2, grad.reshape(a.shape)


@pytest.mark.parametrize("legacy", [False, True])
def test_contrastive_loss_matches_caffes_value_and_gradient(legacy):
    a, b = rand(6, 4, 1, 1, seed=1) * 0.5, rand(6, 4, 1, 1, seed=2) * 0.5
    y = np.array([1, 0, 0.7, 2, 0, 0], np.float32).reshape(6, 1, 1, 1)  # 0.7 truncates to 0: dissimilar
    text = f'name: "c" type: "ContrastiveLoss" contrastive_loss_param {{ margin: 1.5 legacy_version: {str(legacy).lower()} }}'
    layer = make(text, [a.shape, b.shape, y.shape])
    expected, grad_a = contrastive_reference(a, b, y.ravel(), 1.5, legacy)
    assert run(layer, a, b, y)[0] == pytest.approx(expected, rel=1e-5)
    got_a, got_b = grads(layer, [a, b, y], [0, 1])
    np.testing.assert_allclose(got_a, grad_a, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got_b, -grad_a, rtol=1e-4, atol=1e-7)


def test_contrastive_loss_refuses_pairs_that_are_not_vectors():
    with pytest.raises(ShapeError, match="N x C x 1 x 1"):
        make('name: "c" type: "ContrastiveLoss"', [(2, 3, 2, 1), (2, 3, 2, 1), (2, 1, 1, 1)])


# ----------------------------------------------------------------------------------------- InfogainLoss
def test_infogain_loss_with_h_as_a_bottom_matches_caffes_value_and_gradient():
    k = 4
    scores = rand(3, k, 2, seed=3)                               # outer 3, classes 4, inner 2
    labels = np.array([[0, 3], [2, 9], [1, 1]], np.float32)      # 9 is ignored
    H = np.abs(rand(k, k, seed=4)).astype(np.float32)
    layer = make('name: "i" type: "InfogainLoss" loss_param { ignore_label: 9 }', [scores.shape, labels.shape, H.shape])
    p = softmax(scores.astype(np.float64), 1)
    loss, grad, valid = 0.0, np.zeros_like(p), 0
    for i in range(3):
        for j in range(2):
            label = int(labels[i, j])
            if label == 9:
                continue
            valid += 1
            loss -= (H[label] * np.log(np.maximum(p[i, :, j], 1e-20))).sum()
            grad[i, :, j] = p[i, :, j] * H[label].sum() - H[label]
    assert run(layer, scores, labels, H)[0] == pytest.approx(loss / valid, rel=1e-5)
    (got,) = grads(layer, [scores, labels, H], [0])
    np.testing.assert_allclose(got, grad / valid, rtol=1e-4, atol=1e-6)


def test_infogain_loss_reads_h_from_its_source_and_gives_the_softmax_as_a_second_top(tmp_path):
    k = 3
    scores, labels = rand(4, k, seed=5), np.array([0, 1, 2, 1], np.float32)
    H = np.eye(k, dtype=np.float32) * 2 + 0.25
    write_binaryproto(H.reshape(1, 1, k, k), str(tmp_path / "H.binaryproto"))
    text = (f'name: "i" type: "InfogainLoss" top: "loss" top: "prob" '
            f'infogain_loss_param {{ source: "{tmp_path / "H.binaryproto"}" }} loss_param {{ normalization: BATCH_SIZE }}')
    layer = make(text, [scores.shape, labels.shape])
    loss, prob = run(layer, scores, labels)
    p = softmax(scores.astype(np.float64), 1)
    expected = -sum((H[int(l)] * np.log(p[i])).sum() for i, l in enumerate(labels)) / 4
    assert loss == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(prob, p, rtol=1e-5)


# -------------------------------------------------------------------------------------------------- SPP
def caffe_pool(x, kernel, pad, stride, method):
    """Caffe's MAX / AVE pooling (ceil rounding, the last window dropped when it starts in the padding)."""
    n, c, height, width = x.shape
    outs = []
    for size, k, p, s in zip((height, width), kernel, pad, stride):
        out = int(math.ceil((size + 2 * p - k) / s)) + 1
        if p and (out - 1) * s >= size + p:
            out -= 1
        outs.append(out)
    top = np.zeros((n, c, *outs))
    for i in range(outs[0]):
        for j in range(outs[1]):
            h0, w0 = i * stride[0] - pad[0], j * stride[1] - pad[1]
            h1, w1 = min(h0 + kernel[0], height + pad[0]), min(w0 + kernel[1], width + pad[1])
            area = (h1 - h0) * (w1 - w0)
            window = x[:, :, max(h0, 0):min(h1, height), max(w0, 0):min(w1, width)]
            top[:, :, i, j] = window.max(axis=(2, 3)) if method == "MAX" else window.sum(axis=(2, 3)) / area
    return top


def spp_reference(x, levels, method):
    parts = []
    for level in range(levels):
        bins = 2 ** level
        kernel = [-(-size // bins) for size in x.shape[2:]]
        pad = [(k * bins - size + 1) // 2 for k, size in zip(kernel, x.shape[2:])]
        pooled = caffe_pool(x, kernel, pad, kernel, method)
        assert pooled.shape[2:] == (bins, bins)
        parts.append(pooled.reshape(x.shape[0], -1))
    return np.concatenate(parts, axis=1)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_spp_concatenates_caffes_pyramid_levels(method):
    x = rand(2, 3, 7, 9, seed=6)
    layer = make(f'name: "s" type: "SPP" spp_param {{ pyramid_height: 3 pool: {method} }}', [x.shape])
    assert layer.top_shapes == [(2, 3 * (1 + 4 + 16))]
    np.testing.assert_allclose(run(layer, x)[0], spp_reference(x.astype(np.float64), 3, method), rtol=1e-5, atol=1e-6)
    gradcheck_layer(layer, x.astype(np.float64))


def test_spp_of_one_level_keeps_four_axes_and_refuses_inputs_too_small_for_its_bins():
    x = rand(2, 3, 5, 6, seed=7)
    layer = make('name: "s" type: "SPP" spp_param { pyramid_height: 1 }', [x.shape])
    np.testing.assert_allclose(run(layer, x)[0], x.max(axis=(2, 3), keepdims=True))
    with pytest.raises(ShapeError, match="too small for pyramid level 2"):
        make('name: "s" type: "SPP" spp_param { pyramid_height: 3 }', [(1, 1, 5, 5)])  # kernel 2, pad 2


# ----------------------------------------------------------------------------------------------- Filter
def test_filter_keeps_the_selected_samples_and_routes_their_gradient():
    x, y = rand(4, 3, seed=8), rand(4, 2, 2, seed=9)
    selector = np.array([1, 0, -2.5, 0], np.float32)
    layer = make('name: "f" type: "Filter" top: "a" top: "b"', [x.shape, y.shape, selector.shape])
    a, b = run(layer, x, y, selector)
    np.testing.assert_array_equal(a, x[[0, 2]])
    np.testing.assert_array_equal(b, y[[0, 2]])
    (grad_x,) = grads(layer, [x, y, selector], [0])
    np.testing.assert_array_equal(grad_x, np.array([1, 0, 1, 0], np.float32)[:, None] * np.ones((4, 3)))
    none = run(layer, x, y, np.zeros(4, np.float32))
    assert none[0].shape == (0, 3) and none[1].shape == (0, 2, 2)


# -------------------------------------------------------------------------------------- RNN, LSTM, LSTMUnit
def rnn_reference(x, cont, blobs, h0, static=None):
    w_xh, b_h, *rest = blobs
    if static is not None:
        w_static, *rest = rest
    w_hh, w_ho, b_o = rest
    h, outs = h0, []
    for t in range(x.shape[0]):
        a = x[t].reshape(x.shape[1], -1) @ w_xh.T + b_h + (cont[t][:, None] * h) @ w_hh.T
        if static is not None:
            a = a + static.reshape(static.shape[0], -1) @ w_static.T
        h = np.tanh(a)
        outs.append(np.tanh(h @ w_ho.T + b_o))
    return np.stack(outs), h


def lstm_reference(x, cont, blobs, h0, c0, static=None):
    w_xc, b_c, *rest = blobs
    if static is not None:
        w_static, *rest = rest
    (w_hc,) = rest
    h, c, outs = h0, c0, []
    for t in range(x.shape[0]):
        a = x[t].reshape(x.shape[1], -1) @ w_xc.T + b_c + (cont[t][:, None] * h) @ w_hc.T
        if static is not None:
            a = a + static.reshape(static.shape[0], -1) @ w_static.T
        i, f, o, g = np.split(a, 4, axis=1)
        c = cont[t][:, None] * sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outs.append(h)
    return np.stack(outs), h, c


def set_blobs(layer, seed):
    arrays = []
    with torch.no_grad():
        for i, blob in enumerate(layer.blobs):
            array = rand(*blob.shape, seed=seed + i) * 0.5
            blob.copy_(torch.from_numpy(array))
            arrays.append(array.astype(np.float64))
    return arrays


CONT = np.array([[0, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1]], np.float32)  # (T 4, N 3): new sequences at 0s


def test_rnn_blobs_recurrence_and_state_carried_to_the_next_forward():
    x, static = rand(4, 3, 2, 2, seed=10), rand(3, 5, seed=11)
    layer = make('name: "r" type: "RNN" recurrent_param { num_output: 6 }', [x.shape, CONT.shape, static.shape])
    assert [tuple(b.shape) for b in layer.blobs] == [(6, 4), (6,), (6, 5), (6, 6), (6, 6), (6,)]
    assert layer.top_shapes == [(4, 3, 6)]
    blobs = set_blobs(layer, 20)
    first = run(layer, x, CONT, static)[0]
    expected, h_last = rnn_reference(x.astype(np.float64), CONT, blobs, np.zeros((3, 6)), static.astype(np.float64))
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)
    ones = np.ones_like(CONT)  # continuing sequences: the next forward starts from the last state
    second = run(layer, x, ones, static)[0]
    np.testing.assert_allclose(second, rnn_reference(x.astype(np.float64), ones, blobs, h_last,
                                                     static.astype(np.float64))[0], rtol=1e-5, atol=1e-6)


def test_lstm_blobs_gates_and_exposed_states():
    x = rand(4, 3, 5, seed=12)
    h0, c0 = rand(1, 3, 2, seed=13), rand(1, 3, 2, seed=14)
    layer = make('name: "l" type: "LSTM" top: "h" top: "hT" top: "cT" '
                 'recurrent_param { num_output: 2 expose_hidden: true }', [x.shape, CONT.shape, h0.shape, c0.shape])
    assert [tuple(b.shape) for b in layer.blobs] == [(8, 5), (8,), (8, 2)]
    blobs = set_blobs(layer, 30)
    ones = np.ones_like(CONT)
    outputs, h_t, c_t = run(layer, x, ones, h0, c0)
    expected, h_ref, c_ref = lstm_reference(x.astype(np.float64), ones, blobs, h0[0].astype(np.float64),
                                            c0[0].astype(np.float64))
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_t[0], h_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_t[0], c_ref, rtol=1e-5, atol=1e-6)
    # cont 0 at step 0 drops the given initial state
    restarted = run(layer, x, CONT, h0, c0)[0]
    np.testing.assert_allclose(restarted, lstm_reference(x.astype(np.float64), CONT, blobs, h0[0] * 0, c0[0] * 0)[0],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_recurrent_gradients_reach_the_input_and_every_blob(kind):
    x, static = rand(4, 3, 2, seed=15), rand(3, 2, seed=16)
    layer = make(f'name: "r" type: "{kind}" recurrent_param {{ num_output: 3 }}', [x.shape, CONT.shape, static.shape])
    set_blobs(layer, 40)
    layer = layer.double()
    names = [f"blobs.{i}" for i in range(len(layer.blobs))]
    cont = torch.tensor(CONT, dtype=torch.float64)

    def fn(x, static, *blobs):
        layer._carried = None  # every evaluation from zero states
        return functional_call(layer, dict(zip(names, blobs)), (x, cont, static))[0]

    inputs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, static)]
    params = [b.detach().clone().requires_grad_(True) for b in layer.blobs]
    assert torch.autograd.gradcheck(fn, tuple(inputs + params), eps=1e-6, atol=1e-5)


def test_recurrent_fillers_fill_weights_and_biases():
    layer = make('name: "l" type: "LSTM" recurrent_param { num_output: 2 weight_filler { type: "constant" value: 0.5 } '
                 'bias_filler { type: "constant" value: -1 } }', [(2, 1, 3), (2, 1)])
    layer.fill(torch.Generator().manual_seed(0))
    values = [set(b.detach().numpy().ravel().tolist()) for b in layer.blobs]
    assert values == [{0.5}, {-1.0}, {0.5}]


def test_lstm_unit_is_one_step_of_the_cell():
    c_prev, gates = rand(1, 3, 2, seed=17), rand(1, 3, 8, seed=18)
    cont = np.array([[1, 0, 1]], np.float32)
    layer = make('name: "u" type: "LSTMUnit"', [c_prev.shape, gates.shape, cont.shape])
    c, h = run(layer, c_prev, gates, cont)
    i, f, o, g = np.split(gates[0].astype(np.float64), 4, axis=1)
    c_ref = cont[0][:, None] * sigmoid(f) * c_prev[0] + sigmoid(i) * np.tanh(g)
    np.testing.assert_allclose(c[0], c_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h[0], sigmoid(o) * np.tanh(c_ref), rtol=1e-5, atol=1e-6)


def test_an_lstm_net_runs_in_pycaffe_with_the_reference_numbers(tmp_path):
    from eigen_depth.pycaffe import Net
    path = tmp_path / "lstm.prototxt"
    path.write_text('layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 dim: 5 } } }\n'
                    'layer { name: "cont" type: "Input" top: "cont" input_param { shape { dim: 4 dim: 3 } } }\n'
                    'layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h" '
                    'recurrent_param { num_output: 2 weight_filler { type: "uniform" min: -0.5 max: 0.5 } } }\n')
    net = Net(str(path), 1)
    blobs = [np.array(b.data, dtype=np.float64) for b in net.params["lstm"]]
    assert [b.shape for b in blobs] == [(8, 5), (8,), (8, 2)] and np.abs(blobs[0]).max() > 0
    x = rand(4, 3, 5, seed=19)
    out = net.forward(x=x, cont=CONT)["h"]
    expected = lstm_reference(x.astype(np.float64), CONT, blobs, np.zeros((3, 2)), np.zeros((3, 2)))[0]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------- BerHu
def berhu_reference(prediction, truth):
    """FCRN's reverse Huber loss and its gradient (c = max |r| / 5 held constant), over truth > 0, by hand."""
    valid = truth > 0
    r = (prediction - truth).astype(np.float64)
    c = 0.2 * np.abs(r[valid]).max()
    values = np.where(np.abs(r) <= c, np.abs(r), (r ** 2 + c ** 2) / (2 * c))
    grad = np.where(np.abs(r) <= c, np.sign(r), r / c) * valid / valid.sum()
    return values[valid].mean(), grad


def test_berhu_loss_is_l1_near_zero_and_l2_beyond_a_fifth_of_the_largest_residual():
    truth = np.abs(rand(2, 1, 4, 5, seed=21)) + 0.5
    truth[0, 0, 1, 2] = truth[1, 0, 3, 4] = 0  # missing depth: left out
    prediction = truth + rand(2, 1, 4, 5, seed=22)
    layer = make('name: "b" type: "BerHuLoss"', [prediction.shape, truth.shape])
    expected, grad = berhu_reference(prediction, truth)
    assert run(layer, prediction, truth)[0] == pytest.approx(expected, rel=1e-5)
    (got,) = grads(layer, [prediction, truth], [0])
    np.testing.assert_allclose(got, grad, rtol=1e-5, atol=1e-7)
    # by hand: residuals (1, -0.1, 2, 0) -> c = 0.4; B = (1 + 0.16) / 0.8 = 1.45, 0.1, (4 + 0.16) / 0.8 = 5.2, 0
    small = make('name: "b" type: "BerHuLoss"', [(1, 1, 1, 4), (1, 1, 1, 4)])
    value = run(small, np.array([2, 0.9, 3, 1], np.float32).reshape(1, 1, 1, 4), np.ones((1, 1, 1, 4), np.float32))[0]
    assert value == pytest.approx((1.45 + 0.1 + 5.2 + 0) / 4, rel=1e-6)
    assert run(small, np.ones((1, 1, 1, 4), np.float32), np.zeros((1, 1, 1, 4), np.float32))[0] == 0


# ------------------------------------------------------------------------------------------ DenseDepthLoss
def dense_depth_reference(prediction, truth):
    """DenseDepth's loss without missing pixels: NumPy's L1 and forward differences (0 on the last row and
    column) and scikit-image's Gaussian SSIM (11 x 11, sigma 1.5, biased covariance, border windows cropped)."""
    from skimage.metrics import structural_similarity
    p, t = prediction.astype(np.float64), truth.astype(np.float64)
    depth = np.abs(p - t).mean()
    dy = np.zeros_like(p)
    dx = np.zeros_like(p)
    dy[:, :, :-1] = np.diff(p, axis=2) - np.diff(t, axis=2)
    dx[:, :, :, :-1] = np.diff(p, axis=3) - np.diff(t, axis=3)
    edges = (np.abs(dy) + np.abs(dx)).mean()
    ssim = [structural_similarity(t[i, 0], p[i, 0], data_range=100.0, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False) for i in range(p.shape[0])]
    return 0.1 * depth + edges + np.mean(np.clip((1 - np.array(ssim)) / 2, 0, 1))


def test_dense_depth_loss_is_the_papers_weighted_l1_gradient_and_ssim_terms():
    rng = np.random.default_rng(23)
    truth = (10 / rng.uniform(0.5, 8, (2, 1, 16, 19))).astype(np.float32)  # the paper's 10 m / depth
    prediction = (truth * rng.uniform(0.7, 1.3, truth.shape)).astype(np.float32)
    layer = make('name: "d" type: "DenseDepthLoss"', [truth.shape, truth.shape])
    assert run(layer, prediction, truth)[0] == pytest.approx(dense_depth_reference(prediction, truth), rel=1e-5)
    layer = layer.double()
    fixed_truth = torch.tensor(truth, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: layer(p, fixed_truth)[0],
                                    (torch.tensor(prediction, dtype=torch.float64, requires_grad=True),),
                                    eps=1e-6, atol=1e-5)


def test_dense_depth_loss_leaves_out_pixels_without_depth():
    rng = np.random.default_rng(24)
    truth = (10 / rng.uniform(0.5, 8, (1, 1, 14, 12))).astype(np.float32)
    prediction = (truth * rng.uniform(0.8, 1.2, truth.shape)).astype(np.float32)
    holed = truth.copy()
    holed[0, 0, 13, 11] = 0  # the bottom-right corner: in no SSIM window that starts at the top-left
    layer = make('name: "d" type: "DenseDepthLoss"', [truth.shape, truth.shape])
    p, t = prediction.astype(np.float64)[0, 0], truth.astype(np.float64)[0, 0]
    valid = np.ones_like(t, bool)
    valid[13, 11] = False
    depth = np.abs(p - t)[valid].mean()
    dy = np.abs(np.diff(p, axis=0) - np.diff(t, axis=0)) * (valid[1:] & valid[:-1])
    dx = np.abs(np.diff(p, axis=1) - np.diff(t, axis=1)) * (valid[:, 1:] & valid[:, :-1])
    edges = (dy.sum() + dx.sum()) / valid.sum()
    from skimage.metrics import structural_similarity
    _, ssim_map = structural_similarity(t, p, data_range=100.0, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, full=True)
    inner = ssim_map[5:-5, 5:-5]  # windows that fit: centres 5 .. size - 6
    kept = np.ones_like(inner, bool)
    kept[-1, -1] = False          # the one window that holds the missing pixel
    ssim_term = np.clip((1 - inner[kept].mean()) / 2, 0, 1)
    expected = 0.1 * depth + edges + ssim_term
    assert run(layer, prediction, holed)[0] == pytest.approx(expected, rel=1e-5)
    assert run(layer, prediction, np.zeros_like(truth))[0] == 0
