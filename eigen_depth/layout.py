"""The memory layout of a net's convolutions on the CPU, chosen layer by layer: NCHW, channels-last (NHWC), or
Winograd's algorithm (eigen_depth.winograd: 3x3 and 5x5 convolutions of stride 1, on NCHW tiles).

Which layout runs a convolution faster depends on its shape and on the CPU. On a CPU with AVX2 only, oneDNN's
NHWC kernels lose to its blocked NCHW ones on large 5x5 convolutions (the thesis's gradient net), while
NHWC wins on the first convolutions and on the pooling after them. `LayoutTuner` times every convolution of
a model in each layout over its first equal batches, then the net with each in its fastest layout, and keeps
whichever whole net ran fastest; a layer converts its input to its layout (a copy only where two neighbours
differ). The values are the same up to float rounding: the order of the sums differs (Winograd's transforms
round more, eigen_depth.winograd).

Layouts, as the options name them: "nhwc" (channels-last everywhere), "nchw", "winograd" (Winograd's algorithm
where a convolution allows it, NCHW elsewhere), and "auto" (tuned: Winograd's algorithm among the candidates
unless told otherwise)."""
import time

import torch

from .errors import EigenDepthError

LAYOUTS = ("auto", "nhwc", "nchw", "winograd")
FORMATS = {"nhwc": torch.channels_last, "nchw": torch.contiguous_format, "winograd": torch.contiguous_format}


def convolutions(net):
    """The layers whose layout is chosen: those with a `memory_format` (Convolution, Deconvolution)."""
    return [layer for layer in net.layers if hasattr(layer, "memory_format")]


def check_options(layout, winograd):
    """Refuses a layout that is not one of LAYOUTS (ValueError), and the winograd layout with Winograd's
    algorithm turned off (one line)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    if layout == "winograd" and not winograd:
        raise EigenDepthError("--layout winograd asks for Winograd's algorithm and --no-winograd turns it off: "
                              "give one of them")


def winograd_eligible(layer):
    """Whether Winograd's algorithm can compute the layer (a Convolution of a shape it handles)."""
    return hasattr(layer, "winograd_eligible") and layer.winograd_eligible()


def apply(net, layouts, filters=None):
    """Puts each convolution in its layout: {layer name: "nhwc" | "nchw" | "winograd"}, or one layout for all
    ("winograd" is NCHW for a layer it cannot compute). Winograd's filters are made again from the weights as
    they are (after writing weights in a way torch does not count, through numpy or `.data`, apply again),
    unless `filters` ({layer name: winograd.Filters}) holds a layer's, made from these same weights; a layer's
    new ones are added to it."""
    for layer in convolutions(net):
        layout = layouts if isinstance(layouts, str) else layouts[layer.name]
        layer.memory_format = FORMATS[layout]
        layer.to(memory_format=FORMATS[layout])
        if hasattr(layer, "drop_winograd"):
            layer.drop_winograd()
        if layout == "winograd" and winograd_eligible(layer):
            layer.winograd = True
            # transformed now, not in the timed forward
            made = layer.winograd_filters(filters.get(layer.name) if filters is not None else None)
            if filters is not None:
                filters[layer.name] = made


# a frozen convolution of a training net runs by Winograd's algorithm when it has at least this many input and
# output channels per group: on the thesis's refining stage those are the global net's conv3-conv5 and the
# gradient net's conv2-conv4, where it was 1.5-2x faster; on the narrowest (conv5-grad, 2 outputs) the
# transforms cost more than they save
WINOGRAD_TRAINING_CHANNELS = 64


def winograd_where_frozen(net):
    """Turns Winograd's algorithm on for the convolutions of a training net that need no gradient (lr_mult 0
    and nothing to pass back: a frozen stage), are of a shape it computes and have at least
    WINOGRAD_TRAINING_CHANNELS input and output channels per group; returns their names. Chosen by their shapes,
    not timed, so that every run of a net, resumed or not, computes alike."""
    chosen = []
    for layer, needs in zip(net.layers, net.layer_needs_grad):
        if needs or not winograd_eligible(layer):
            continue
        out_channels, in_per_group = layer.blobs[0].shape[:2]
        if min(in_per_group, out_channels // layer.group) >= WINOGRAD_TRAINING_CHANNELS:
            layer.winograd = True
            chosen.append(layer.name)
    return chosen


def described(net, layouts):
    """{layer name: layout} with "winograd" only where a layer runs that way (else "nchw")."""
    by_name = {layer.name: layer for layer in convolutions(net)}
    return {name: "nchw" if layout == "winograd" and not winograd_eligible(by_name[name]) else layout
            for name, layout in layouts.items()}


class LayoutTuner:
    """Chooses the convolutions' layouts from the model's own first batches, while they are of one size:
    they run all-NHWC, all-NCHW, all-Winograd (where a convolution allows it), three rounds of the three (each
    layout's best time counts: the first call of a run also pays for warming up, and a third round makes the choice less
    a matter of chance on a busy machine), every convolution's segment timed; when the fastest layout differs
    between segments, one more runs each segment in its fastest. The fastest of the whole runs is kept, so a mixed
    net whose conversions between layouts cost more than they save is not. A convolution's segment is the
    convolution and the layers after it up to the next one (its ReLU, LRN and pooling run in the layout it leaves).
    A smaller batch ends the tuning with the best so far (channels-last when none was timed). winograd=False, or a
    net without a convolution Winograd's algorithm computes, leaves it out (four runs). clock: seconds (tests pass
    their own)."""
    TRIALS = ("nhwc", "nchw", "nhwc", "nchw")
    TRIALS_WINOGRAD = ("nhwc", "nchw", "winograd") * 3

    def __init__(self, net, clock=time.perf_counter, winograd=True):
        self.net, self.clock = net, clock
        self.names = [layer.name for layer in convolutions(net)]
        self.eligible = {layer.name for layer in convolutions(net) if winograd_eligible(layer)}
        if winograd and self.eligible:
            self.TRIALS = self.TRIALS_WINOGRAD
        self.segments = {}         # layout -> {convolution name: least seconds of its segment}
        self.totals = {}           # "nhwc" / "nchw" / "mixed" -> least seconds of a whole forward
        self.mixed = None          # {convolution name: layout}: each segment's faster layout
        self.batch = None
        self.calls = 0
        self.choice = None         # {convolution name: layout} once tuned
        self.filters = {}          # {convolution name: winograd.Filters} while tuning: the weights do not change
        apply(net, self.TRIALS[0])

    def run(self, forward, batch):
        """forward() for a batch of `batch` images, timed while the tuning lasts."""
        if self.choice is not None:
            return forward()
        if self.batch is None:
            self.batch = batch
        elif batch != self.batch:  # a smaller last batch: its times would not compare
            self._finish()
            return forward()
        if self.calls < len(self.TRIALS):
            layout = self.TRIALS[self.calls]
            apply(self.net, layout, self.filters)
            seconds = dict.fromkeys(self.names, 0.0)
            with _SegmentTimer(self.net, seconds, self.clock):
                result, total = self._timed(forward)
            if layout == "winograd":  # the others ran in NCHW: their times count for that layout only
                seconds = {name: value for name, value in seconds.items() if name in self.eligible}
            best = self.segments.setdefault(layout, seconds)
            for name, value in seconds.items():
                best[name] = min(best[name], value)
            self.totals[layout] = min(self.totals.get(layout, total), total)
            self.calls += 1
            if self.calls == len(self.TRIALS):
                self.mixed = choose(self.segments)
                mixed = described(self.net, self.mixed)
                if any(mixed == described(self.net, dict.fromkeys(self.names, layout)) for layout in self.segments):
                    self._finish()
            return result
        apply(self.net, self.mixed, self.filters)
        result, self.totals["mixed"] = self._timed(forward)
        self._finish()
        return result

    def _timed(self, forward):
        started = self.clock()
        result = forward()
        return result, self.clock() - started

    def _finish(self):
        best = min(self.totals, key=self.totals.get) if self.totals else self.TRIALS[0]
        choice = dict(self.mixed) if best == "mixed" else dict.fromkeys(self.names, best)
        self.choice = described(self.net, choice)
        apply(self.net, self.choice, self.filters)
        self.filters = {}

    def weights_changed(self):
        """Forgets the filters transformed so far (the net's weights were replaced: another snapshot)."""
        self.filters = {}


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
    """{layer: the layout in which it took least time} from {layout: {layer: seconds}}, over the layouts that
    timed the layer (ties: the first layout's)."""
    layouts = list(seconds)
    return {name: min((layout for layout in layouts if name in seconds[layout]),
                      key=lambda layout: (seconds[layout][name], layouts.index(layout)))
            for name in seconds[layouts[0]]}
