"""The successors' networks in eigen_depth/prototxt/ (docs/successors.md): FCRN's deploy net has the paper's
input and output sizes and parameter count, ResNet-50's public layer names, unpooling that puts each value at
the top-left of its 2x2 block, and OpenCV's numbers; its training net trains with the BerHu loss."""
import os

import cv2
import numpy as np
import pytest
import torch

from eigen_depth.net import CaffeNet
from eigen_depth.prototxt import ROOT as PROTOTXT_ROOT
from eigen_depth.prototxt.successors import fcrn_prototxt
from eigen_depth.testing import random_weights

FCRN = os.path.join(PROTOTXT_ROOT, "fcrn")


def test_the_shipped_fcrn_files_are_the_generators_output():
    for kind in ("deploy", "train"):
        with open(os.path.join(FCRN, f"net_{kind}.prototxt"), encoding="utf-8") as handle:
            assert handle.read() == fcrn_prototxt(kind), f"regenerate with python -m eigen_depth.prototxt.successors"


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
