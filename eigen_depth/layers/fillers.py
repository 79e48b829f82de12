"""Caffe's weight fillers (filler.hpp): constant, gaussian, uniform, xavier, msra, positive_unitball, bilinear.

    fill(layer.blobs[0], param.convolution_param.weight_filler, generator)

Random numbers come from `generator` (a CPU torch.Generator, or None for torch's global one) and are
drawn on the CPU, so a seed gives the same weights on every device. Errors are LayerError naming the
filler; Layer.fill_blob adds the layer's name.
"""
import math

import numpy as np
import torch

from ..caffe.schema import FillerParameter
from ..errors import LayerError

FILLER_TYPES = ("constant", "gaussian", "uniform", "xavier", "msra", "positive_unitball", "bilinear")
BILINEAR_VERSIONS = ("2016", "2017")


def fill(tensor, filler_param, generator=None, bilinear="2016"):
    """Fills `tensor` in place as Caffe's filler `filler_param.type` would, and returns it.

    bilinear: "2016" (the formula of the thesis's Caffe, docs/specification.md section 2) or "2017" (Caffe after
    late 2017); only used by the bilinear filler.
    """
    kind = filler_param.type
    if kind not in FILLER_TYPES:
        raise LayerError(f"unknown filler type '{kind}'; supported: {', '.join(FILLER_TYPES)}")
    shape = tuple(tensor.shape)
    sparse = int(filler_param.sparse)
    if kind != "gaussian" and sparse != -1:
        raise LayerError(f"filler '{kind}' does not support 'sparse' (only gaussian does)")
    if kind == "constant":
        values = torch.full(shape, float(filler_param.value), dtype=torch.float64)
    elif kind == "uniform":
        values = _uniform(shape, filler_param.min, filler_param.max, generator)
    elif kind == "gaussian":
        values = _gaussian(shape, filler_param.mean, filler_param.std, generator)
        if sparse < -1:
            raise LayerError(f"gaussian filler: sparse must be >= -1, got {sparse}")
        if sparse >= 0:
            if len(shape) < 1:
                raise LayerError("gaussian filler: sparse needs a blob with at least one axis")
            keep = np.float32(sparse) / np.float32(shape[0])  # sparse non-zero inputs per output on average
            if keep > 1:
                raise LayerError(f"gaussian filler: sparse {sparse} exceeds the {shape[0]} outputs")
            mask = torch.rand(shape, generator=generator, dtype=torch.float64) < float(keep)
            values = values * mask
    elif kind in ("xavier", "msra"):
        n = _fan(shape, filler_param.variance_norm, kind)
        if kind == "xavier":
            limit = math.sqrt(3.0 / n)
            values = _uniform(shape, -limit, limit, generator)
        else:
            values = _gaussian(shape, 0.0, math.sqrt(2.0 / n), generator)
    elif kind == "positive_unitball":
        if len(shape) < 1 or shape[0] == 0 or int(np.prod(shape)) // shape[0] == 0:
            raise LayerError(f"positive_unitball filler needs a non-empty blob, got shape {shape}")
        values = torch.rand(shape, generator=generator, dtype=torch.float32).to(torch.float64)
        rows = values.reshape(shape[0], -1)
        values = (rows / rows.sum(dim=1, keepdim=True)).reshape(shape)
    else:
        values = torch.from_numpy(bilinear_kernel(shape, bilinear))
    with torch.no_grad():
        tensor.copy_(values.to(device=tensor.device, dtype=tensor.dtype))
    return tensor


def bilinear_kernel(shape, version="2016"):
    """Caffe's BilinearFiller for a 4-D blob (..., k, k): float32 array of `shape`, every channel alike.

    f = ceil(k/2); 2016: c = (2f - 1 - f % 2) / (2f); 2017: c = (k - 1) / (2f);
    w[y, x] = (1 - |x/f - c|) * (1 - |y/f - c|), x the column and y the row.
    """
    if version not in BILINEAR_VERSIONS:
        raise LayerError(f"bilinear filler: unknown version '{version}'; use one of {BILINEAR_VERSIONS}")
    if len(shape) != 4:
        raise LayerError(f"bilinear filler needs a 4-D blob, got shape {tuple(shape)}")
    if shape[2] != shape[3]:
        raise LayerError(f"bilinear filler needs a square kernel, got {shape[2]}x{shape[3]}")
    k = int(shape[3])
    f = math.ceil(k / 2.0)
    # Caffe computes c in double and stores it in a float; the rest is float arithmetic.
    c = np.float32((2 * f - 1 - f % 2) / (2.0 * f) if version == "2016" else (k - 1) / (2.0 * f))
    x = np.arange(k, dtype=np.float32)
    w = np.float32(1) - np.abs(x / np.float32(f) - c)
    kernel = (w[:, None] * w[None, :]).astype(np.float32)
    return np.broadcast_to(kernel, tuple(shape)).copy()


def _fan(shape, variance_norm, kind):
    """Caffe's n for xavier/msra: fan_in = count/shape[0], fan_out = count/shape[1] (legacy accessors)."""
    if len(shape) < 1 or shape[0] == 0:
        raise LayerError(f"{kind} filler needs a non-empty blob, got shape {tuple(shape)}")
    count = int(np.prod(shape))
    fan_in = count // shape[0]
    fan_out = count // (shape[1] if len(shape) > 1 else 1)
    if variance_norm == FillerParameter.AVERAGE:
        n = np.float32(fan_in + fan_out) / np.float32(2)
    elif variance_norm == FillerParameter.FAN_OUT:
        n = fan_out
    else:
        n = fan_in
    if n <= 0:
        raise LayerError(f"{kind} filler: fan of {n} for shape {tuple(shape)}")
    return float(n)


def _uniform(shape, low, high, generator):
    low, high = float(low), float(high)
    if low > high:
        raise LayerError(f"uniform filler: min {low} exceeds max {high}")
    values = torch.rand(shape, generator=generator, dtype=torch.float64)
    return low + (high - low) * values


def _gaussian(shape, mean, std, generator):
    if not std > 0:
        raise LayerError(f"gaussian filler: std must be positive, got {std}")
    values = torch.randn(shape, generator=generator, dtype=torch.float64)
    return float(mean) + float(std) * values
