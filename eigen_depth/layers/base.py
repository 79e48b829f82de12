"""The layer contract and the registry that maps Caffe type names to layer classes.

A layer knows its own Caffe semantics and nothing else: built from its LayerParameter, the shapes of
its bottom blobs and the phase, it checks its parameters, computes its top shapes (Caffe's
LayerSetUp + Reshape), creates its blobs in Caffe's order (weights first, then bias, ...), fills fresh
blobs from the prototxt's fillers, and maps bottom tensors to top tensors in `forward`. The net owns
the graph: blob names, in-place tops, splits, loss weights, which layers need gradients.
"""
import torch
from torch import nn

from ..caffe.schema import TEST, TRAIN
from ..errors import LayerError, ShapeError
from .fillers import fill as _fill

LAYER_TYPES = {}
# Types whose classes live outside this package, imported on first use (the data package needs LMDB, HDF5
# and the renderer, which a deploy net never does; Python layers need pycaffe's Blob).
DEFERRED_TYPES = {"Data": "eigen_depth.data.layers", "HDF5Data": "eigen_depth.data.layers",
                  "ImageData": "eigen_depth.data.layers", "MemoryData": "eigen_depth.data.layers",
                  "WindowData": "eigen_depth.data.layers", "HDF5Output": "eigen_depth.data.layers",
                  "Python": "eigen_depth.pycaffe.python_layer"}


def recording():
    """Whether a trace or an ONNX export is recording the forward: it must see the layers as written, not
    the shortcuts that are only faster."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def register(*type_names):
    """Class decorator: registers the layer class under Caffe type names ("Convolution", ...)."""
    def decorate(cls):
        for name in type_names:
            LAYER_TYPES[name] = cls
        cls.TYPE_NAMES = type_names
        return cls
    return decorate


def machine_memory_bytes():
    """The machine's physical memory (None where the platform does not say)."""
    import os
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(shape, what, itemsize=4, advice="check the sizes in the prototxt"):
    """ShapeError text (or None) when a float32 array of `shape` would not fit in the machine's memory."""
    import math
    count = math.prod(int(d) for d in shape)
    memory = machine_memory_bytes()
    if memory and count * itemsize > memory:
        return (f"{what} of shape {tuple(int(d) for d in shape)} needs {count * itemsize / 2**30:,.1f} GiB, more "
                f"than this machine's {memory / 2**30:,.1f} GiB: {advice}")
    return None


def layer_class(type_name, layer_name="?"):
    """The class registered for a Caffe type; LayerError listing the supported types otherwise."""
    if type_name not in LAYER_TYPES and type_name in DEFERRED_TYPES:
        import importlib
        importlib.import_module(DEFERRED_TYPES[type_name])  # registers its classes
    try:
        return LAYER_TYPES[type_name]
    except KeyError:
        raise LayerError(f"layer '{layer_name}': unknown layer type '{type_name}'; supported types: "
                         f"{', '.join(sorted(set(LAYER_TYPES) | set(DEFERRED_TYPES)))}") from None


class Layer(nn.Module):
    """Base of every Caffe layer (see the module docstring).

    Subclasses set BOTTOMS / TOPS (an int, or a (min, max) pair with max None for unbounded), and
    implement `setup(bottom_shapes) -> top_shapes` and `forward(*bottoms) -> tuple of tops`. Shapes are
    tuples of ints including the batch axis; forward must work for any batch size.
    """
    BOTTOMS = 1
    TOPS = 1
    IS_LOSS = False          # loss layers get loss_weight 1 on their first top by default
    READS_DATA = False       # source layers (Data, HDF5Data) read records themselves: see seek / close
    DRAWS_RANDOM = False     # layers that draw random numbers in forward take a `generator` from the net
    constant_tops = frozenset()  # source tops Caffe fills once at set-up and never refills (DummyData's constants)
    NEEDS_PHASE = False      # True for layers whose behaviour differs between TRAIN and TEST
    IN_PLACE = False         # forward(x, in_place=True) may overwrite x with the top (the net says when)
    NEW_TOPS = False         # forward's tops are always new tensors, never a bottom or a view of one
    TRAIN, TEST = TRAIN, TEST  # phase values, as in caffe.proto (the phase argument is one of these)

    def __init__(self, param, bottom_shapes, phase=TEST):
        super().__init__()
        self.param = param
        self.name = param.name
        self.type_name = param.type
        self.phase = phase
        self.blobs = nn.ParameterList()
        bottom_shapes = [tuple(int(d) for d in shape) for shape in bottom_shapes]
        self._check_count("bottom", len(bottom_shapes), self.BOTTOMS)
        self.bottom_shapes = bottom_shapes
        self.top_shapes = [tuple(s) for s in self.setup(bottom_shapes)]
        self._check_count("top", len(param.top) if len(param.top) else len(self.top_shapes), self.TOPS)

    pair_key = None          # source layers that must read in step share a key (the net checks them)

    def check_paired_with(self, other):
        """Source layers: raise when `other`, with the same pair_key, cannot be read in step with this one."""

    def seek(self, position):
        """Source layers: continue from `position` records consumed (by all processes). Others: nothing."""

    def close(self):
        """Source layers: stop background threads and close the source. Others: nothing."""

    def _check_count(self, what, count, rule):
        low, high = (rule, rule) if isinstance(rule, int) else rule
        if count < low or (high is not None and count > high):
            wanted = str(low) if low == high else f"{low} to {high}" if high is not None else f"at least {low}"
            raise self.error(f"takes {wanted} {what} blob(s), got {count}")

    # To implement ----------------------------------------------------------------------------
    def setup(self, bottom_shapes):
        """Checks parameters, creates blobs with add_blob, returns the top shapes."""
        raise NotImplementedError

    def forward(self, *bottoms):
        raise NotImplementedError

    def fill(self, generator, **options):
        """Initialises fresh blobs from the prototxt's fillers (default: leaves zeros). Options go to
        fillers.fill (bilinear="2016" or "2017")."""

    # Helpers for subclasses -----------------------------------------------------------------
    def add_blob(self, shape):
        """Appends a zero-filled float32 parameter blob of `shape` and returns it."""
        too_big = check_fits(shape, f"blob {len(self.blobs)}")
        if too_big:
            raise self.shape_error(too_big)
        blob = nn.Parameter(torch.zeros(tuple(int(d) for d in shape), dtype=torch.float32))
        self.blobs.append(blob)
        return blob

    def fill_blob(self, blob, filler_param, generator, **options):
        """Fills one blob with fillers.fill (options: bilinear=...), naming this layer in any error."""
        try:
            return _fill(blob, filler_param, generator, **options)
        except LayerError as exc:
            raise self.error(str(exc)) from None

    def num_tops(self, default):
        """How many tops the prototxt names, or `default` when it names none (layers built by hand)."""
        return len(self.param.top) or default

    def error(self, message, kind=LayerError):
        return kind(f"layer '{self.name}' ({self.type_name}): {message}")

    def shape_error(self, message):
        return self.error(message, ShapeError)

    def canonical_axis(self, axis, num_axes):
        """Caffe's CanonicalAxisIndex: negative axes count from the end; out of range is an error."""
        if not -num_axes <= axis < num_axes:
            raise self.shape_error(f"axis {axis} is out of range for a {num_axes}-axis blob")
        return axis % num_axes

    def extra_repr(self):
        return f"name={self.name!r}"


class NeuronLayer(Layer):
    """Caffe's NeuronLayer: one bottom and one top of the bottom's shape (the element-wise layers). Subclasses
    read and check their parameters in configure() and need no setup of their own."""

    def setup(self, bottom_shapes):
        self.configure()
        return bottom_shapes

    def configure(self):
        """Reads and checks the layer's parameters (default: it has none)."""
