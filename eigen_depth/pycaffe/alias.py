"""Makes `import caffe` and its submodules resolve to eigen_depth.pycaffe in this process (the runner does
this; importing eigen_depth alone never does)."""
import importlib
import sys

SUBMODULES = ("io", "proto", "proto.caffe_pb2", "net_spec", "coord_map", "draw", "classifier", "detector",
              "pycaffe")


class _Finder:
    """Resolves `caffe.<name>` on first import to `eigen_depth.pycaffe.<name>`."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if not fullname.startswith("caffe."):
            return None
        import importlib.util
        own = "eigen_depth.pycaffe." + fullname[len("caffe."):]
        if own == "eigen_depth.pycaffe.pycaffe":
            own = "eigen_depth.pycaffe"
        try:
            module = importlib.import_module(own)
        except ModuleNotFoundError:
            return None
        sys.modules[fullname] = module
        return importlib.util.spec_from_loader(fullname, _Loaded(module))


class _Loaded:
    def __init__(self, module):
        self.module = module

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        pass


def install():
    package = importlib.import_module("eigen_depth.pycaffe")
    sys.modules["caffe"] = package
    for name in ("io", "proto", "proto.caffe_pb2"):
        sys.modules[f"caffe.{name}"] = importlib.import_module(f"eigen_depth.pycaffe.{name}")
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
