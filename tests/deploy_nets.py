"""The thesis's deploy nets in eigen_depth/prototxt/, and one of each different net among them: a family's loss
variants share their deploy net (the loss is only in net_train.prototxt), so the tests that run every deploy net
(OpenCV's numbers, the ONNX export) run one of each, and a test checks which ones are the same."""
import glob
import os

from eigen_depth.caffe import read_prototxt
from eigen_depth.prototxt import ROOT as PROTOTXT_ROOT

DEPLOY_NETS = sorted(glob.glob(os.path.join(PROTOTXT_ROOT, "*", "*", "net_deploy.prototxt")))


def variant_of(path):
    """'family/variant' of a deploy prototxt."""
    return "/".join(os.path.relpath(path, PROTOTXT_ROOT).split(os.sep)[:2])


def layers_of(path):
    """What a deploy net computes: its parsed layers and inputs, without its name (comments are not parsed)."""
    param = read_prototxt(path)
    param.ClearField("name")
    return param.SerializeToString()


def groups():
    """The deploy nets grouped by what they compute: [[family/variant, ...], ...] in DEPLOY_NETS' order."""
    found = {}
    for path in DEPLOY_NETS:
        found.setdefault(layers_of(path), []).append(variant_of(path))
    return list(found.values())


DISTINCT_DEPLOY_NETS = [next(p for p in DEPLOY_NETS if variant_of(p) == group[0]) for group in groups()]
