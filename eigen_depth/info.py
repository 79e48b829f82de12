"""What `eigen-depth info` prints: each layer's name, type, bottoms, tops, top shapes and blob shapes."""
import numpy as np

from .caffe import blob_shape, read_caffemodel, read_net
from .caffe.io import require_layers
from .errors import EigenDepthError


def _runtime_shapes(net, weights_path=None):
    """({layer: [blob shapes]}, {blob: shape}, None) from building the net (TEST phase) without weights,
    or (None, None, reason) when it cannot be built here (e.g. its data sources are absent). With
    weights_path, the weights must fit the net, as `time` and `predict` require (else their error)."""
    try:
        from .net import CaffeNet
        runtime = CaffeNet(net, "TEST", fill=False)
    except EigenDepthError as error:
        return None, None, str(error)
    if weights_path:
        runtime.copy_from(weights_path, strict=True)  # another net's weights: a one-line error
    params = {layer.name: [tuple(b.shape) for b in layer.blobs] for layer in runtime.layers if len(layer.blobs)}
    return params, runtime.blob_shapes, None


def _dims(shape):
    return "x".join(map(str, shape))


def describe(path, weights_path=None):
    """A text table of the net at `path` (prototxt or caffemodel). Blob shapes come from the layers' own
    blobs, by layer name from `weights_path`, or else from building the net."""
    net = require_layers(read_net(path), path, "nothing to describe")
    blobs = {layer.name: [blob_shape(b) for b in layer.blobs] for layer in net.layer if len(layer.blobs)}
    if weights_path:
        weights = read_caffemodel(weights_path)
        blobs.update({layer.name: [blob_shape(b) for b in layer.blobs]
                      for layer in weights.layer if len(layer.blobs)})
    built, tops, problem = _runtime_shapes(net, weights_path)
    origin = "weights" if blobs else "the net's definition"
    if not blobs and built:
        blobs = built
    rows = [("layer", "type", "bottoms -> tops", "top shapes", "blobs")]
    total = 0
    for layer in net.layer:
        shapes = blobs.get(layer.name, [])
        total += sum(int(np.prod(shape, dtype=object)) for shape in shapes)
        top_shapes = ", ".join(_dims(tops[t]) for t in layer.top if t in tops) if tops else ""
        rows.append((layer.name, layer.type, f"{', '.join(layer.bottom) or '-'} -> {', '.join(layer.top) or '-'}",
                     top_shapes, "  ".join(_dims(shape) for shape in shapes)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(f"{cell:<{width}}" for cell, width in zip(row[:4], widths)) + f"  {row[4]}"
             for row in rows]
    lines = [line.rstrip() for line in lines]
    title = f"{path}: net '{net.name}', {len(net.layer)} layers"
    if weights_path:
        title += f", weights from {weights_path}"
    lines.insert(0, title)
    note = f" (blob shapes from {origin})" if blobs else " (no blob shapes: pass --weights)"
    lines.append(f"parameters: {total:,}{note}")
    if problem and not blobs:
        lines.append(f"shapes unavailable: {problem}")
    return "\n".join(lines)
