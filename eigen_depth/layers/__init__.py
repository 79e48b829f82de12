"""Caffe layers as torch modules, registered by Caffe type name (see base.py for the contract).

The data layers ("Data", "HDF5Data") are registered by eigen_depth.data.layers, which the net imports.
"""
from . import activations, common, losses, normalization, vision  # noqa: F401  (modules register on import)
from .base import LAYER_TYPES, Layer, layer_class, register
from .fillers import bilinear_kernel, fill

__all__ = ["LAYER_TYPES", "Layer", "layer_class", "register", "fill", "bilinear_kernel"]
