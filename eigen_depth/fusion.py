"""Inference fusion, two rewrites of how a net's layers run that leave their results as Caffe's:

- A chain of per-channel affine layers (BatchNorm with its stored statistics, Scale with one value per
  channel), optionally ended by a ReLU, runs as one multiply-add over the data and one in-place activation
  instead of a pass (and a new tensor) per operation (ResNet's Convolution -> BatchNorm -> Scale -> ReLU,
  DenseNet's BatchNorm -> Scale -> ReLU -> Convolution). The result equals the layer-by-layer one up to
  float32 rounding: x * (g / s) + (b - m * g / s) instead of ((x - m) / s) * g + b, as OpenCV's dnn and
  torch's batch_norm compute it.
- A chain of Concat layers along the channels, each appending to the previous one's output (a DenseNet
  block), fills one buffer: each Concat copies only its new channels and its top is a view of the filled
  part. The values are the same bits.

The net applies them only where nothing can tell the difference: no gradient is needed, every blob inside an
affine chain is read by the next layer alone (or is overwritten in place), and the chain lies wholly inside
the layers being run. `CaffeNet.fuse = False` (or the tools' --no-fuse) runs every layer separately, in
Caffe's order.
"""
import torch

AFFINE_TYPES = ("BatchNorm", "Scale")


class AffineChain:
    """Layers first..last of a net: affine layers, then possibly a ReLU."""

    def __init__(self, first, layers, relu, in_place):
        self.first, self.layers, self.relu = first, layers, relu
        self.last = first + len(layers) + (relu is not None) - 1
        self.in_place = in_place  # every top of the chain has one name: nothing outside sees the steps

    def affine(self):
        """The chain's (a, b): y = x * a + b per channel; None when a layer is not affine right now
        (a BatchNorm using the batch's statistics)."""
        a = b = None
        for layer in self.layers:
            step = layer.channel_affine()
            if step is None:
                return None
            scale, shift = step
            a = scale if a is None else a * scale
            b = shift if b is None else (b * scale if shift is None else torch.addcmul(shift, b, scale))
        return a, b

    def __call__(self, x, affine):
        a, b = affine
        shape = (-1,) + (1,) * (x.dim() - 2)
        y = x * a.view(shape) if b is None else torch.addcmul(b.view(shape), x, a.view(shape))
        if self.relu is not None:
            if self.relu.negative_slope == 0:
                y.clamp_min_(0)
            else:
                torch.nn.functional.leaky_relu_(y, self.relu.negative_slope)
        return y


def plan(layers, bottoms, tops, shapes, outputs):
    """{index of a chain's first layer: AffineChain} for the net's layers (the lists of its bottoms and tops);
    shapes: {blob: shape}; outputs: the net's output blobs."""
    writers = {}
    for index, names in enumerate(tops):
        for name in names:
            writers.setdefault(name, []).append(index)

    def only_reader(blob, writer, reader):
        """Whether the value `writer` gives `blob` is read by `reader` alone (and is not a net output)."""
        later = [w for w in writers[blob] if w > writer]
        until = later[0] if later else len(layers) - 1
        readers = [i for i in range(writer + 1, until + 1) if blob in bottoms[i]]
        return readers == [reader] and (bool(later) or blob not in outputs)

    def links(index):
        """Whether layer index + 1 takes layer index's only top as its only bottom, unseen by others."""
        nxt = index + 1
        return (nxt < len(layers) and len(tops[index]) == 1 and bottoms[nxt] == tops[index]
                and len(tops[nxt]) == 1 and only_reader(tops[index][0], index, nxt))

    chains, index = {}, 0
    while index < len(layers):
        start = index
        while (layers[index].type_name in AFFINE_TYPES and len(bottoms[index]) == 1
               and len(shapes[bottoms[index][0]]) >= 2 and layers[index].channel_affine() is not None
               and (index == start or links(index - 1))):
            index += 1
            if index == len(layers):
                break
        affine = layers[start:index]
        relu = None
        if affine and index < len(layers) and layers[index].type_name == "ReLU" and links(index - 1):
            relu = layers[index]
            index += 1
        if len(affine) + (relu is not None) >= 2:
            inner = {name for i in range(start, index) for name in tops[i] + (bottoms[i] if i > start else [])}
            chains[start] = AffineChain(start, affine, relu, in_place=len(inner) == 1)
        index = max(index, start + 1)
    return chains


class ConcatChain:
    """Concat layers along the channels, each appending to the previous one's output (DenseNet's blocks):
    one buffer of the last one's size, the first Concat copying both its bottoms and each later one only
    its new channels, where joining anew copies every earlier channel again."""

    def __init__(self, first, channels):
        self.first, self.last, self.channels = first, first, channels


def plan_concats(layers, bottoms, tops, shapes):
    """{index of a Concat in a chain: (ConcatChain, channels before its new bottom, channels after)}."""
    steps, writer = {}, {}
    for index, layer in enumerate(layers):
        if layer.type_name == "Concat" and len(bottoms[index]) == 2 and getattr(layer, "axis", None) == 1:
            first, new = bottoms[index]
            before, after = shapes[first][1], shapes[tops[index][0]][1]
            previous = writer.get(first)
            chain = steps[previous][0] if previous in steps else None
            if chain is not None and chain.last == previous and first != new:
                chain.last, chain.channels = index, after
            else:
                chain = ConcatChain(index, after)
            steps[index] = (chain, before, after)
        for top in tops[index]:
            writer[top] = index
    return {index: step for index, step in steps.items() if step[0].last > step[0].first}
