"""What `eigen-depth info` prints: each layer's name, type, bottoms, tops and blob shapes."""
import numpy as np

from .caffe import blob_shape, read_caffemodel, read_net


def describe(path, weights_path=None):
    """A text table of the net at `path` (prototxt or caffemodel), with blob shapes taken from the
    layers' own blobs or, by layer name, from `weights_path`."""
    net = read_net(path)
    blobs = {layer.name: [blob_shape(b) for b in layer.blobs] for layer in net.layer if len(layer.blobs)}
    if weights_path:
        weights = read_caffemodel(weights_path)
        blobs.update({layer.name: [blob_shape(b) for b in layer.blobs]
                      for layer in weights.layer if len(layer.blobs)})
    rows = [("layer", "type", "bottoms -> tops", "blobs")]
    total = 0
    for layer in net.layer:
        shapes = blobs.get(layer.name, [])
        total += sum(int(np.prod(shape, dtype=np.int64)) for shape in shapes)
        rows.append((layer.name, layer.type, f"{', '.join(layer.bottom) or '-'} -> {', '.join(layer.top) or '-'}",
                     "  ".join("x".join(map(str, shape)) for shape in shapes)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{name:<{widths[0]}}  {kind:<{widths[1]}}  {flow:<{widths[2]}}  {shapes}".rstrip()
             for name, kind, flow, shapes in rows]
    title = f"{path}: net '{net.name}', {len(net.layer)} layers"
    if weights_path:
        title += f", weights from {weights_path}"
    lines.insert(0, title)
    lines.append(f"parameters: {total:,}" + ("" if blobs else " (no weights given: pass --weights)"))
    return "\n".join(lines)
