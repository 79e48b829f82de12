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

A third needs no chain: a layer that Caffe runs in place (a ReLU whose top is its bottom) overwrites its bottom
instead of making a new tensor, when the bottom is the new output of a layer that always makes one
(`plan_in_place`) and, as the net checks while it runs, no other blob shares its memory. The values are the
same bits, one pass over memory and one allocation fewer.

The net applies them only where nothing can tell the difference: no gradient is needed, every blob inside an
affine chain is read by the next layer alone (or is overwritten in place), and the chain lies wholly inside
the layers being run. `CaffeNet.fuse = False` (or the tools' --no-fuse) runs every layer separately, in
Caffe's order.
"""
import torch

AFFINE_TYPES = ("BatchNorm", "Scale")


class AffineChain:
    """Layers first..last of a net: per-channel affine layers, the last possibly a ReLU."""

    def __init__(self, first, layers, in_place):
        self.first, self.last = first, first + len(layers) - 1
        self.relu = layers[-1] if layers[-1].type_name == "ReLU" else None
        self.affine_layers = layers[:-1] if self.relu is not None else layers
        self.in_place = in_place  # every top of the chain has one name: nothing outside sees the steps

    def __call__(self, x):
        a = b = None  # the chain as y = x * a + b per channel, from its layers' current blobs
        for layer in self.affine_layers:
            scale, shift = layer.channel_affine()
            a = scale if a is None else a * scale
            b = shift if b is None else (b * scale if shift is None else torch.addcmul(shift, b, scale))
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
    writers, readers = {}, {}
    for index, (ins, outs) in enumerate(zip(bottoms, tops)):
        for name in ins:
            readers.setdefault(name, []).append(index)
        for name in outs:
            writers.setdefault(name, []).append(index)

    def links(index):
        """Whether layer index + 1 takes layer index's only top as its only bottom, and that value (until the
        next layer that writes the name) is read by nothing else and is not a net output."""
        nxt = index + 1
        if not (nxt < len(layers) and len(tops[index]) == 1 and bottoms[nxt] == tops[index] and len(tops[nxt]) == 1):
            return False
        blob = tops[index][0]
        later = [w for w in writers[blob] if w > index]
        until = later[0] if later else len(layers) - 1
        return ([i for i in readers[blob] if index < i <= until] == [nxt]) and (bool(later) or blob not in outputs)

    def affine(index):  # static: BatchNorm's use_global_stats and Scale's form are fixed by set-up
        return (layers[index].type_name in AFFINE_TYPES and len(bottoms[index]) == 1
                and len(shapes[bottoms[index][0]]) >= 2 and layers[index].channel_affine() is not None)

    chains, index = {}, 0
    while index < len(layers):
        start = index
        if affine(index):
            index += 1
            while index < len(layers) and affine(index) and links(index - 1):
                index += 1
            if index < len(layers) and layers[index].type_name == "ReLU" and links(index - 1):
                index += 1
        if index - start >= 2:
            inner = {name for i in range(start, index) for name in tops[i] + (bottoms[i] if i > start else [])}
            chains[start] = AffineChain(start, layers[start:index], in_place=len(inner) == 1)
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


def plan_in_place(layers, bottoms, tops):
    """The indices of the layers that may overwrite their bottom: they can (IN_PLACE), Caffe runs them in
    place (one bottom, which is their top), and that value was written by a layer whose tops are always new
    tensors (NEW_TOPS), not fed or a view of another blob."""
    writer, chosen = {}, set()
    for index, (layer, ins, outs) in enumerate(zip(layers, bottoms, tops)):
        if layer.IN_PLACE and len(ins) == 1 and list(outs) == list(ins) and ins[0] in writer \
                and layers[writer[ins[0]]].NEW_TOPS:
            chosen.add(index)
        for top in outs:
            writer[top] = index
    return chosen
