"""Helpers shared by the layer tests: build one layer from its prototxt text, run it on numpy arrays,
give it random blobs, and gradcheck it in float64 over its bottoms and blobs."""
import numpy as np
import torch
from torch.func import functional_call

from eigen_depth.caffe import parse_text, schema
from eigen_depth.layers import layer_class


def make(text, bottom_shapes, phase=schema.TEST):
    param = parse_text(schema.LayerParameter, text)
    return layer_class(param.type)(param, bottom_shapes, phase)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def run(layer, *arrays):
    return [t.detach().numpy() for t in layer(*[torch.from_numpy(a) for a in arrays])]


def randomise(layer, seed=1):
    with torch.no_grad():
        for i, blob in enumerate(layer.blobs):
            blob.copy_(torch.from_numpy(rand(*blob.shape, seed=seed + i)))
    return [blob.detach().numpy().copy() for blob in layer.blobs]


def gradcheck_layer(layer, *inputs, blobs=True):
    """gradcheck in float64 over the bottoms and (unless blobs=False) every blob."""
    layer = layer.double()
    names = [f"blobs.{i}" for i in range(len(layer.blobs))] if blobs else []
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in inputs]
    params = [b.detach().clone().requires_grad_(True) for b in layer.blobs] if blobs else []

    def fn(*args):
        return functional_call(layer, dict(zip(names, args[len(tensors):])), tuple(args[:len(tensors)]))

    assert torch.autograd.gradcheck(fn, tuple(tensors) + tuple(params), eps=1e-6, atol=1e-5)
