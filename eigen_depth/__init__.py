"""eigen_depth: run, evaluate, train and export Caffe monocular depth networks on PyTorch.

`eigen_depth.caffe` (file formats) needs no torch; the runtime names below load torch on first use.
"""
__version__ = "0.1.0"

from . import allocator as _allocator

_allocator.configure()   # freed activations stay for the next forward (eigen_depth/allocator.py)

_LAZY = {
    "Net": ("compat", "Net"), "TRAIN": ("caffe.schema", "TRAIN"), "TEST": ("caffe.schema", "TEST"),
    "CaffeNet": ("net", "CaffeNet"), "set_mode_cpu": ("compat", "set_mode_cpu"),
    "set_mode_gpu": ("compat", "set_mode_gpu"), "set_device": ("compat", "set_device"),
}
__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    raise AttributeError(f"module 'eigen_depth' has no attribute '{name}'")
