"""pycaffe's names over eigen_depth (kept for scripts that import this module): the same objects as
`eigen_depth.pycaffe`, which `python -m eigen_depth.pycaffe script.py` makes `import caffe` resolve to.

    import eigen_depth.compat as caffe
    net = caffe.Net("deploy.prototxt", "model.caffemodel", caffe.TEST)
    net.blobs["X"].data[...] = image_chw
    depth = net.forward()["depth-refine"]
"""
from .pycaffe import *  # noqa: F401,F403
from .pycaffe import __all__  # noqa: F401
from .pycaffe import io, resolve_device  # noqa: F401
