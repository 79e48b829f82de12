"""The memory layout of a net's convolutions on the CPU, chosen layer by layer: NCHW or channels-last (NHWC).

Which layout runs a convolution faster depends on its shape and on the CPU. On a CPU with AVX2 only, oneDNN's
NHWC kernels lose to its blocked NCHW ones on large 5x5 convolutions (the thesis's gradient net), while
NHWC wins on the first convolutions and on the pooling after them. `LayoutTuner` times every convolution of
a model in both layouts over its first two equal batches and keeps the faster layout for each; a layer then
converts its input to its layout (a copy only where two neighbours differ). The values are the same up to
float rounding: the order of the sums differs.

Layouts, as the options name them: "nhwc" (channels-last everywhere), "nchw", and "auto" (tuned)."""
import time

import torch

LAYOUTS = ("auto", "nhwc", "nchw")
FORMATS = {"nhwc": torch.channels_last, "nchw": torch.contiguous_format}


def convolutions(net):
    """The layers whose layout is chosen: those with a `memory_format` (Convolution, Deconvolution)."""
    return [layer for layer in net.layers if hasattr(layer, "memory_format")]


def apply(net, layouts):
    """Puts each convolution in its layout: {layer name: "nhwc" | "nchw"}, or one layout for all."""
    for layer in convolutions(net):
        layout = layouts if isinstance(layouts, str) else layouts[layer.name]
        layer.memory_format = FORMATS[layout]
        layer.to(memory_format=FORMATS[layout])


class LayoutTuner:
    """Chooses each convolution's layout from the model's own first two batches: the first runs
    channels-last, the second (when it has as many images) NCHW; from the third on each convolution runs in
    the layout in which its segment took least time. A convolution's segment is the convolution and the
    layers after it up to the next one (its ReLU, LRN and pooling run in the layout it leaves). A run of one
    batch, or whose second batch is smaller, stays channels-last. clock: seconds (tests pass their own)."""
    ORDER = ("nhwc", "nchw")

    def __init__(self, net, clock=time.perf_counter):
        self.net, self.clock = net, clock
        self.seconds = {}          # layout -> {convolution name: seconds of its segment}
        self.batch = None
        self.choice = None         # {convolution name: layout} once tuned
        apply(net, self.ORDER[0])

    def run(self, forward, batch):
        """forward() for a batch of `batch` images, timed while the tuning lasts."""
        if self.choice is not None:
            return forward()
        if self.batch is None:
            self.batch = batch
        elif batch != self.batch:  # a smaller last batch: its times would not compare
            self.choice = {layer.name: self.ORDER[0] for layer in convolutions(self.net)}
            apply(self.net, self.choice)
            return forward()
        layout = self.ORDER[len(self.seconds)]
        apply(self.net, layout)
        self.seconds[layout] = {layer.name: 0.0 for layer in convolutions(self.net)}
        with _SegmentTimer(self.net, self.seconds[layout], self.clock):
            result = forward()
        if len(self.seconds) == len(self.ORDER):
            self.choice = choose(self.seconds)
            apply(self.net, self.choice)
        return result


class _SegmentTimer:
    """Adds each layer's time to the segment of the convolution that ran last ({name: seconds}); layers that
    run before any convolution count for none."""

    def __init__(self, net, seconds, clock):
        self.net, self.seconds, self.clock = net, seconds, clock
        self.segment = self.started = None
        self.hooks = []

    def _before(self, layer, inputs):
        if layer.name in self.seconds:
            self.segment = layer.name
        self.started = self.clock()

    def _after(self, layer, inputs, outputs):
        if self.segment is not None:
            self.seconds[self.segment] += self.clock() - self.started

    def __enter__(self):
        for layer in self.net.layers:
            self.hooks += [layer.register_forward_pre_hook(self._before), layer.register_forward_hook(self._after)]
        return self

    def __exit__(self, *exc):
        for hook in self.hooks:
            hook.remove()
        return False


def choose(seconds):
    """{layer: the layout in which it took least time} from {layout: {layer: seconds}} (ties: the first
    layout's)."""
    layouts = list(seconds)
    return {name: min(layouts, key=lambda layout: (seconds[layout][name], layouts.index(layout)))
            for name in seconds[layouts[0]]}
