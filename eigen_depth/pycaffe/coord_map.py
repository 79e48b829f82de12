"""pycaffe's `caffe.coord_map`: how the spatial coordinates of one NetSpec top map onto another's, through
convolution, pooling, deconvolution, crop and pass-through layers, and `crop(a, b)`, the Crop layer that aligns
`a` with `b` (as FCN's nets use it).

A layer maps a bottom coordinate x to a top coordinate a * x + b along every spatial axis after `axis`:
convolution and pooling a = 1 / stride, b = (pad - (k - 1) / 2) / stride, with k the dilated kernel extent;
deconvolution the inverse; crop a = 1, b = -offset; element-wise layers the identity."""
import numpy as np

from .net_spec import layers as L

PASS_THROUGH_LAYERS = ["AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log", "LRN", "Exp",
                       "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split", "TanH", "Threshold"]


class AxisMismatchException(Exception):
    """Two maps disagree on the first spatial axis."""


class UndefinedMapException(Exception):
    """The layer does not map coordinates (an inner product, a loss, ...)."""


def conv_params(fn):
    """(axis, stride, dilated kernel extent, pad) of a Convolution / Pooling / Deconvolution / Im2col call."""
    params = fn.params.get("convolution_param", fn.params)
    axis = params.get("axis", 1)
    kernel = np.array(params["kernel_size"], ndmin=1)
    dilation = np.array(params.get("dilation", 1), ndmin=1)
    legacy = {"pad_h", "pad_w", "kernel_h", "kernel_w", "stride_h", "stride_w"} & set(fn.params)
    assert not legacy, "coordinate mapping does not support the legacy _h/_w parameters"
    return (axis, np.array(params.get("stride", 1), ndmin=1), (kernel - 1) * dilation + 1,
            np.array(params.get("pad", 0), ndmin=1))


def crop_params(fn):
    params = fn.params.get("crop_param", fn.params)
    return params.get("axis", 2), np.array(params.get("offset", 0), ndmin=1)


def coord_map(fn):
    """(axis, a, b) of one layer call: top = a * bottom + b."""
    if fn.type_name in ("Convolution", "Pooling", "Im2col"):
        axis, stride, kernel, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (kernel - 1) / 2) / stride
    if fn.type_name == "Deconvolution":
        axis, stride, kernel, pad = conv_params(fn)
        return axis, stride, (kernel - 1) / 2 - pad
    if fn.type_name in PASS_THROUGH_LAYERS:
        return None, 1, 0
    if fn.type_name == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset  # the axis before the first cropped one, as for the others
    raise UndefinedMapException(fn.type_name)


def compose(base_map, next_map):
    """The map of `base_map` after `next_map`."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is None:
        ax = ax2
    elif ax2 is None or ax1 == ax2:
        ax = ax1
    else:
        raise AxisMismatchException(f"axis {ax1} vs {ax2}")
    return ax, a1 * a2, a1 * b2 + b1


def inverse(coord_map_):
    ax, a, b = coord_map_
    return ax, 1 / a, -b / a


def _mappable_bottoms(top):
    """The bottoms a walk follows: all of them, except for Crop, whose second bottom only gives sizes."""
    bottoms = top.fn.inputs
    return bottoms[:1] if top.fn.type_name == "Crop" else bottoms


def _walk(start, stop_at=None):
    """({top: map from that top to `start`}, the first top of `stop_at` reached or None), walking backwards
    through the layers that map coordinates."""
    maps, frontier = {start: (None, 1, 0)}, [start]
    while frontier:
        top = frontier.pop()
        if stop_at is not None and top in stop_at:
            return maps, top
        try:
            step = coord_map(top.fn)
        except UndefinedMapException:
            continue
        for bottom in _mappable_bottoms(top):
            maps[bottom] = compose(maps[top], step)
            frontier.append(bottom)
    return maps, None


def coord_map_from_to(top_from, top_to):
    """(axis, a, b) with coordinates of top_to = a * coordinates of top_from + b, through a common ancestor;
    RuntimeError when the two are not connected by spatial layers."""
    from_maps, _ = _walk(top_from)
    to_maps, common = _walk(top_to, stop_at=from_maps)
    if common is None:
        raise RuntimeError("Could not compute map between tops; are they connected by spatial layers?")
    return compose(to_maps[common], inverse(from_maps[common]))


def crop(top_from, top_to):
    """A Crop layer call that cuts top_from to the region aligned with top_to."""
    ax, a, b = coord_map_from_to(top_from, top_to)
    assert (a == 1).all(), f"scale mismatch on crop (a = {a})"
    assert (b <= 0).all(), f"cannot crop negative offset (b = {b})"
    assert (np.round(b) == b).all(), f"cannot crop noninteger offset (b = {b})"
    return L.Crop(top_from, top_to, crop_param=dict(axis=ax + 1, offset=list(-np.round(b).astype(int))))
