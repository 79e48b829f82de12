"""Caffe layers as torch modules, registered by Caffe type name (see base.py for the contract).

The data layers ("Data", "HDF5Data") live in eigen_depth.data.layers; the registry imports it the first time a
net asks for one of those types (base.DEFERRED_TYPES).
"""
from . import activations, common, losses, normalization, recurrent, vision  # noqa: F401  (modules register on import)
from .base import LAYER_TYPES, Layer, layer_class, register
from .fillers import bilinear_kernel, fill

__all__ = ["LAYER_TYPES", "Layer", "layer_class", "register", "fill", "bilinear_kernel"]
