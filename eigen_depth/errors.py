"""The project's exception types: each names the file, line or layer at fault and says what to do."""


class EigenDepthError(Exception):
    """Base of every error a user can cause; the CLI prints it as one line and exits with status 2."""


class PrototxtError(EigenDepthError):
    """A text-format file (prototxt, solver) that cannot be parsed or names unknown fields."""


class CaffemodelError(EigenDepthError):
    """A binary protobuf file (caffemodel, solverstate, binaryproto) that is truncated or corrupt."""


class ShapeError(EigenDepthError):
    """Shapes that do not fit: a layer's input, a weight blob, a network input."""


class LayerError(EigenDepthError):
    """A layer definition the runtime cannot build (unknown type, bad parameter, missing bottom)."""


class DatasetError(EigenDepthError):
    """Input data that is missing, unreadable or unpaired."""
