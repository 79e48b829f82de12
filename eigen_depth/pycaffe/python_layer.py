"""Caffe's Python layers: `type: "Python"` with `python_param { module layer param_str }` runs a subclass of
`caffe.Layer` whose setup / reshape / forward / backward work on Blob objects (numpy `data` and `diff`), as in
pycaffe. The layer's own learnable blobs (`self.blobs.add_blob(...)`) are parameters of the net: saved in
caffemodels, shared and updated like any other."""
import importlib

import numpy as np
import torch

from ..layers.base import Layer as _TorchLayer
from ..layers.base import register
from .net import Blob, ParamBlob


class Layer:
    """Base of a Python layer. Override setup(bottom, top), reshape(bottom, top), forward(bottom, top) and
    backward(top, propagate_down, bottom); `param_str`, `phase` and `blobs` are set before setup."""

    param_str = ""
    phase = None

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        raise NotImplementedError(f"{type(self).__name__}: a Python layer must define forward(bottom, top)")

    def backward(self, top, propagate_down, bottom):
        pass


class BlobVec(list):
    """A Python layer's learnable blobs: add_blob(*shape) makes a parameter of the net."""

    def __init__(self, owner):
        super().__init__()
        self._owner = owner

    def add_blob(self, *shape):
        parameter = self._owner.add_blob(tuple(int(d) for d in shape))
        self.append(ParamBlob(parameter))
        return self[-1]


class _Bridge(torch.autograd.Function):
    """Runs the Python layer's numpy forward and backward inside torch's autograd."""

    @staticmethod
    def forward(ctx, layer, *inputs):
        ctx.layer = layer
        return tuple(layer._forward_numpy(inputs))

    @staticmethod
    def backward(ctx, *grads):
        return (None,) + tuple(ctx.layer._backward_numpy(grads))


@register("Python")
class PythonLayer(_TorchLayer):
    """The torch side of a Python layer (see the module docstring)."""
    BOTTOMS = (0, None)
    TOPS = (0, None)
    NEEDS_PHASE = True

    def setup(self, bottom_shapes):
        pp = self.param.python_param
        try:
            module = importlib.import_module(pp.module)
            cls = getattr(module, pp.layer)
        except (ImportError, AttributeError) as error:
            raise self.error(f"python_param: cannot load layer '{pp.layer}' from module '{pp.module}' ({error}); "
                             f"is the module on PYTHONPATH?") from None
        self.instance = cls()
        self.instance.param_str = pp.param_str
        self.instance.phase = self.phase
        self.instance.blobs = BlobVec(self)
        self.bottom = [Blob(shape) for shape in bottom_shapes]
        self.top = [Blob(()) for _ in range(len(self.param.top))]
        self.instance.setup(self.bottom, self.top)
        self.instance.reshape(self.bottom, self.top)
        return [blob.shape for blob in self.top]

    def _forward_numpy(self, inputs):
        for blob, tensor in zip(self.bottom, inputs):
            array = tensor.detach().to("cpu", torch.float32).numpy()
            blob.reshape(*array.shape)
            blob.data[...] = array
        self.instance.reshape(self.bottom, self.top)
        self.instance.forward(self.bottom, self.top)
        device = inputs[0].device if inputs else self.blobs[0].device if len(self.blobs) else torch.device("cpu")
        return [torch.from_numpy(np.array(blob.data, dtype=np.float32)).to(device) for blob in self.top]

    def _backward_numpy(self, grads):
        for blob, grad in zip(self.top, grads):
            blob.diff[...] = 0 if grad is None else grad.detach().to("cpu", torch.float32).numpy().reshape(blob.shape)
        for blob in self.bottom:
            blob.diff[...] = 0
        self.instance.backward(self.top, [True] * len(self.bottom), self.bottom)
        device = grads[0].device if grads else torch.device("cpu")
        return [torch.from_numpy(blob.diff.copy()).to(device) for blob in self.bottom]

    def forward(self, *bottoms):
        if not bottoms:
            # no bottom to carry a graph: run directly (a source layer written in Python)
            return tuple(self._forward_numpy(bottoms))
        return _Bridge.apply(self, *bottoms)
