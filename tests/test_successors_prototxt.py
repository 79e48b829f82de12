"""The successors' networks in eigen_depth/prototxt/ (docs/successors.md): FCRN's deploy net has the paper's
input and output sizes and parameter count, ResNet-50's public layer names, unpooling that puts each value at
the top-left of its 2x2 block, and OpenCV's numbers; its training net trains with the BerHu loss. DenseDepth's
deploy net has the paper's sizes and parameter count, DenseNet-169's public Caffe layer names, a fixed 2x
bilinear upsampling, and OpenCV's numbers; its training net trains with DenseDepthLoss on 10 m / depth."""
import os

import cv2
import numpy as np
import pytest
import torch

from eigen_depth.net import CaffeNet
from eigen_depth.prototxt import ROOT as PROTOTXT_ROOT
from eigen_depth.prototxt.successors import densedepth_prototxt, fcrn_prototxt
from eigen_depth.testing import random_weights

FCRN = os.path.join(PROTOTXT_ROOT, "fcrn")
DENSEDEPTH = os.path.join(PROTOTXT_ROOT, "densedepth")


def test_the_shipped_fcrn_files_are_the_generators_output():
    for kind in ("deploy", "train"):
        with open(os.path.join(FCRN, f"net_{kind}.prototxt"), encoding="utf-8") as handle:
            assert handle.read() == fcrn_prototxt(kind), "regenerate with python -m eigen_depth.prototxt.successors"


def test_fcrn_deploy_sizes_parameters_and_resnet50_names():
    net = CaffeNet(os.path.join(FCRN, "net_deploy.prototxt"))
    assert net.blob_shapes["X"] == (1, 3, 228, 304) and net.blob_shapes["res5c"] == (1, 2048, 8, 10)
    assert net.output_names == ["depth"] and net.blob_shapes["depth"] == (1, 1, 128, 160)
    learned = sum(p.numel() for layer in net.layers for p in layer.blobs
                  if layer.type_name != "BatchNorm" and not layer.name.endswith("_unpool"))
    assert round(learned / 1e6, 1) == 63.6  # the paper's Table 1: ResNet-UpProj, 63.6 M parameters
    names = set(net.layer_names)
    # the public ResNet-50 deploy prototxt's names: 1 + 16 x 3 + 4 convolutions, each with bn*/scale*
    expected = {"conv1", "bn_conv1", "scale_conv1", "pool1"}
    for stage, blocks in ((2, "abc"), (3, "abcd"), (4, "abcdef"), (5, "abc")):
        for block in blocks:
            branches = ["branch2a", "branch2b", "branch2c"] + (["branch1"] if block == "a" else [])
            for branch in branches:
                expected |= {f"res{stage}{block}_{branch}", f"bn{stage}{block}_{branch}", f"scale{stage}{block}_{branch}"}
            expected |= {f"res{stage}{block}", f"res{stage}{block}_relu"}
    assert expected <= names
    assert sum(1 for layer in net.layers if layer.type_name == "Convolution" and layer.name.startswith(("conv1", "res"))) == 53


def test_fcrn_unpooling_puts_each_value_at_the_top_left_of_its_block():
    net = CaffeNet(os.path.join(FCRN, "net_deploy.prototxt"))
    unpool = net.layer_by_name("up1_unpool")
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    x = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, 1024 - 3))  # 1024 channels: the layer's input
    (top,) = unpool(x)
    expected = torch.zeros(2, 1024, 4, 4)
    expected[:, :, ::2, ::2] = x
    assert torch.equal(top, expected)


def test_fcrn_deploy_matches_opencv(tmp_path):
    prototxt = os.path.join(FCRN, "net_deploy.prototxt")
    net = random_weights(CaffeNet(prototxt), seed=5)  # BatchNorm with positive variances
    rng = np.random.default_rng(6)
    weights = str(tmp_path / "fcrn.caffemodel")
    net.save(weights)
    x = rng.uniform(-127, 128, (1, 3, 228, 304)).astype(np.float32)
    with torch.no_grad():
        ours = net({"X": x})["depth"].numpy()
    opencv = cv2.dnn.readNetFromCaffe(prototxt, weights)
    opencv.setInput(x)
    theirs = opencv.forward("depth")
    assert ours.shape == theirs.shape == (1, 1, 128, 160)
    assert np.abs(ours - theirs).max() <= 1e-4 * np.abs(theirs).max()


def test_fcrn_training_net_reads_the_sized_databases_and_has_the_berhu_loss():
    from eigen_depth.caffe import read_prototxt
    param = read_prototxt(os.path.join(FCRN, "net_train.prototxt"))
    losses = [layer for layer in param.layer if layer.type == "BerHuLoss"]
    assert [list(layer.bottom) for layer in losses] == [["depth", "depth-gt"]]
    sources = {layer.data_param.source for layer in param.layer if layer.type == "Data"}
    assert sources == {"train_color_304x228", "train_depth_160x128", "test_color_304x228", "test_depth_160x128"}
    from eigen_depth.caffe import read_solver
    solver = read_solver(os.path.join(FCRN, "solver.prototxt"))
    assert solver.net == "net_train.prototxt" and solver.type == "SGD" and solver.base_lr == pytest.approx(0.01)


@pytest.fixture(scope="module")
def densedepth_deploy():
    """The DenseDepth deploy net at 640x480, blobs left at zero (fill=False: the fillers of 42.7 M weights
    are slow, and these tests need only shapes and the upsampling layers, which they fill themselves)."""
    return CaffeNet(os.path.join(DENSEDEPTH, "net_deploy.prototxt"), fill=False)


def test_the_shipped_densedepth_files_are_the_generators_output():
    for kind in ("deploy", "train"):
        with open(os.path.join(DENSEDEPTH, f"net_{kind}.prototxt"), encoding="utf-8") as handle:
            assert handle.read() == densedepth_prototxt(kind), "regenerate with python -m eigen_depth.prototxt.successors"


def test_densedepth_deploy_sizes_parameters_and_densenet169_names(densedepth_deploy):
    net = densedepth_deploy
    shapes = net.blob_shapes
    assert shapes["X"] == (1, 3, 480, 640) and shapes["conv5_blk/bn"] == (1, 1664, 15, 20)
    assert net.output_names == ["depth"] and shapes["depth"] == (1, 1, 240, 320)
    # the skips line up with the upsampled decoder (pool1 rounds down: 120x160, not Caffe's default 121x161)
    assert [shapes[skip] for skip in ("pool3", "pool2", "pool1", "conv1/bn")] == [
        (1, 256, 30, 40), (1, 128, 60, 80), (1, 64, 120, 160), (1, 64, 240, 320)]
    assert [shapes[f"up{i}_concat"][1] for i in range(1, 5)] == [1664 + 256, 832 + 128, 416 + 64, 208 + 64]
    upsampling = [layer for layer in net.layers if layer.name.endswith("_upsampling2d")]
    assert len(upsampling) == 4
    learned = {layer.name: sum(p.numel() for p in layer.blobs) for layer in net.layers
               if layer.type_name != "BatchNorm" and layer not in upsampling}
    decoder = sum(count for name, count in learned.items() if name in ("conv2", "conv3") or name.startswith("up"))
    # DenseNet-169 without its classifier: Keras's trainable count (batch statistics are not trainable there)
    assert sum(learned.values()) - decoder == 12_484_480
    # the paper's "approximately 42.6M" trainable parameters, which the full-width decoder gives (42.66 M)
    assert sum(learned.values()) == 42_657_689
    names = set(net.layer_names)
    expected = {"conv1", "conv1/bn", "conv1/scale", "relu1", "pool1"}
    for block, layers in ((2, 6), (3, 12), (4, 32), (5, 32)):
        for index in range(1, layers + 1):
            for part in ("x1", "x2"):
                expected |= {f"conv{block}_{index}/{part}", f"conv{block}_{index}/{part}/bn",
                             f"conv{block}_{index}/{part}/scale", f"relu{block}_{index}/{part}"}
            expected.add(f"concat_{block}_{index}")
        expected |= {f"conv{block}_blk/bn", f"conv{block}_blk/scale", f"relu{block}_blk"}
        if block < 5:
            expected |= {f"conv{block}_blk", f"pool{block}"}
    assert expected <= names
    encoder_convs = [layer for layer in net.layers if layer.type_name == "Convolution" and layer.name in expected]
    assert len(encoder_convs) == 1 + 2 * (6 + 12 + 32 + 32) + 3  # 168: DenseNet-169 less its classifier
    assert all(len(layer.blobs) == 1 for layer in encoder_convs)  # no biases, as the public prototxt
    blob_shapes = {name: tuple(net.layer_by_name(name).blobs[0].shape) for name in (
        "conv1", "conv2_1/x1", "conv5_32/x2", "conv4_blk", "conv2", "up1_convA", "up4_convB", "conv3")}
    assert blob_shapes == {"conv1": (64, 3, 7, 7), "conv2_1/x1": (128, 64, 1, 1), "conv5_32/x2": (32, 128, 3, 3),
                           "conv4_blk": (640, 1280, 1, 1), "conv2": (1664, 1664, 1, 1),
                           "up1_convA": (832, 1920, 3, 3), "up4_convB": (104, 104, 3, 3), "conv3": (1, 104, 3, 3)}


def test_densedepth_upsampling_is_a_fixed_2x_bilinear_kernel(densedepth_deploy):
    layer = densedepth_deploy.layer_by_name("up1_upsampling2d")
    layer.fill(torch.Generator().manual_seed(0))
    assert tuple(layer.blobs[0].shape) == (1664, 1, 4, 4) and not layer.blobs[0].requires_grad
    x = torch.zeros(1, 1664, 2, 2)
    x[0, 0] = torch.tensor([[4.0, 8.0], [12.0, 16.0]])
    x[0, 1] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    (top,) = layer(x)
    # by hand: each axis maps [a, b] to [3a/4, (3a + b)/4, (a + 3b)/4, 3b/4]
    expected = torch.tensor([[2.25, 3.75, 5.25, 4.5],
                             [4.5, 7.0, 9.0, 7.5],
                             [7.5, 11.0, 13.0, 10.5],
                             [6.75, 9.75, 11.25, 9.0]])
    assert torch.allclose(top[0, 0], expected, atol=1e-6)
    impulse = torch.tensor([0.75, 0.75, 0.25, 0.0])  # [1, 0] along each axis
    assert torch.allclose(top[0, 1], impulse[:, None] * impulse[None, :])
    assert torch.count_nonzero(top[0, 2:]) == 0  # one group per channel
    # inside the border, the half-pixel bilinear resize of TensorFlow 2 and of PyTorch (align_corners=False)
    resized = torch.nn.functional.interpolate(x[:, :2], scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(top[:, :2, 1:-1, 1:-1], resized[:, :, 1:-1, 1:-1], atol=1e-6)


def test_densedepth_deploy_matches_opencv(tmp_path):
    # at 96x128 (sides multiples of 32, as the decoder's concatenations need), for the time
    height, width = 96, 128
    prototxt = os.path.join(DENSEDEPTH, "net_deploy.prototxt")
    net = random_weights(CaffeNet(prototxt, input_shapes={"X": (1, 3, height, width)}, fill=False), seed=5)
    generator = torch.Generator().manual_seed(0)
    for layer in net.layers:
        if layer.type_name == "Deconvolution":  # back to the fixed bilinear kernels
            layer.fill(generator)
    weights = str(tmp_path / "densedepth.caffemodel")
    net.save(weights)
    with open(prototxt, encoding="utf-8") as handle:
        text = handle.read()
    assert text.count("dim: 1 dim: 3 dim: 480 dim: 640") == 1
    small = tmp_path / "net_deploy_small.prototxt"
    small.write_text(text.replace("dim: 480 dim: 640", f"dim: {height} dim: {width}"), encoding="utf-8")
    x = np.random.default_rng(6).uniform(0, 1, (1, 3, height, width)).astype(np.float32)  # BGR / 255
    with torch.no_grad():
        ours = net({"X": x})["depth"].numpy()
    opencv = cv2.dnn.readNetFromCaffe(str(small), weights)
    opencv.setInput(x)
    theirs = opencv.forward("depth")
    assert ours.shape == theirs.shape == (1, 1, height // 2, width // 2)
    assert np.abs(theirs).max() > 0
    assert np.abs(ours - theirs).max() <= 1e-4 * np.abs(theirs).max()


def test_densedepth_training_net_reads_the_sized_databases_and_has_the_densedepth_loss(tmp_path):
    from eigen_depth.caffe import read_prototxt, read_solver
    path = os.path.join(DENSEDEPTH, "net_train.prototxt")
    param = read_prototxt(path)
    deploy = read_prototxt(os.path.join(DENSEDEPTH, "net_deploy.prototxt"))
    # the names by which eigen_depth.conventions picks DenseDepth's input and output
    assert param.name == "densedepth_train" and deploy.name == "densedepth_deploy"
    # batch statistics in training, running ones in deploy
    assert {layer.batch_norm_param.use_global_stats for layer in param.layer if layer.type == "BatchNorm"} == {False}
    assert {layer.batch_norm_param.use_global_stats for layer in deploy.layer if layer.type == "BatchNorm"} == {True}
    data = [layer for layer in param.layer if layer.type == "Data"]
    assert {layer.data_param.source for layer in data} == {
        "train_color_640x480", "train_depth_320x240", "test_color_640x480", "test_depth_320x240"}
    assert {layer.data_param.batch_size for layer in data} == {4}
    for layer in data:
        transform = layer.transform_param
        assert not transform.mean_value and not transform.HasField("mean_file")
        assert transform.scale == pytest.approx(1 / 255 if layer.top[0] == "X" else 10 / 255, rel=1e-5)
    (power,) = [layer for layer in param.layer if layer.type == "Power"]
    assert list(power.bottom) == ["depth-gt"] and list(power.top) == ["depth-gt-norm"]
    assert power.power_param.power == -1 and power.power_param.scale == pytest.approx(0.1)
    losses = [layer for layer in param.layer if layer.type == "DenseDepthLoss"]
    assert [list(layer.bottom) for layer in losses] == [["depth", "depth-gt-norm"]]
    # the graph builds in TRAIN with an Input layer in place of the databases, and gives a finite loss
    header, *layers = [line for line in densedepth_prototxt("train").splitlines()[1:] if '"Data"' not in line]
    inputs = ('layer { name: "inputs" type: "Input" top: "X" top: "depth-gt" input_param { shape { dim: 2 dim: 3 '
              'dim: 32 dim: 64 } shape { dim: 2 dim: 1 dim: 16 dim: 32 } } }')
    small = tmp_path / "net_train_inputs.prototxt"
    small.write_text("\n".join([header, inputs] + layers) + "\n", encoding="utf-8")
    net = CaffeNet(str(small), phase="TRAIN", fill=False)
    assert net.output_names == ["loss"]
    truth = np.random.default_rng(7).uniform(0.5, 10, (2, 1, 16, 32)).astype(np.float32)  # metres
    with torch.no_grad():
        blobs = net({"X": np.zeros((2, 3, 32, 64), np.float32), "depth-gt": truth}, keep_blobs=True)
    assert torch.allclose(blobs["depth-gt-norm"], torch.from_numpy(10 / truth), rtol=1e-5)
    assert torch.isfinite(blobs["loss"]) and blobs["loss"] > 0
    solver = read_solver(os.path.join(DENSEDEPTH, "solver.prototxt"))
    assert solver.net == "net_train.prototxt" and solver.type == "Adam" and solver.base_lr == pytest.approx(1e-4)
    assert solver.lr_policy == "fixed" and solver.weight_decay == 0


@pytest.mark.parametrize("family, color_size, depth_size", [("fcrn", (304, 228), (160, 128)),
                                                             ("densedepth", (640, 480), (320, 240))])
def test_each_training_net_reads_make_lmdbs_databases_at_its_sizes(tmp_path, family, color_size, depth_size):
    """make_lmdb --color-size/--depth-sizes at the family's sizes, read by the family's training prototxt: the
    colour arrives as BGR with the family's transform (FCRN: minus 104/117/123; DenseDepth: x 0.00392157) and a
    depth pixel of 102 as 102 x 0.0392157 = 4.0 m (DenseDepth's Power layer, tested above, makes it 10 m / d)."""
    from eigen_depth.data.paired_lmdb import make_lmdb
    from eigen_depth.data.settings import DataSettings
    pairs = tmp_path / "train"
    os.makedirs(pairs)
    bgr = np.random.default_rng(3).integers(0, 256, (color_size[1], color_size[0], 3), dtype=np.uint8)
    cv2.imwrite(str(pairs / "a_colors.png"), bgr)
    cv2.imwrite(str(pairs / "a_depth.png"), np.full((color_size[1], color_size[0]), 102, np.uint8))
    make_lmdb(pairs, tmp_path / "db", color_size=color_size, depth_sizes=[depth_size], shuffle=False, workers=1,
              progress=False, log=lambda *a: None)
    net = CaffeNet(os.path.join(PROTOTXT_ROOT, family, "net_train.prototxt"), phase="TRAIN", fill=False,
                   data=DataSettings(root=str(tmp_path / "db"), workers=0))
    depth_layer = next(layer.name for layer, tops in zip(net.layers, net.layer_tops) if "depth-gt" in tops)
    with torch.no_grad():  # the two Data layers only
        blobs = net({}, end=depth_layer, keep_blobs=True)
    pixels = bgr.transpose(2, 0, 1).astype(np.float32)
    expected = (pixels - np.array([104, 117, 123], np.float32)[:, None, None] if family == "fcrn"
                else pixels * np.float32(0.00392157))
    assert blobs["X"].shape[2:] == (color_size[1], color_size[0])
    for image in blobs["X"].numpy():  # one record, repeated to fill the batch as Caffe's cursor wraps around
        np.testing.assert_allclose(image, expected, rtol=1e-6, atol=1e-6)
    depth = blobs["depth-gt"].numpy()
    assert depth.shape[2:] == (depth_size[1], depth_size[0])
    np.testing.assert_allclose(depth, 102 * 0.0392157, rtol=1e-6)
