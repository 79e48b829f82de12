"""Unmodified pycaffe programs under `python -m eigen_depth.pycaffe`: a script written the Caffe way (load_image,
Transformer, blob reshape, forward, backward to the input) gives OpenCV's forward and the input gradient
computed in NumPy; `import caffe` resolves only inside the runner."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import scipy.signal

SCRIPT = r'''
import sys
import numpy as np
import pytest
import caffe
from caffe.proto import caffe_pb2

folder = sys.argv[1]
caffe.set_mode_cpu()
caffe.set_random_seed(3)
net = caffe.Net(folder + "/deploy.prototxt", caffe.TEST)
for blob in net.params["conv"]:
    blob.data[...] = np.random.RandomState(4).standard_normal(blob.data.shape)
net.save(folder + "/weights.caffemodel")

image = caffe.io.load_image(folder + "/photo.png")           # H x W x 3 RGB in [0, 1]
image = caffe.io.resize(image, (20, 24))
transformer = caffe.io.Transformer({"data": (1, 3, 20, 24)})
transformer.set_transpose("data", (2, 0, 1))
transformer.set_channel_swap("data", (2, 1, 0))               # RGB -> BGR, as Caffe models expect
transformer.set_raw_scale("data", 255)
transformer.set_mean("data", np.array([104.0, 117.0, 123.0]))
x = transformer.preprocess("data", image)

net.blobs["data"].reshape(1, 3, 20, 24)                      # another size than the prototxt's
net.blobs["data"].data[...] = x
out = net.forward()["conv"].copy()
net.blobs["conv"].diff[...] = 1.0                            # d(sum of the output)
grad = net.backward()["data"].copy()
layer = net.layers[list(net._layer_names).index("conv")]
assert layer.type == "Convolution" and caffe_pb2.NetParameter().DESCRIPTOR.full_name == "caffe.NetParameter"
np.save(folder + "/x.npy", x)
np.save(folder + "/out.npy", out)
np.save(folder + "/grad.npy", grad)
print("done", sys.argv[2])
'''

DEPLOY = """name: "one_conv"
input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
force_backward: true
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 pad: 1 } }
"""


def runner(*argv, cwd):
    return subprocess.run([sys.executable, "-m", "eigen_depth.pycaffe", *map(str, argv)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_a_caffe_style_script_runs_unmodified_with_opencvs_forward_and_numpys_gradient(tmp_path):
    (tmp_path / "deploy.prototxt").write_text(DEPLOY)
    (tmp_path / "script.py").write_text(SCRIPT)
    photo = (np.random.default_rng(0).random((30, 36, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "photo.png"), photo)
    done = runner("script.py", tmp_path, "extra-argument", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done extra-argument"
    x, out, grad = (np.load(tmp_path / f"{name}.npy") for name in ("x", "out", "grad"))
    assert x.shape == (3, 20, 24) and out.shape == (1, 2, 20, 24) and grad.shape == (1, 3, 20, 24)
    # the forward: OpenCV's Caffe reader on the weights the script saved
    opencv = cv2.dnn.readNetFromCaffe(str(tmp_path / "deploy.prototxt"), str(tmp_path / "weights.caffemodel"))
    opencv.setInput(x[np.newaxis].astype(np.float32))
    reference = opencv.forward()
    # float32 sums of 27 products of size ~100: agreement to 1e-5 of the output's scale
    np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-5 * np.abs(reference).max())
    # the gradient of sum(conv(x)) w.r.t. x: for each input channel, the sum over outputs of a full
    # convolution of the all-ones top diff with the kernel, cut to the padded input (pad 1)
    kernel = np.random.RandomState(4).standard_normal((2, 3, 3, 3)).astype(np.float32)
    expected = np.zeros((3, 20, 24))
    for c in range(3):
        for o in range(2):
            full = scipy.signal.convolve2d(np.ones((20, 24)), kernel[o, c], mode="full")   # (22, 26)
            expected[c] += full[1:-1, 1:-1]
    np.testing.assert_allclose(grad[0], expected, rtol=1e-5, atol=1e-4)


def test_modules_and_the_cli_form_and_no_caffe_outside_the_runner(tmp_path):
    (tmp_path / "probe.py").write_text("import sys, caffe, caffe.io, caffe.net_spec, caffe.coord_map\n"
                                       "print(caffe.__name__, caffe.io.__name__, sys.argv[1:])\n")
    done = runner("-m", "probe", "a", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["eigen_depth.pycaffe", "eigen_depth.pycaffe.io", "['a']"]
    done = subprocess.run([sys.executable, "-m", "eigen_depth", "pycaffe", "probe.py", "b"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.split()[-1] == "['b']", done.stderr
    plain = subprocess.run([sys.executable, "-c", "import eigen_depth.pycaffe, eigen_depth.compat; import caffe"],
                           cwd=tmp_path, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=""))
    assert plain.returncode != 0 and "No module named 'caffe'" in plain.stderr


def test_classifier_predicts_the_softmax_of_the_preprocessed_crops(tmp_path):
    import eigen_depth.pycaffe as caffe
    (tmp_path / "cls.prototxt").write_text(
        'input: "data" input_shape { dim: 1 dim: 3 dim: 4 dim: 5 }\n'
        'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 3 } }\n'
        'layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }\n')
    rng = np.random.default_rng(2)
    weight, bias = rng.standard_normal((3, 60)).astype(np.float32) * 0.01, np.array([0.1, -0.2, 0.3], np.float32)
    net = caffe.Net(str(tmp_path / "cls.prototxt"), caffe.TEST)
    net.params["fc"][0].data[...] = weight
    net.params["fc"][1].data[...] = bias
    net.save(str(tmp_path / "cls.caffemodel"))
    classifier = caffe.Classifier(str(tmp_path / "cls.prototxt"), str(tmp_path / "cls.caffemodel"),
                                  mean=np.array([0.5, 0.4, 0.3]), raw_scale=255.0, channel_swap=(2, 1, 0))
    image = rng.random((4, 5, 3)).astype(np.float32)

    def expected_scores(picture):
        x = picture.transpose(2, 0, 1)[::-1] * 255.0 - np.array([0.5, 0.4, 0.3])[:, None, None]
        logits = weight.astype(np.float64) @ x.ravel() + bias
        return np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()

    centre = classifier.predict([image], oversample=False)
    np.testing.assert_allclose(centre[0], expected_scores(image), rtol=1e-5)
    # ten crops of an image the size of the input: five copies and five mirrors
    ten = classifier.predict([image], oversample=True)
    np.testing.assert_allclose(ten[0], (expected_scores(image) + expected_scores(image[:, ::-1])) / 2, rtol=1e-5)


def test_io_message_conversions_round_trip():
    import eigen_depth.pycaffe as caffe
    image = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    datum = caffe.io.array_to_datum(image, label=7)
    assert datum.label == 7 and datum.data == image.tobytes()
    np.testing.assert_array_equal(caffe.io.datum_to_array(datum), image)
    values = np.linspace(-1, 1, 24).reshape(2, 3, 4)
    np.testing.assert_allclose(caffe.io.datum_to_array(caffe.io.array_to_datum(values)), values)
    arrays = [np.ones((2, 3), np.float32), np.arange(4, dtype=np.float32)]
    back = caffe.io.blobprotovector_str_to_arraylist(caffe.io.arraylist_to_blobprotovector_str(arrays))
    assert [a.shape for a in back] == [(2, 3), (4,)]
    np.testing.assert_array_equal(back[1], [0, 1, 2, 3])


def test_detector_runs_the_net_on_each_window_crop(tmp_path):
    import skimage.io
    import skimage.transform
    import eigen_depth.pycaffe as caffe
    (tmp_path / "det.prototxt").write_text(
        'input: "data" input_shape { dim: 1 dim: 3 dim: 4 dim: 4 }\n'
        'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 2 } }\n')
    rng = np.random.default_rng(5)
    weight = rng.standard_normal((2, 48)).astype(np.float32) * 0.01
    net = caffe.Net(str(tmp_path / "det.prototxt"), caffe.TEST)
    net.params["fc"][0].data[...] = weight
    net.save(str(tmp_path / "det.caffemodel"))
    picture = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    skimage.io.imsave(str(tmp_path / "photo.png"), picture, check_contrast=False)
    detector = caffe.Detector(str(tmp_path / "det.prototxt"), str(tmp_path / "det.caffemodel"), raw_scale=255.0,
                              channel_swap=(2, 1, 0))
    windows = [(1, 2, 9, 10), (0, 0, 12, 16)]  # (ymin, xmin, ymax, xmax)
    found = detector.detect_windows([(str(tmp_path / "photo.png"), windows)])
    assert [d["window"] for d in found] == windows
    for detection, (y0, x0, y1, x1) in zip(found, windows):
        crop = skimage.transform.resize(picture[y0:y1, x0:x1] / 255.0, (4, 4), order=1, mode="constant",
                                        anti_aliasing=False)
        x = crop.transpose(2, 0, 1)[::-1] * 255.0
        np.testing.assert_allclose(detection["prediction"], weight.astype(np.float64) @ x.ravel(), rtol=1e-4,
                                   atol=1e-5)
    with pytest.raises(caffe.PycaffeUnsupported, match="selective_search"):
        detector.detect_selective_search([str(tmp_path / "photo.png")])


@pytest.mark.filterwarnings("ignore:.*deprecated")  # pydot's own parser, on pyparsing 3
def test_draw_gives_a_node_per_layer_and_blob_and_edges_along_the_data():
    import pydot  # optional for users (caffe.draw names it when missing); part of the test extras
    import eigen_depth.pycaffe as caffe
    from eigen_depth.pycaffe import draw
    net = caffe.proto.caffe_pb2.NetParameter()
    from google.protobuf import text_format
    text_format.Merge('name: "tiny" '
                      'layer { name: "data" type: "Input" top: "data" } '
                      'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" } '
                      'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" } '
                      'layer { name: "loss" type: "EuclideanLoss" bottom: "conv" bottom: "data" top: "loss" '
                      '        include { phase: TRAIN } }', net)
    graph = pydot.graph_from_dot_data(draw.get_pydot_graph(net, "LR").to_string())[0]
    names = {node.get_name().strip('"') for node in graph.get_nodes()} - {"node", "graph", "edge"}
    assert names == {"data_Input", "conv_Convolution", "relu_ReLU", "loss_EuclideanLoss", "data_blob", "conv_blob",
                     "loss_blob"}
    edges = {(e.get_source().strip('"'), e.get_destination().strip('"')) for e in graph.get_edges()}
    assert ("data_blob", "conv_Convolution") in edges and ("conv_Convolution", "conv_blob") in edges
    assert ("conv_blob", "relu_ReLU") in edges and ("relu_ReLU", "conv_blob") in edges
    test_only = pydot.graph_from_dot_data(draw.get_pydot_graph(net, "LR", phase=caffe.TEST).to_string())[0]
    assert "loss_EuclideanLoss" not in {node.get_name().strip('"') for node in test_only.get_nodes()}


def test_save_hdf5_writes_caffes_layout_and_an_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    import h5py
    import eigen_depth.pycaffe as caffe
    (tmp_path / "net.prototxt").write_text(
        'input: "data" input_shape { dim: 1 dim: 4 }\n'
        'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 3 } }\n')
    net = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    weight = np.arange(12, dtype=np.float32).reshape(3, 4)
    net.params["fc"][0].data[...] = weight
    net.params["fc"][1].data[...] = [1, 2, 3]
    path = tmp_path / "weights.h5"
    net.save_hdf5(str(path))
    with h5py.File(path, "r") as handle:
        np.testing.assert_array_equal(handle["data/fc/0"][()], weight)
        np.testing.assert_array_equal(handle["data/fc/1"][()], [1, 2, 3])
    saved = path.read_bytes()
    net.params["fc"][0].data[...] = -weight
    real = h5py.Group.create_dataset

    def interrupted(self, name, *args, **kwargs):       # Ctrl-C after the first blob went in
        if name == "1":
            raise KeyboardInterrupt
        return real(self, name, *args, **kwargs)
    monkeypatch.setattr(h5py.Group, "create_dataset", interrupted)
    with pytest.raises(KeyboardInterrupt):
        net.save_hdf5(str(path))
    monkeypatch.undo()
    assert path.read_bytes() == saved and sorted(os.listdir(tmp_path)) == ["net.prototxt", "weights.h5"]
    net.load_hdf5(str(path))
    np.testing.assert_array_equal(net.params["fc"][0].data, weight)


def test_draw_net_to_file_leaves_the_file_as_it_was_when_drawing_fails(tmp_path, monkeypatch):
    from eigen_depth.pycaffe import draw
    picture = tmp_path / "net.png"
    picture.write_bytes(b"an earlier drawing")

    def no_dot(*args, **kwargs):
        raise FileNotFoundError('"dot" not found in path.')
    monkeypatch.setattr(draw, "draw_net", no_dot)
    with pytest.raises(FileNotFoundError):
        draw.draw_net_to_file(None, str(picture))
    assert picture.read_bytes() == b"an earlier drawing"
    monkeypatch.setattr(draw, "draw_net", lambda net, rankdir, ext, phase: f"{ext} of {rankdir}".encode())
    draw.draw_net_to_file(None, str(picture), rankdir="TB")
    assert picture.read_bytes() == b"png of TB" and os.listdir(tmp_path) == ["net.png"]
