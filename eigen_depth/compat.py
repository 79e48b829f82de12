"""pycaffe's names over eigen_depth, so a Caffe script ports with one import change:

    import eigen_depth.compat as caffe
    caffe.set_mode_cpu()
    net = caffe.Net("deploy.prototxt", "model.caffemodel", caffe.TEST)
    net.blobs["X"].data[...] = image_chw            # or: net.forward(X=batch)
    depth = net.forward()["depth-refine"]
    net.params["conv1"][0].data[...] = alexnet_conv1  # numpy views you can assign into

Differences from pycaffe: any batch size is accepted by forward(**inputs) (the input blob is resized);
on CUDA, `.data` of a blob is a copy whose item assignments are written back to the device.
"""
import os
from collections import OrderedDict

import numpy as np
import torch

from . import devices
from .caffe.schema import TEST, TRAIN
from .net import CaffeNet, parse_phase

__all__ = ["Net", "TRAIN", "TEST", "set_mode_cpu", "set_mode_gpu", "set_device", "io", "Blob", "get_solver",
           "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver", "AdaDeltaSolver", "AdamSolver"]

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


class Blob:
    """A named blob: `.data` and `.diff` as numpy arrays, `.shape`, `.count`, `.reshape(*shape)`."""

    def __init__(self, get_data, set_data, get_diff=None):
        self._get, self._set, self._get_diff = get_data, set_data, get_diff

    @property
    def data(self):
        return _host_view(self._get())

    @data.setter
    def data(self, value):
        tensor = self._get()
        with torch.no_grad():
            tensor.copy_(torch.as_tensor(np.asarray(value), dtype=tensor.dtype).reshape(tensor.shape))

    @property
    def diff(self):
        grad = self._get_diff() if self._get_diff else None
        return _host_view(grad) if grad is not None else np.zeros(self.shape, np.float32)

    @property
    def shape(self):
        return tuple(self._get().shape)

    @property
    def count(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def reshape(self, *shape):
        self._set(torch.zeros(tuple(int(d) for d in shape), dtype=torch.float32))

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


class Net:
    """pycaffe's Net: Net(prototxt, phase), Net(prototxt, weights, phase) or Net(prototxt, phase,
    weights=...). Extra keyword arguments: device ('cpu', 'cuda', 'auto'), level, stages."""

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
            self.net = CaffeNet(network_file, self.phase, level=level, stages=stages,
                                weights=weights).to(self.device)
        self._values = {}
        self._inputs = {name: torch.zeros(self.net.blob_shapes[name]) for name in self.net.input_names}
        self._loss = None
        self.blobs = OrderedDict((name, self._blob(name)) for name in self.net.blob_shapes)
        self.params = OrderedDict(
            (layer.name, [self._param_blob(layer, i) for i in range(len(layer.blobs))])
            for layer in self.net.layers if len(layer.blobs))

    def _blob(self, name):
        def get():
            if name in self._inputs:
                return self._inputs[name]
            if name not in self._values:
                self._values[name] = torch.zeros(self.net.blob_shapes[name], device=self.device)
            return self._values[name]

        def set_(tensor):
            if name in self._inputs:
                self._inputs[name] = tensor
            else:
                self._values[name] = tensor.to(self.device)

        def diff():
            value = self._values.get(name)
            return value.grad if value is not None and value.requires_grad else None
        return Blob(get, set_, diff)

    def _param_blob(self, layer, index):
        return Blob(lambda: layer.blobs[index].data, lambda tensor: layer.blobs[index].data.copy_(tensor),
                    lambda: layer.blobs[index].grad)

    @property
    def inputs(self):
        return list(self.net.input_names)

    @property
    def outputs(self):
        return [name for name in self.net.output_names]

    @property
    def layers(self):
        return list(self.net.layers)

    @property
    def _layer_names(self):
        return self.net.layer_names

    @property
    def layer_dict(self):
        return OrderedDict((layer.name, layer) for layer in self.net.layers)

    @property
    def top_names(self):
        return OrderedDict(zip(self.net.layer_names, self.net.layer_tops))

    @property
    def bottom_names(self):
        return OrderedDict(zip(self.net.layer_names, self.net.layer_bottoms))

    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """Runs the net (from layer `start` to layer `end`, default all) on the input blobs, set from
        kwargs first; returns {output: array} (the tops of `end` when given) plus blobs named in `blobs`."""
        for name, value in kwargs.items():
            if name not in self._inputs:
                raise KeyError(f"'{name}' is not an input of the net (inputs: {', '.join(self._inputs)})")
            self._inputs[name] = torch.as_tensor(np.ascontiguousarray(value, dtype=np.float32))
        want_grad = self.phase == TRAIN or self.net.net_param.force_backward
        feed = dict(self._inputs)
        if start is not None:
            feed.update(self._values)
        with torch.set_grad_enabled(want_grad):
            values = self.net.forward(feed, keep_blobs=True, start=start, end=end)
        self._loss = self.net.total_loss(values)
        if want_grad:
            for value in values.values():
                if value.requires_grad:
                    value.retain_grad()
        self._values.update((name, value) for name, value in values.items() if name not in self._inputs)
        outputs = self.outputs if end is None else self.net.layer_tops[self.net.layer_names.index(end)]
        names = list(outputs) + [b for b in (blobs or []) if b not in outputs]
        return {name: self.blobs[name].data for name in names}

    def backward(self, diffs=None, start=None, end=None, **kwargs):
        """Back-propagates the weighted loss of the last forward; fills params' and blobs' .diff."""
        if self._loss is None:
            raise RuntimeError("backward needs a forward pass of a net with loss layers in the TRAIN phase "
                               "(or force_backward: true)")
        for parameter in self.net.parameters():
            parameter.grad = None
        self._loss.backward()
        return {name: self.blobs[name].diff for name in (diffs or [])}

    def copy_from(self, weights):
        return self.net.copy_from(weights)

    def save(self, path):
        self.net.save(path)

    def reshape(self):
        """Rebuilds the layers for the input blobs' current shapes (pycaffe's net.reshape())."""
        self.net.reshape({name: tuple(t.shape) for name, t in self._inputs.items()})


class SGDSolver:
    """pycaffe's solver classes: SGDSolver(solver_prototxt) and its siblings force their update rule;
    get_solver() takes the file's `type`. `.net`, `.test_nets`, `.iter`, `.step(n)`, `.solve()`,
    `.snapshot()`, `.restore(solverstate)`. A net fed by Input layers trains on whatever its input
    blobs hold at each step, as in pycaffe."""

    TYPE = "SGD"

    def __init__(self, solver_file, device=None, feeder=None):
        from .solver import Solver
        self._solver = Solver(solver_file, device=resolve_device(device), solver_type=self.TYPE)
        self.net = Net(self._solver.net)
        self.test_nets = [Net(net) for net in self._solver.test_nets]
        if feeder is not None:
            self._solver.feeder = feeder
        elif self._solver.net.input_names:
            self._solver.feeder = lambda: dict(self.net._inputs)

    @property
    def iter(self):
        return self._solver.iter

    @property
    def param(self):
        return self._solver.param

    def step(self, iterations):
        self._solver.step(iterations)

    def solve(self, resume=None):
        self._solver.solve(resume)

    def snapshot(self):
        return self._solver.snapshot()

    def restore(self, solverstate):
        self._solver.restore(solverstate)


class NesterovSolver(SGDSolver):
    TYPE = "Nesterov"


class AdaGradSolver(SGDSolver):
    TYPE = "AdaGrad"


class RMSPropSolver(SGDSolver):
    TYPE = "RMSProp"


class AdaDeltaSolver(SGDSolver):
    TYPE = "AdaDelta"


class AdamSolver(SGDSolver):
    TYPE = "Adam"


def get_solver(solver_file, device=None, feeder=None):
    """The solver of the file's `type` (pycaffe's caffe.get_solver)."""
    from .caffe import read_solver
    kind = read_solver(solver_file).type
    classes = {cls.TYPE: cls for cls in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver,
                                         AdamSolver)}
    return classes[kind](solver_file, device, feeder)


class _IO:
    """pycaffe's caffe.io helpers used by the thesis's scripts."""

    @staticmethod
    def load_image(filename, color=True):
        """An image as float32 in [0, 1], H x W x 3 (or x 1 when color=False), as pycaffe reads it."""
        import skimage.io
        from skimage import img_as_float
        image = img_as_float(skimage.io.imread(os.fspath(filename), as_gray=not color)).astype(np.float32)
        if image.ndim == 2:
            image = image[:, :, np.newaxis]
            if color:
                image = np.tile(image, (1, 1, 3))
        elif image.shape[2] == 4:
            image = image[:, :, :3]
        return image

    @staticmethod
    def resize_image(image, new_dims, interp_order=1):
        """pycaffe's resize_image: H x W x K resized to new_dims (order 1 = bilinear, no anti-aliasing)."""
        import skimage.transform
        from scipy.ndimage import zoom
        if image.shape[-1] in (1, 3):
            low, high = image.min(), image.max()
            if high > low:
                normalized = (image - low) / (high - low)
                resized = skimage.transform.resize(normalized, tuple(new_dims), order=interp_order,
                                                   mode="constant", anti_aliasing=False)
                return resized * (high - low) + low
            out = np.empty((new_dims[0], new_dims[1], image.shape[-1]), dtype=np.float32)
            out.fill(low)
            return out
        scale = tuple(np.array(new_dims, dtype=float) / np.array(image.shape[:2]))
        return zoom(image, scale + (1,), order=interp_order).astype(np.float32)


io = _IO()
