"""pycaffe's Net over a CaffeNet, with Caffe's blob semantics: every blob holds a `data` and a `diff` array
that stay the same arrays while their shape stays the same (so arrays a script holds stay live), `forward`
writes the tops into them, and `backward` reads the top diffs a script set (or the loss weights) and writes
the bottom diffs, accumulating the parameters' diffs until `clear_param_diffs`, as Caffe does.

The layers run on torch; each layer's backward is its own autograd graph from the last forward (or, when a
script calls backward without one, a forward of that layer on the blobs' current data), and a blob read by
several layers gets the sum of their diffs, as Caffe's Split layers give it.
"""
import os
from collections import OrderedDict

import numpy as np
import torch

from .. import devices
from ..caffe.schema import TEST, TRAIN
from ..net import CaffeNet, parse_phase

_MODE = {"gpu": False, "device_id": 0}


def set_mode_cpu():
    _MODE["gpu"] = False


def set_mode_gpu():
    _MODE["gpu"] = True


def set_device(device_id):
    _MODE["device_id"] = int(device_id)


def resolve_device(device=None):
    """A torch.device from 'auto', 'cpu', 'cuda', 'cuda:1', None (pycaffe's mode: set_mode_gpu /
    set_device) or a device; a GPU torch cannot see is a DeviceError (also a RuntimeError)."""
    if device is None:
        device = f"cuda:{_MODE['device_id']}" if _MODE["gpu"] else "cpu"
    return devices.resolve_device(device)


class Blob:
    """A blob: `.data` and `.diff` (float32 arrays, C order), `.shape`, `.count`, `.reshape(*shape)` and the
    legacy `.num`, `.channels`, `.height`, `.width`."""

    def __init__(self, shape=()):
        self._data = np.zeros(tuple(int(d) for d in shape), np.float32)
        self._diff = np.zeros_like(self._data)

    @property
    def data(self):
        return self._data

    @property
    def diff(self):
        return self._diff

    @property
    def shape(self):
        return tuple(self._data.shape)

    @property
    def count(self):
        return int(self._data.size)

    def reshape(self, *shape):
        """New shape: new zeroed arrays when the shape changes (Caffe reallocates), the same arrays otherwise."""
        shape = tuple(int(d) for d in (shape[0] if len(shape) == 1 and not np.isscalar(shape[0]) else shape))
        if shape != self.shape:
            self._data = np.zeros(shape, np.float32)
            self._diff = np.zeros(shape, np.float32)

    def _store(self, tensor):
        """Writes a computed top into data (reshaping when its shape changed)."""
        array = tensor.detach().to("cpu", torch.float32).numpy()
        self.reshape(*array.shape)
        self._data[...] = array

    @property
    def num(self):
        return self.shape[0]

    @property
    def channels(self):
        return self.shape[1]

    @property
    def height(self):
        return self.shape[2]

    @property
    def width(self):
        return self.shape[3]


class ParamBlob:
    """A learnable blob: `.data` and `.diff` are views of the parameter and of its gradient (written through
    to the device when the net is on a GPU)."""

    def __init__(self, parameter):
        self._parameter = parameter

    @property
    def data(self):
        return _host_view(self._parameter)

    @property
    def diff(self):
        parameter = self._parameter
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        return _host_view(parameter.grad)

    @property
    def shape(self):
        return tuple(self._parameter.shape)

    @property
    def count(self):
        return int(self._parameter.numel())

    def reshape(self, *shape):
        raise ValueError("a learnable blob keeps the shape its layer gave it (pycaffe cannot reshape it either)")

    num = Blob.num
    channels = Blob.channels
    height = Blob.height
    width = Blob.width


class _WriteThrough(np.ndarray):
    """A host copy of a device tensor: item assignments are copied back to the device."""

    def __array_finalize__(self, obj):
        self._tensor = getattr(obj, "_tensor", None)
        self._root = getattr(obj, "_root", None)

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        root = self._root if self._root is not None else self
        if self._tensor is not None:
            with torch.no_grad():
                self._tensor.copy_(torch.from_numpy(np.asarray(root)))


def _host_view(tensor):
    tensor = tensor.detach()
    if tensor.device.type == "cpu":
        return tensor.numpy()
    array = tensor.cpu().numpy().view(_WriteThrough)
    array._tensor, array._root = tensor, array
    return array


class LayerView:
    """What pycaffe's `net.layers[i]` shows: `.type` (the Caffe type name), `.blobs` (ParamBlobs) and the
    torch module as `.module`."""

    def __init__(self, module):
        self.module = module
        self.type = module.type_name
        self.name = module.name
        self.blobs = [ParamBlob(p) for p in module.blobs]

    def __repr__(self):
        return f"<{self.type} layer '{self.name}'>"


class Net:
    """pycaffe's Net: Net(prototxt, phase), Net(prototxt, weights, phase) or Net(prototxt, phase,
    weights=...); level and stages as in pycaffe; device ('cpu', 'cuda', 'auto'; default pycaffe's mode)."""

    def __init__(self, network_file, *args, weights=None, phase=None, level=0, stages=(), device=None):
        for arg in args:
            if isinstance(arg, (str, os.PathLike)):
                weights = arg
            else:
                phase = arg
        if isinstance(network_file, CaffeNet):  # a view of an existing net (a solver's)
            self.net, self.phase, self.device = network_file, network_file.phase, network_file.device
        else:
            self.phase = parse_phase(TEST if phase is None else phase)
            self.device = resolve_device(device)
            self.net = CaffeNet(os.fspath(network_file), self.phase, level=level, stages=stages,
                                weights=os.fspath(weights) if weights else None).to(self.device)
        self._tape = {}
        self._build_views()
        self._fill_constant_sources()

    # Structure ----------------------------------------------------------------------------------
    def _build_views(self):
        net = self.net
        self.blobs = OrderedDict(
            (name, self.blobs[name] if name in getattr(self, "blobs", {}) and self.blobs[name].shape == tuple(shape)
             else Blob(shape)) for name, shape in net.blob_shapes.items())
        self.layers = [LayerView(layer) for layer in net.layers]
        self.params = OrderedDict((view.name, view.blobs) for view in self.layers if view.blobs)
        self.blob_loss_weights = OrderedDict((name, net.loss_weight(name)) for name in net.blob_shapes)
        for name, weight in self.blob_loss_weights.items():
            if weight:  # Caffe seeds backward with each loss top's diff = its loss weight
                self.blobs[name].diff[...] = weight
        self._versions()

    def _versions(self):
        """(blob, version) of every layer's bottoms and tops: a layer writing a blob makes a new version, so
        in-place chains and blobs read by several layers get their diffs right."""
        current, self._bottom_versions, self._top_versions = {}, [], []
        for bottoms, tops in zip(self.net.layer_bottoms, self.net.layer_tops):
            self._bottom_versions.append([(b, current.get(b, 0)) for b in bottoms])
            for top in tops:
                current[top] = current.get(top, 0) + 1
            self._top_versions.append([(t, current[t]) for t in tops])

    def _fill_constant_sources(self):
        """Layers with tops Caffe fills once (DummyData's constants) run now; forward never refills those."""
        with torch.no_grad():
            for index, layer in enumerate(self.net.layers):
                if layer.constant_tops:
                    for top, value in zip(self.net.layer_tops[index], layer()):
                        self.blobs[top]._store(value)

    @property
    def inputs(self):
        return list(self.net.input_names)

    @property
    def outputs(self):
        return list(self.net.output_names)

    @property
    def _layer_names(self):
        return list(self.net.layer_names)

    @property
    def _blob_names(self):
        return list(self.blobs)

    @property
    def layer_dict(self):
        return OrderedDict(zip(self._layer_names, self.layers))

    @property
    def top_names(self):
        return OrderedDict((name, list(tops)) for name, tops in zip(self.net.layer_names, self.net.layer_tops))

    @property
    def bottom_names(self):
        return OrderedDict((name, list(b)) for name, b in zip(self.net.layer_names, self.net.layer_bottoms))

    def _index(self, layer, default):
        if layer is None:
            return default
        try:
            return self.net.layer_names.index(layer)
        except ValueError:
            raise KeyError(f"the net has no layer '{layer}'") from None

    # Running --------------------------------------------------------------------------------------
    def _reshape_if_needed(self):
        """Caffe reshapes every layer at forward: input blobs a script reshaped rebuild the net."""
        wanted = {name: self.blobs[name].shape for name in self.net.input_names}
        if any(tuple(self.net.blob_shapes[name]) != shape for name, shape in wanted.items()):
            self.reshape()

    def reshape(self):
        """Rebuilds the layers for the input blobs' current shapes (pycaffe's net.reshape())."""
        self.net.reshape({name: self.blobs[name].shape for name in self.net.input_names})
        self._tape = {}
        self._build_views()

    def _tensor(self, name):
        return torch.from_numpy(self.blobs[name].data.copy()).to(self.device)

    def _run_layer(self, index, record):
        layer = self.net.layers[index]
        bottoms = self.net.layer_bottoms[index]
        tops = self.net.layer_tops[index]
        if layer.type_name == "Input":
            return
        inputs = [self._tensor(b) for b in bottoms]
        needs = record and self.net.layer_needs_grad[index]
        if needs:
            inputs = [t.requires_grad_(True) for t in inputs]
        with torch.set_grad_enabled(bool(needs)):
            outputs = layer(*inputs)
        if needs:
            self._tape[index] = (inputs, outputs)
        for position, (top, value) in enumerate(zip(tops, outputs)):
            if position not in layer.constant_tops:
                self.blobs[top]._store(value)

    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """Runs the layers from `start` to `end` (names; default all) on the blobs' data, after setting the
        input blobs given as keywords; returns {blob: data} for the outputs (the tops of `end`) and `blobs`."""
        for name, value in kwargs.items():
            if name not in self.net.input_names:
                raise KeyError(f"'{name}' is not an input of the net (inputs: {', '.join(self.net.input_names)})")
            value = np.asarray(value, dtype=np.float32)
            self.blobs[name].reshape(*value.shape)
            self.blobs[name].data[...] = value
        self._reshape_if_needed()
        first, last = self._index(start, 0), self._index(end, len(self.net.layers) - 1)
        record = self.phase == TRAIN or self.net.net_param.force_backward
        for index in range(first, last + 1):
            self._tape.pop(index, None)
            self._run_layer(index, record)
        outputs = self.outputs if end is None else self.net.layer_tops[last]
        names = list(outputs) + [b for b in (blobs or []) if b not in outputs]
        return {name: self.blobs[name].data for name in names}

    def backward(self, diffs=None, start=None, end=None, **kwargs):
        """Back-propagates from layer `start` (default the last) down to `end` (default the first), from the
        top diffs in the blobs (set the outputs' diffs as keywords); writes bottom diffs and adds to the
        parameters' diffs. Returns {blob: diff} for the net's inputs (the bottoms of `end`) and `diffs`."""
        for name, value in kwargs.items():
            if name not in self.net.output_names:
                raise KeyError(f"'{name}' is not an output of the net (outputs: {', '.join(self.outputs)})")
            self.blobs[name].diff[...] = np.asarray(value, dtype=np.float32)
        first, last = self._index(end, 0), self._index(start, len(self.net.layers) - 1)
        pending = {}
        for index in range(last, first - 1, -1):
            if not self.net.layer_needs_grad[index] or self.net.layers[index].type_name == "Input":
                continue
            if index not in self._tape:
                self._run_layer(index, record=True)
            inputs, outputs = self._tape[index]
            grads_out = []
            for (top, version), output in zip(self._top_versions[index], outputs):
                diff = pending.pop((top, version), None)
                if diff is None:
                    diff = torch.from_numpy(self.blobs[top].diff.copy()).to(output.device, output.dtype)
                grads_out.append(diff.reshape(output.shape))
            pairs = [(o, g) for o, g in zip(outputs, grads_out) if o.requires_grad]
            params = [p for p in self.net.layers[index].blobs if p.requires_grad]
            wanted = [t for t in inputs if t.requires_grad] + params
            if not pairs or not wanted:
                continue
            grads = torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True,
                                        retain_graph=True)
            bottom_grads = iter(grads[:len(wanted) - len(params)])
            detach = self.net.layer_detach[index]
            for (bottom, version), tensor, skip in zip(self._bottom_versions[index], inputs, detach):
                if not tensor.requires_grad:
                    continue
                grad = next(bottom_grads)
                if skip or grad is None:
                    continue
                key = (bottom, version)
                pending[key] = grad if key not in pending else pending[key] + grad
                self.blobs[bottom].diff[...] = pending[key].detach().cpu().numpy().reshape(self.blobs[bottom].shape)
            for parameter, grad in zip(params, grads[len(wanted) - len(params):]):
                if grad is None:
                    continue
                if parameter.grad is None:
                    parameter.grad = torch.zeros_like(parameter)
                parameter.grad.add_(grad)
        outputs = self.inputs if end is None else self.net.layer_bottoms[first]
        names = list(dict.fromkeys(list(outputs) + list(diffs or [])))
        return {name: self.blobs[name].diff for name in names}

    def forward_all(self, blobs=None, **kwargs):
        """forward() over inputs of any length, in batches of the input blobs' first axis; returns the
        outputs (and `blobs`) concatenated, as pycaffe does."""
        results = {name: [] for name in list(self.outputs) + list(blobs or [])}
        total = len(next(iter(kwargs.values()))) if kwargs else 0
        batch = self.blobs[self.inputs[0]].shape[0] if self.inputs else 1
        for begin in range(0, total, batch):
            chunk = {name: np.asarray(value)[begin:begin + batch] for name, value in kwargs.items()}
            out = self.forward(blobs=blobs, **chunk)
            for name, value in out.items():
                results.setdefault(name, []).append(value.copy())
        return {name: np.concatenate(parts) for name, parts in results.items() if parts}

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        """forward_all and backward over the whole input, batch by batch: (outputs, input diffs)."""
        forward_in = {k: v for k, v in kwargs.items() if k in self.inputs}
        backward_in = {k: v for k, v in kwargs.items() if k in self.outputs}
        outputs, grads = {}, {}
        total = len(next(iter(forward_in.values()))) if forward_in else 0
        batch = self.blobs[self.inputs[0]].shape[0] if self.inputs else 1
        for begin in range(0, total, batch):
            out = self.forward(blobs=blobs, **{k: np.asarray(v)[begin:begin + batch] for k, v in forward_in.items()})
            back = self.backward(diffs=diffs, **{k: np.asarray(v)[begin:begin + batch]
                                                 for k, v in backward_in.items()})
            for store, values in ((outputs, out), (grads, back)):
                for name, value in values.items():
                    store.setdefault(name, []).append(value.copy())
        return ({k: np.concatenate(v) for k, v in outputs.items()}, {k: np.concatenate(v) for k, v in grads.items()})

    def clear_param_diffs(self):
        """Zeroes every parameter's diff in place (the arrays a script holds see it)."""
        for layer in self.net.layers:
            for parameter in layer.blobs:
                if parameter.grad is not None:
                    parameter.grad.zero_()

    def set_input_arrays(self, data, labels):
        """pycaffe's set_input_arrays: hands C-contiguous float32 arrays, data (M, C, H, W) and labels (M) or
        (M, 1, 1, 1), to the first layer, which must be a MemoryData layer; M a multiple of its batch size.
        The net reads them in place, batch_size rows per forward, from the start again after the last."""
        first = self.net.layers[0] if len(self.net.layers) else None
        if first is None or first.type_name != "MemoryData":
            raise RuntimeError("set_input_arrays may only be called if the first layer is a MemoryData layer")
        for name, array in (("data", data), ("labels", labels)):
            if not (isinstance(array, np.ndarray) and array.flags.c_contiguous):
                raise RuntimeError(f"set_input_arrays: {name} must be a C-contiguous numpy array "
                                   f"(np.ascontiguousarray)")
        first.reset(data, labels)  # the layer takes labels (M,) or (M, 1, 1, 1)

    # Weights --------------------------------------------------------------------------------------
    def copy_from(self, weights):
        """Copies a caffemodel's blobs by layer name into the existing parameters (held arrays stay live)."""
        before = [p for layer in self.net.layers for p in layer.blobs]
        saved = [p.detach().clone() for p in before]
        report = self.net.copy_from(os.fspath(weights))
        for parameter, old in zip(before, saved):  # copy_from may have swapped storage: copy back in place
            value = parameter.detach().clone()
            parameter.data = old
            with torch.no_grad():
                parameter.copy_(value)
        return report

    def share_with(self, other):
        """Uses `other`'s parameters for the layers the two nets share by name (Caffe's ShareTrainedLayersWith)."""
        theirs = {layer.name: layer for layer in other.net.layers}
        for layer in self.net.layers:
            source = theirs.get(layer.name)
            if source is not None:
                for index in range(min(len(layer.blobs), len(source.blobs))):
                    layer.blobs[index] = source.blobs[index]
        self._build_views()

    def save(self, path):
        self.net.save(os.fspath(path))

    def save_hdf5(self, path):
        """The weights as HDF5 in Caffe's layout: data/<layer>/<index> (written atomically)."""
        import h5py

        from ..atomic import atomic_write
        with atomic_write(os.fspath(path)) as raw, h5py.File(raw, "w") as handle:
            for name, blobs in self.params.items():
                group = handle.create_group(f"data/{name}")
                for index, blob in enumerate(blobs):
                    group.create_dataset(str(index), data=np.array(blob.data))

    def load_hdf5(self, path):
        import h5py
        with h5py.File(os.fspath(path), "r") as handle:
            for name, blobs in self.params.items():
                for index, blob in enumerate(blobs):
                    blob.data[...] = handle[f"data/{name}/{index}"][()]
