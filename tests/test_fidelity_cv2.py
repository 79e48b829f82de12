"""Every deploy net in eigen_depth/prototxt/ runs with OpenCV's numbers (one of each group of identical ones: a
family's loss variants share their deploy net): random weights saved as a caffemodel, then our
forward against cv2.dnn.readNetFromCaffe on the same files and input (max |difference| <= 1e-4 of the
output's largest magnitude). OpenCV puts MVN's eps inside the square root; with eps 1e-9 and outputs of
unit scale that changes nothing at this tolerance."""
import os

import cv2
import numpy as np
import pytest
import torch

from eigen_depth.caffe import read_prototxt
from eigen_depth.net import CaffeNet
from eigen_depth.testing import write_random_caffemodel
from eigen_depth.prototxt import ROOT as PROTOTXT_ROOT

from deploy_nets import DEPLOY_NETS, DISTINCT_DEPLOY_NETS, groups
from test_thesis_prototxt_cv2 import NETS  # (family, variant) -> output blob -> shape at batch 1 (the spec's)


def opencv_outputs(prototxt, weights, x, blob_names):
    """OpenCV's value of each named blob: asked for by the layer that produces it (OpenCV names some
    outputs after the layer, some after the top)."""
    producers = {}
    for layer in read_prototxt(prototxt).layer:
        for top in layer.top:
            producers[top] = layer.name
    net = cv2.dnn.readNetFromCaffe(prototxt, weights)
    known = set(net.getLayerNames())
    names = [producers[b] if producers[b] in known else b for b in blob_names]
    net.setInput(x)
    return dict(zip(blob_names, net.forward(names)))


def test_every_thesis_network_is_checked():
    families = {os.path.relpath(p, PROTOTXT_ROOT).split(os.sep)[0] for p in DEPLOY_NETS}
    assert families == {"global_context", "gradient", "joint", "refining"}
    assert len(DEPLOY_NETS) == 13
    # the global and refining nets' loss variants differ only in their training nets; every other net differs
    assert sorted(groups()) == sorted([
        ["global_context/abs", "global_context/log_abs", "global_context/norm", "global_context/sc_inv"],
        ["gradient/abs"], ["gradient/norm"], ["joint/A"], ["joint/B"],
        ["refining/abs", "refining/log_abs", "refining/norm_abs", "refining/sc_inv_abs"],
        ["refining/norm_abs_global_only"]])


@pytest.mark.parametrize("prototxt", DISTINCT_DEPLOY_NETS, ids=lambda p: "/".join(p.split(os.sep)[-3:-1]))
def test_deploy_net_matches_opencv(prototxt, tmp_path):
    weights = str(tmp_path / "random.caffemodel")
    write_random_caffemodel(prototxt, weights, seed=7)
    x = np.random.default_rng(11).uniform(-127, 128, (2, 3, 218, 298)).astype(np.float32)
    net = CaffeNet(prototxt, weights=weights)
    with torch.no_grad():
        ours = net({"X": x})
    theirs = opencv_outputs(prototxt, weights, x, net.output_names)
    family, variant = os.path.relpath(prototxt, PROTOTXT_ROOT).split(os.sep)[:2]
    assert {name: theirs[name].shape for name in NETS[family, variant]} == \
        {name: (2,) + shape[1:] for name, shape in NETS[family, variant].items()}  # OpenCV's shapes: the spec's
    for name in net.output_names:
        expected = theirs[name]
        assert ours[name].shape == expected.shape, name
        scale = np.abs(expected).max()
        assert scale > 0, name
        assert np.abs(ours[name].numpy() - expected).max() <= 1e-4 * scale, name
