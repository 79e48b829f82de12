"""The inference core shared by the evaluator, `predict` and the export: a snapshot (caffemodel with its deploy
prototxt) loaded as a CaffeNet on a device, the output blob chosen, and the net's convention (how images
become its input and its output depth, eigen_depth.conventions) taken from the prototxt's name."""
import gc
import os
import re
from dataclasses import dataclass

import numpy as np

from . import conventions
from .constants import DEPTH_BLOBS, GRADIENT_BLOB, INPUT_BLOB
from .devices import exact_float32
from .errors import DatasetError, EigenDepthError, LayerError, ShapeError, warn

_ITERATION = re.compile(r"^(?P<prefix>.*?)_iter_(?P<iteration>\d+)$")


@dataclass
class Snapshot:
    """A `<name>.caffemodel` and the deploy `<name>.prototxt` beside it."""
    name: str
    caffemodel: str
    prototxt: str

    @property
    def iteration(self):
        match = _ITERATION.match(self.name)
        return int(match.group("iteration")) if match else None

    @property
    def series(self):
        """The name without `_iter_N` (snapshots of one training run share it)."""
        match = _ITERATION.match(self.name)
        return match.group("prefix") if match else self.name


class Model:
    """A snapshot's CaffeNet on a device: predict(float32 (N, 3, h, w)) -> float32 numpy (N, C, oh, ow);
    `convention`: its input and output conventions by the net's name."""

    def __init__(self, net, input_name, output_name, device, tuner=None, dtype=None):
        import torch
        self.net, self.input_name, self.output_name, self.device = net, input_name, output_name, device
        self.dtype = dtype or torch.float32  # what the net computes in (float32, or bfloat16 with bf16=True)
        self.tuner = tuner      # eigen_depth.layout.LayoutTuner while the convolutions' layouts are chosen
        self.convention = conventions.of_net(net.net_param.name)
        shape = net.blob_shapes[input_name]
        self.input_size = (int(shape[2]), int(shape[3]))
        self.output_shape = tuple(int(d) for d in net.blob_shapes[output_name][1:])
        self._keep = output_name not in net.output_names

    def predict(self, batch):
        import torch
        with torch.no_grad(), exact_float32(self.device):
            tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, self.dtype)

            def forward():
                return self.net({self.input_name: tensor}, keep_blobs=self._keep)
            blobs = forward() if self.tuner is None else self.tuner.run(forward, len(batch))
            return blobs[self.output_name].detach().to("cpu", torch.float32).contiguous().numpy()


def choose_output(net, requested, kind):
    """The blob to evaluate: --output-blob, else `depth-refine` / `depth` (test_depth, get_depth) or
    `gradient` (test_grad) among the net's outputs, else its only output."""
    outputs = list(net.output_names)
    if requested:
        if requested not in net.blob_shapes:
            raise LayerError(f"{net.source}: has no blob '{requested}' (outputs: {', '.join(outputs)})")
        name = requested
    else:
        preferred = (GRADIENT_BLOB,) if kind == "gradient" else DEPTH_BLOBS
        name = next((b for b in preferred if b in outputs), None)
        if name is None and len(outputs) == 1:
            name = outputs[0]
        if name is None:
            raise LayerError(f"{net.source}: cannot tell which output to evaluate among {', '.join(outputs)}: "
                             f"name it with --output-blob")
    shape = tuple(net.blob_shapes[name])
    channels = 2 if kind == "gradient" else 1
    if len(shape) != 4 or shape[1] != channels:
        raise ShapeError(f"{net.source}: blob '{name}' has shape {shape}; a {kind} map needs (N, {channels}, H, W)"
                         f"{'' if requested else ' (choose another with --output-blob)'}")
    return name


def build_deploy_net(prototxt):
    """A deploy prototxt as a TEST-phase CaffeNet without fillers, in eval mode: weights come next (copy_from)."""
    from .caffe import read_net
    from .net import CaffeNet
    return CaffeNet(read_net(prototxt), phase="TEST", source=os.fspath(prototxt), fill=False).eval()


def load_model(snapshot, device, output_blob=None, kind="depth", cache=None, fuse=True, layout="auto",
               winograd=True, bf16=False):
    """Builds the snapshot's deploy net in the TEST phase, loads its weights (every layer with weights must
    find them in the caffemodel: a mismatching prototxt is an error, not random weights) and moves it to
    `device`. Raises EigenDepthError with a one-line reason. cache: a ModelLoader whose last net is reused
    when the prototxt is the same (only the weights are replaced, the layouts chosen so far are kept).
    fuse: CaffeNet's (eigen_depth.fusion). layout: the convolutions' memory layout (eigen_depth.layout);
    winograd: whether "auto" may choose Winograd's algorithm. bf16: the net computes in bfloat16 (weights and
    activations; the output comes back as float32), about 1e-2 of the output's magnitude from float32."""
    import torch

    from .caffe.io import read_text
    if not os.path.isfile(snapshot.prototxt):
        raise DatasetError(f"no {os.path.basename(snapshot.prototxt)} beside {os.path.basename(snapshot.caffemodel)} "
                           f"(the deploy definition it was trained with)")
    check_precision(layout, bf16)
    dtype = torch.bfloat16 if bf16 else torch.float32
    key = (read_text(snapshot.prototxt), str(device), bool(bf16))
    net = cache.net if cache is not None and cache.key == key else None
    tuner = cache.tuner if net is not None else None
    if net is None:
        if cache is not None:
            cache.key = cache.net = cache.tuner = None
        net = build_deploy_net(snapshot.prototxt)
        inputs = list(net.input_names)
        if INPUT_BLOB not in inputs and len(inputs) != 1:
            raise ShapeError(f"{snapshot.prototxt}: needs one image input (named {INPUT_BLOB}), has {inputs or 'none'}")
        shape = tuple(net.blob_shapes[INPUT_BLOB if INPUT_BLOB in inputs else inputs[0]])
        if len(shape) != 4 or shape[1] != 3:
            raise ShapeError(f"{snapshot.prototxt}: input has shape {shape}, not (N, 3, H, W)")
        net.eval()
        net.to(device, dtype)  # bfloat16 blobs before the weights come: each is rounded as it is copied in
        if bf16:
            warn_bfloat16(torch.device(device))
    name = choose_output(net, output_blob, kind)
    net.fuse = fuse
    if cache is not None:
        cache.key = None          # until the weights are in
    # copied, not shared with the file's map: aligned floats make batch-1 inner products 2x faster. The parsed
    # file is held by reference cycles until a collection: collected now, the pages read leave memory.
    net.copy_from(snapshot.caffemodel, strict=True, share=False)
    gc.collect()
    tuner = _set_layouts(net, device, layout, tuner, winograd and not bf16)
    if cache is not None:
        cache.key, cache.net, cache.tuner = key, net, tuner
    inputs = list(net.input_names)
    return Model(net, INPUT_BLOB if INPUT_BLOB in inputs else inputs[0], name, device, tuner, dtype)


def check_precision(layout, bf16):
    """Refuses --layout winograd with --bf16 (Winograd's algorithm computes in float32 only), in one line."""
    if bf16 and layout == "winograd":
        raise EigenDepthError("--layout winograd computes in float32 and --bf16 in bfloat16: give one of them")


def warn_bfloat16(device):
    """A one-line warning when --bf16 runs on a device that only emulates bfloat16 (slower than float32)."""
    from .devices import native_bfloat16
    if not native_bfloat16(device):
        warn(f"--bf16 on {device}: this {'GPU' if device.type == 'cuda' else 'CPU'} has no bfloat16 arithmetic "
             f"(AVX-512 BF16 or AMX on a CPU), so torch emulates it, more slowly than float32: leave --bf16 out")


def _set_layouts(net, device, layout, tuner, winograd=True):
    """Puts the convolutions in `layout`; for "auto" on the CPU returns the LayoutTuner that chooses (the one
    given, when the net is reused), elsewhere channels-last (NHWC), as "auto" was before it was tuned."""
    from . import layout as layouts
    layouts.check_options(layout, winograd)
    if layout != "auto" or getattr(device, "type", str(device)) != "cpu":
        layouts.apply(net, "nhwc" if layout == "auto" else layout)
        return None
    if tuner is None:
        return layouts.LayoutTuner(net, winograd=winograd)
    tuner.weights_changed()
    if tuner.choice is not None:  # the weights were copied into the blobs as they were: this only makes sure
        layouts.apply(net, tuner.choice)
    return tuner


class ModelLoader:
    """The default loader of a run: load_model keeping the last net, so that snapshots of one training run
    (same prototxt) build it once."""

    def __init__(self, fuse=True, layout="auto", winograd=True, bf16=False):
        from .layout import check_options
        check_options(layout, winograd)  # before any snapshot is read
        check_precision(layout, bf16)
        self.key = self.net = self.tuner = None
        self.fuse, self.layout, self.winograd, self.bf16 = fuse, layout, winograd, bf16

    def __call__(self, snapshot, device, output_blob=None, kind="depth"):
        return load_model(snapshot, device, output_blob, kind, cache=self, fuse=self.fuse, layout=self.layout,
                          winograd=self.winograd, bf16=self.bf16)

