"""Files written by eigen_depth.caffe read back by an independent Caffe reader: OpenCV's dnn module."""
import cv2
import numpy as np

from eigen_depth.caffe import (NetParameter, array_to_blob, parse_text, read_caffemodel, write_caffemodel,
                               write_prototxt)

NET_TEXT = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 6 kernel_size: 3 group: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc1" type: "InnerProduct" bottom: "pool1" top: "fc1" inner_product_param { num_output: 5 } }
"""


def random_weights(seed=0):
    rng = np.random.default_rng(seed)
    return {"conv1": [rng.standard_normal((6, 2, 3, 3)).astype(np.float32),   # group 2: 4 inputs / 2
                      rng.standard_normal(6).astype(np.float32)],
            "fc1": [rng.standard_normal((5, 6 * 3 * 3)).astype(np.float32),
                    rng.standard_normal(5).astype(np.float32)]}


def weights_only_caffemodel(weights, path, legacy_fc=False):
    """A caffemodel holding only layer names and blobs."""
    net = NetParameter(name="tiny")
    for name, arrays in weights.items():
        layer = net.layer.add(name=name)
        for array in arrays:
            layer.blobs.append(array_to_blob(array, legacy=legacy_fc and name == "fc1"))
    write_caffemodel(net, path)


def opencv_net(tmp_path, weights, legacy_fc=False):
    write_prototxt(parse_text(NetParameter, NET_TEXT), tmp_path / "tiny.prototxt")
    weights_only_caffemodel(weights, tmp_path / "tiny.caffemodel", legacy_fc)
    return cv2.dnn.readNetFromCaffe(str(tmp_path / "tiny.prototxt"), str(tmp_path / "tiny.caffemodel"))


def test_opencv_reads_the_layers_of_a_written_prototxt(tmp_path):
    net = opencv_net(tmp_path, random_weights())
    assert list(net.getLayerNames()) == ["conv1", "relu1", "pool1", "fc1"]


def test_opencv_reads_grouped_convolution_weights_identically(tmp_path):
    weights = random_weights()
    net = opencv_net(tmp_path, weights)
    assert np.array_equal(net.getParam("conv1", 0), weights["conv1"][0])
    assert np.array_equal(net.getParam("conv1", 1).reshape(-1), weights["conv1"][1])


def test_opencv_reads_inner_product_weights_identically(tmp_path):
    weights = random_weights()
    net = opencv_net(tmp_path, weights)
    assert np.array_equal(net.getParam("fc1", 0), weights["fc1"][0])
    assert np.array_equal(net.getParam("fc1", 1).reshape(-1), weights["fc1"][1])


def test_opencv_reads_legacy_four_d_inner_product_blobs_identically(tmp_path):
    weights = random_weights(1)
    net = opencv_net(tmp_path, weights, legacy_fc=True)  # stored 1x1x5x54 and 1x1x1x5
    assert np.array_equal(net.getParam("fc1", 0).reshape(5, 54), weights["fc1"][0])
    assert np.array_equal(net.getParam("fc1", 1).reshape(-1), weights["fc1"][1])


def test_opencv_reads_layers_by_id_in_prototxt_order(tmp_path):
    weights = random_weights(2)
    net = opencv_net(tmp_path, weights)
    assert np.array_equal(net.getParam(net.getLayerId("fc1"), 0), weights["fc1"][0])


def inline_caffemodel(weights, path):
    """A caffemodel as Caffe snapshots it: the whole net definition with the blobs inside its layers."""
    net = parse_text(NetParameter, NET_TEXT)
    for layer in net.layer:
        for array in weights.get(layer.name, []):
            layer.blobs.append(array_to_blob(array))
    write_caffemodel(net, path)


def test_opencv_reads_a_caffemodel_with_an_inline_net(tmp_path):
    weights = random_weights(3)
    inline_caffemodel(weights, tmp_path / "inline.caffemodel")
    # the prototxt is derived from the caffemodel itself: its layers without their blobs
    definition = read_caffemodel(tmp_path / "inline.caffemodel")
    for layer in definition.layer:
        layer.ClearField("blobs")
    write_prototxt(definition, tmp_path / "inline.prototxt")
    net = cv2.dnn.readNetFromCaffe(str(tmp_path / "inline.prototxt"), str(tmp_path / "inline.caffemodel"))
    assert list(net.getLayerNames()) == ["conv1", "relu1", "pool1", "fc1"]
    for name, arrays in weights.items():
        for index, array in enumerate(arrays):
            assert np.array_equal(net.getParam(name, index).reshape(array.shape), array)


def test_inline_and_weights_only_caffemodels_give_the_same_opencv_output(tmp_path):
    weights = random_weights(4)
    inline_caffemodel(weights, tmp_path / "inline.caffemodel")
    write_prototxt(parse_text(NetParameter, NET_TEXT), tmp_path / "text.prototxt")
    inline = cv2.dnn.readNetFromCaffe(str(tmp_path / "text.prototxt"), str(tmp_path / "inline.caffemodel"))
    separate = opencv_net(tmp_path, weights)
    image = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    outputs = []
    for net in (inline, separate):
        net.setInput(image)
        outputs.append(net.forward())
    assert outputs[0].shape == (1, 5) and np.array_equal(outputs[0], outputs[1])


def test_opencv_reads_a_v1_caffemodel_written_here(tmp_path):
    # OpenCV upgrades V1 files with its own copy of Caffe's upgrade code: an independent V1 reader
    rng = np.random.default_rng(6)
    conv_w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    conv_b = rng.standard_normal(6).astype(np.float32)
    v1 = parse_text(NetParameter, 'name: "v1" input: "data" input_dim: [1, 4, 8, 8] '
                                  'layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1" '
                                  'convolution_param { num_output: 6 kernel_size: 3 group: 2 } }')
    write_prototxt(v1, tmp_path / "v1.prototxt")
    v1.layers[0].blobs.append(array_to_blob(conv_w, legacy=True))
    v1.layers[0].blobs.append(array_to_blob(conv_b, legacy=True))
    write_caffemodel(v1, tmp_path / "v1.caffemodel")
    net = cv2.dnn.readNetFromCaffe(str(tmp_path / "v1.prototxt"), str(tmp_path / "v1.caffemodel"))
    assert np.array_equal(net.getParam("conv1", 0), conv_w)
    assert np.array_equal(net.getParam("conv1", 1).reshape(-1), conv_b)
