"""The pycaffe-style API: a thesis-style script (assign into blobs and params, forward, read outputs) ports
with one import change. Numbers are checked against OpenCV's reader and hand-computed values."""
import cv2
import numpy as np
import pytest
import skimage.io
import skimage.transform
import torch

import eigen_depth
import eigen_depth.compat as caffe

PROTOTXT = """
name: "tiny"
layer { name: "input" type: "Input" top: "X" input_param { shape { dim: 1 dim: 3 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "X" top: "conv" convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "out" inner_product_param { num_output: 3 } }
"""


@pytest.fixture
def files(tmp_path):
    prototxt = tmp_path / "deploy.prototxt"
    prototxt.write_text(PROTOTXT)
    weights = str(tmp_path / "w.caffemodel")
    rng = np.random.default_rng(0)
    net = caffe.Net(str(prototxt), caffe.TEST)
    net.params["conv"][0].data[...] = rng.standard_normal((2, 3, 3, 3))
    net.params["conv"][1].data[...] = rng.standard_normal(2)
    net.params["fc"][0].data[...] = rng.standard_normal((3, 32))
    net.params["fc"][1].data[...] = rng.standard_normal(3)
    net.save(weights)
    return str(prototxt), weights


def opencv_forward(files, x):
    net = cv2.dnn.readNetFromCaffe(*files)
    net.setInput(x)
    return net.forward("fc")


def test_top_level_names_mirror_pycaffe():
    assert eigen_depth.TRAIN == caffe.TRAIN == 0 and eigen_depth.TEST == caffe.TEST == 1
    assert eigen_depth.Net is caffe.Net


@pytest.mark.parametrize("form", ["positional", "keyword", "weights-first"])
def test_net_constructors_of_pycaffe_all_load_weights(files, form):
    prototxt, weights = files
    net = {"positional": lambda: caffe.Net(prototxt, weights, caffe.TEST),
           "keyword": lambda: caffe.Net(prototxt, caffe.TEST, weights=weights),
           "weights-first": lambda: caffe.Net(prototxt, weights=weights, phase=caffe.TEST)}[form]()
    reference = caffe.Net(prototxt, weights, caffe.TEST)
    np.testing.assert_array_equal(net.params["fc"][0].data, reference.params["fc"][0].data)
    assert net.inputs == ["X"] and net.outputs == ["out"]


def test_assigning_into_the_input_blob_then_forward_matches_opencv(files):
    net = caffe.Net(files[0], files[1], caffe.TEST)
    x = np.random.default_rng(1).standard_normal((1, 3, 6, 6)).astype(np.float32)
    net.blobs["X"].data[...] = x
    out = net.forward()
    np.testing.assert_allclose(out["out"], opencv_forward(files, x), rtol=1e-5, atol=1e-5)


def test_forward_with_keyword_inputs_takes_any_batch(files):
    net = caffe.Net(files[0], files[1], caffe.TEST)
    x = np.random.default_rng(2).standard_normal((4, 3, 6, 6)).astype(np.float32)
    out = net.forward(X=x)
    assert out["out"].shape == (4, 3)
    np.testing.assert_allclose(out["out"], opencv_forward(files, x), rtol=1e-5, atol=1e-5)
    assert net.blobs["conv"].data.shape == (4, 2, 4, 4)
    assert net.blobs["conv"].data.min() >= 0  # the in-place ReLU replaced the blob


def test_assigning_into_params_changes_the_output(files):
    net = caffe.Net(files[0], files[1], caffe.TEST)
    net.params["fc"][0].data[...] = 0
    net.params["fc"][1].data[...] = [1, 2, 3]
    np.testing.assert_array_equal(net.forward(X=np.ones((1, 3, 6, 6), np.float32))["out"], [[1, 2, 3]])


def test_params_written_after_a_reshape_change_the_output(files):
    # pycaffe's pattern: reshape the input blob, net.reshape(), then set weights through net.params.
    net = caffe.Net(files[0], files[1], caffe.TEST)
    params = net.params["fc"]
    net.blobs["X"].reshape(2, 3, 6, 6)
    net.reshape()
    params[0].data[...] = 0
    net.params["fc"][1].data[...] = [1, 2, 3]
    out = net.forward(X=np.ones((2, 3, 6, 6), np.float32))["out"]
    np.testing.assert_array_equal(out, [[1, 2, 3], [1, 2, 3]])


def test_forward_between_layers_returns_the_end_layers_tops(files):
    net = caffe.Net(files[0], files[1], caffe.TEST)
    x = np.random.default_rng(3).standard_normal((1, 3, 6, 6)).astype(np.float32)
    full = net.forward(X=x)["out"]
    conv = net.forward(X=x, end="relu")
    assert list(conv) == ["conv"]
    net.blobs["conv"].data[...] = conv["conv"]
    np.testing.assert_allclose(net.forward(start="fc")["out"], full, rtol=1e-6)


def test_backward_fills_parameter_diffs_with_the_euclidean_gradient(tmp_path):
    prototxt = tmp_path / "train.prototxt"
    prototxt.write_text("""
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 2 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 2 dim: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "p" inner_product_param { num_output: 1 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "loss" }
""")
    net = caffe.Net(str(prototxt), caffe.TRAIN)
    net.params["ip"][0].data[...] = [[1, 2]]
    net.params["ip"][1].data[...] = [0.5]
    x, y = np.array([[1, 1], [2, 0]], np.float32), np.array([[0], [1]], np.float32)
    loss = net.forward(x=x, y=y)["loss"]
    # p = [3.5, 2.5]; residual r = p - y = [3.5, 1.5]; loss = (12.25 + 2.25) / 4
    assert float(loss) == pytest.approx(3.625)
    net.backward()
    np.testing.assert_allclose(net.params["ip"][0].diff, [[(3.5 * 1 + 1.5 * 2) / 2, (3.5 * 1 + 1.5 * 0) / 2]])
    np.testing.assert_allclose(net.params["ip"][1].diff, [(3.5 + 1.5) / 2])


def test_load_image_gives_float_rgb_in_unit_range(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    skimage.io.imsave(tmp_path / "g.png", gray, check_contrast=False)
    image = caffe.io.load_image(str(tmp_path / "g.png"))
    assert image.shape == (3, 4, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image[..., 1], gray / 255.0, rtol=1e-6)
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    skimage.io.imsave(tmp_path / "a.png", rgba, check_contrast=False)
    assert caffe.io.load_image(str(tmp_path / "a.png")).shape == (3, 4, 3)


def test_resize_image_is_skimage_bilinear_without_antialiasing():
    image = np.random.default_rng(4).uniform(0.1, 0.9, (17, 23, 3)).astype(np.float32)
    expected = skimage.transform.resize(image, (7, 11, 3), order=1, mode="constant", anti_aliasing=False)
    np.testing.assert_allclose(caffe.io.resize_image(image, (7, 11)), expected, rtol=1e-5, atol=1e-6)


def test_cuda_request_without_a_gpu_says_what_to_do(files):
    if torch.cuda.is_available():
        net = caffe.Net(files[0], files[1], caffe.TEST, device="cuda")
        net.params["fc"][1].data[...] = [1, 2, 3]  # written through to the device
        assert net.net.layer_by_name("fc").blobs[1].detach().cpu().tolist() == [1, 2, 3]
    else:
        with pytest.raises(RuntimeError, match="set_mode_cpu"):
            caffe.Net(files[0], files[1], caffe.TEST, device="cuda")


SOLVER_NET = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 2 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 2 dim: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "p" inner_product_param { num_output: 1 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "loss" }
"""


def write_solver(tmp_path, kind="SGD"):
    (tmp_path / "train.prototxt").write_text(SOLVER_NET)
    (tmp_path / "solver.prototxt").write_text(
        f'net: "train.prototxt" base_lr: 0.1 momentum: 0 lr_policy: "fixed" max_iter: 3 type: "{kind}" '
        f'snapshot_prefix: "{tmp_path}/snaps/" snapshot_after_train: true')
    return str(tmp_path / "solver.prototxt")


def test_thesis_style_solver_script_ports_with_one_import_change(tmp_path):
    solver = caffe.SGDSolver(write_solver(tmp_path))
    solver.net.params["ip"][0].data[...] = [[1, 2]]  # copy weights in, as the thesis's scripts did
    solver.net.params["ip"][1].data[...] = [0.5]
    solver.net.blobs["x"].data[...] = [[1, 1], [2, 0]]
    solver.net.blobs["y"].data[...] = [[0], [1]]
    solver.step(1)
    # p = [3.5, 2.5], r = [3.5, 1.5]; dW = r^T x / N = [6.5, 3.5] / 2; db = 5 / 2; w -= 0.1 * grad
    np.testing.assert_allclose(solver.net.params["ip"][0].data, [[0.675, 1.825]], rtol=1e-6)
    np.testing.assert_allclose(solver.net.params["ip"][1].data, [0.25], rtol=1e-6)
    assert solver.iter == 1
    solver.solve()
    assert solver.iter == 3 and (tmp_path / "snaps" / "_iter_3.caffemodel").exists()


def test_get_solver_takes_the_type_from_the_file(tmp_path):
    assert type(caffe.get_solver(write_solver(tmp_path, "Adam"))) is caffe.AdamSolver
