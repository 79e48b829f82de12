"""pycaffe on eigen_depth: the names of BVLC Caffe's `caffe` Python module with pycaffe's semantics.

    python -m eigen_depth.pycaffe script.py [args]     # an unmodified pycaffe program: `import caffe` works
    python -m eigen_depth.pycaffe -m module [args]
    import eigen_depth.pycaffe as caffe                  # or in your own code

Only the runner makes `import caffe` (and caffe.io, caffe.proto.caffe_pb2, caffe.net_spec, caffe.coord_map,
caffe.draw, caffe.classifier, caffe.detector) resolve here; other programs keep whatever `caffe` they have.
"""
import random

import numpy as np

from ..caffe.schema import TEST, TRAIN
from ..errors import EigenDepthError
from . import io
from .net import Blob, Net, resolve_device, set_device, set_mode_cpu, set_mode_gpu

__version__ = "1.0.0"  # the pycaffe API level this follows


class PycaffeUnsupported(EigenDepthError):
    """A pycaffe feature eigen_depth does not offer (the message names it)."""


def layer_type_list():
    """The Caffe layer types this runtime builds, sorted."""
    from ..layers.base import DEFERRED_TYPES, LAYER_TYPES
    return sorted(set(LAYER_TYPES) | set(DEFERRED_TYPES))


def set_random_seed(seed):
    """Seeds the generators fillers and dropout fall back on (Caffe's set_random_seed)."""
    import torch
    torch.manual_seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    random.seed(int(seed))


def has_nccl():
    """Whether NCCL multi-GPU training is built in: never (eigen_depth trains on several GPUs with torchrun)."""
    return False


def init_log(*args, **kwargs):
    """Caffe's glog set-up: nothing to do here."""


def log(message):
    print(message)


class SGDSolver:
    """pycaffe's solver classes: SGDSolver(solver_prototxt) and its siblings force their update rule;
    get_solver() takes the file's `type`. `.net`, `.test_nets`, `.iter`, `.step(n)`, `.solve()`,
    `.apply_update()`, `.snapshot()`, `.restore(solverstate)`. A net fed by Input layers trains on whatever its
    input blobs hold at each step, as in pycaffe."""

    TYPE = "SGD"

    def __init__(self, solver_file, device=None, feeder=None):
        from ..solver import Solver
        # every convolution directly: pycaffe's arrays write into the weights where torch sees no change, so
        # filters transformed for Winograd's algorithm could go stale
        self._solver = Solver(solver_file, device=resolve_device(device), solver_type=self.TYPE, winograd=False)
        self.net = Net(self._solver.net)
        self.test_nets = [Net(net) for net in self._solver.test_nets]
        if feeder is not None:
            self._solver.feeder = feeder
        elif self._solver.net.input_names:
            self._solver.feeder = lambda: {name: self.net.blobs[name].data.copy() for name in self.net.inputs}

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

    def apply_update(self):
        """One update from the diffs the parameters hold now (pycaffe's ApplyUpdate; the iteration stays)."""
        self._solver.apply_update()

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
    from ..caffe import read_solver
    kind = read_solver(solver_file).type
    classes = {cls.TYPE: cls for cls in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver,
                                         AdamSolver)}
    return classes[kind](solver_file, device, feeder)


def __getattr__(name):
    """Submodules and names that import more than a script may need: proto, net_spec, coord_map, draw,
    classifier, detector, and NetSpec / layers / params / to_proto / Classifier / Detector / Layer."""
    import importlib
    if name in ("proto", "net_spec", "coord_map", "draw", "classifier", "detector"):
        return importlib.import_module(f"{__name__}.{name}")
    lazy = {"NetSpec": "net_spec", "layers": "net_spec", "params": "net_spec", "to_proto": "net_spec",
            "Classifier": "classifier", "Detector": "detector", "Layer": "python_layer"}
    if name in lazy:
        return getattr(importlib.import_module(f"{__name__}.{lazy[name]}"), name)
    raise AttributeError(f"module 'caffe' (eigen_depth.pycaffe) has no attribute '{name}'")


__all__ = ["Net", "Blob", "TRAIN", "TEST", "io", "set_mode_cpu", "set_mode_gpu", "set_device", "set_random_seed",
           "has_nccl", "layer_type_list", "get_solver", "SGDSolver", "NesterovSolver", "AdaGradSolver",
           "RMSPropSolver", "AdaDeltaSolver", "AdamSolver", "resolve_device", "init_log", "log"]
