"""Reading and writing Caffe's files: prototxt (text), caffemodel / solverstate / binaryproto (binary).

Binary files are memory-mapped copy-on-write by default: weight arrays are views into the mapping
(no copy, writable, pages read on first touch). Every writer writes a temporary file and renames it.
"""
import math
import mmap
import os

import numpy as np

from ..atomic import atomic_write
from ..errors import CaffemodelError, EigenDepthError, PrototxtError
from . import schema
from .text_format import parse_text, to_text
from .upgrade import upgrade_net, upgrade_solver
from .wire import decode_message, encode_chunks

TEXT_EXTENSIONS = (".prototxt", ".pbtxt", ".pt", ".txt", ".solver")
BINARY_EXTENSIONS = (".caffemodel", ".solverstate", ".binaryproto", ".pb", ".protobin")


def _file_problem(path, error):
    if isinstance(error, FileNotFoundError):
        return f"{path}: no such file"
    if isinstance(error, IsADirectoryError):
        return f"{path}: is a folder, not a file"
    if isinstance(error, PermissionError):
        return f"{path}: permission denied"
    return f"{path}: cannot read: {error.strerror or error}"


def read_bytes(path, use_mmap=True):
    """The file's content as a buffer: a private copy-on-write mapping, or one bytearray."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                return b""
            if use_mmap:
                return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
            buffer = bytearray(size)
            handle.readinto(buffer)
            return buffer
    except OSError as error:
        raise CaffemodelError(_file_problem(path, error)) from None


def release_pages(array):
    """Lets the kernel drop the pages of a file that `array` views (an array of a binary file read through its
    private map, read_bytes's default) once its values have been copied elsewhere: reading the array again
    reloads them from the file. Only whole pages inside the array are dropped; an array that views no file
    map is left alone. Must not be used on an array written in place (its changes would be lost)."""
    mapping = array
    while isinstance(mapping, np.ndarray):
        mapping = mapping.base
    if isinstance(mapping, memoryview):
        mapping = mapping.obj
    if not isinstance(mapping, mmap.mmap) or mapping.closed or len(mapping) == 0 \
            or not array.flags.c_contiguous or not hasattr(mapping, "madvise"):
        return
    start = array.ctypes.data - np.frombuffer(mapping, np.uint8, count=1).ctypes.data
    first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
    end = (start + array.nbytes) // mmap.PAGESIZE * mmap.PAGESIZE
    if 0 <= first < end <= len(mapping):
        mapping.madvise(mmap.MADV_DONTNEED, first, end - first)


def read_text(path):
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise PrototxtError(_file_problem(path, error)) from None
    if data.startswith(b"\xef\xbb\xbf"):  # the UTF-8 byte-order mark some Windows editors write
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        if any(byte < 32 and byte not in b"\t\n\r\f\v" for byte in data):
            raise PrototxtError(f"{path}: byte {error.start}: not UTF-8 text "
                                "(is it a binary .caffemodel? read it with read_caffemodel)") from None
    # Text in another encoding (a Latin-1 comment): Caffe skips comments byte by byte, so the bytes are kept
    # as they are; in a quoted string they are refused at their line as not UTF-8
    return data.decode("utf-8", "surrogateescape")


def _upgraded(net, path):
    try:
        return upgrade_net(net, source=path)
    except EigenDepthError as error:
        raise PrototxtError(str(error)) from None


def read_prototxt(path, message_type=None, upgrade=True):
    """Reads a text-format NetParameter (upgraded to V2 unless upgrade=False) or SolverParameter.

    message_type: schema.NetParameter, schema.SolverParameter, or None to tell them apart by the
    file's top-level fields.
    """
    path = os.fspath(path)
    text = read_text(path)
    if message_type is None:
        message_type = _guess_text_type(text, path)
    message = parse_text(message_type, text, source=path)
    if upgrade and message_type is schema.NetParameter:
        message = _upgraded(message, path)
    elif upgrade and message_type is schema.SolverParameter:
        try:
            upgrade_solver(message)
        except EigenDepthError as error:
            raise PrototxtError(f"{path}: {error}") from None
    return message


def read_solver(path):
    """Reads a solver prototxt (SolverParameter)."""
    return read_prototxt(path, schema.SolverParameter)


def _guess_text_type(text, path):
    try:
        parse_text(schema.NetParameter, text, source=path)
        return schema.NetParameter
    except PrototxtError as net_error:
        try:
            parse_text(schema.SolverParameter, text, source=path)
            return schema.SolverParameter
        except PrototxtError:
            raise net_error from None


def write_prototxt(message, path):
    """Writes any message in text format (atomically)."""
    with atomic_write(path, "w") as handle:
        handle.write(to_text(message))


def _looks_like_text(data):
    head = bytes(data[:64])
    return bool(head) and all(32 <= b < 127 or b in (9, 10, 13) for b in head)


def _read_binary(path, message_type, use_mmap):
    path = os.fspath(path)
    data = read_bytes(path, use_mmap)
    if len(data) == 0:
        raise CaffemodelError(f"{path}: the file is empty (0 bytes): an interrupted download or copy?")
    message = decode_message(message_type, data, source=path)
    if message._unknown and not message.ListFields() and _looks_like_text(data):
        # text that happens to parse as protobuf fields, none of them known: a prototxt, not a model
        raise CaffemodelError(f"{path}: byte 0: no {message_type.TYPE_NAME} field in this file, which looks "
                              "like text: is it a prototxt? read it with read_prototxt")
    return message


def _write_binary(message, path):
    chunks = []
    encode_chunks(message, chunks)
    with atomic_write(path, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)


def read_caffemodel(path, upgrade=True, use_mmap=True):
    """Reads a binary NetParameter (a .caffemodel), upgraded to V2 unless upgrade=False."""
    net = _read_binary(path, schema.NetParameter, use_mmap)
    if upgrade:
        try:
            net = upgrade_net(net, source=os.fspath(path))
        except EigenDepthError as error:
            raise CaffemodelError(str(error)) from None
    return net


def write_caffemodel(net, path):
    """Writes a NetParameter as a binary .caffemodel (atomically, arrays streamed without copies)."""
    _write_binary(net, path)


def read_solverstate(path, use_mmap=True):
    return _read_binary(path, schema.SolverState, use_mmap)


def write_solverstate(state, path):
    _write_binary(state, path)


def read_binaryproto(path, use_mmap=False):
    """Reads a BlobProto file (e.g. a mean file) as a message; see blob_to_array."""
    return _read_binary(path, schema.BlobProto, use_mmap)


def write_binaryproto(blob, path):
    """Writes a BlobProto (or a numpy array, converted with array_to_blob) as a .binaryproto."""
    if isinstance(blob, np.ndarray):
        blob = array_to_blob(blob)
    _write_binary(blob, path)


def read_net(path, upgrade=True):
    """Reads a NetParameter from text or binary, choosing by the file's extension."""
    if str(path).lower().endswith(BINARY_EXTENSIONS):
        return read_caffemodel(path, upgrade=upgrade)
    return read_prototxt(path, schema.NetParameter, upgrade=upgrade)


def require_layers(net, path, doing="nothing to run"):
    """PrototxtError for a NetParameter read from `path` that holds no layers and no inputs: an empty or
    truncated file (which parses, as protobuf's text and binary formats take nothing as a message)."""
    if not len(net.layer) and not len(net.layers) and not len(net.input):
        raise PrototxtError(f"{path}: holds no layers (an empty or truncated file?): {doing}")
    return net


# Blobs -----------------------------------------------------------------------------------------

def blob_shape(blob):
    """The blob's shape: the legacy 4-D num/channels/height/width when any of them is set (as Caffe
    decides), else shape.dim."""
    if any(blob.HasField(name) for name in ("num", "channels", "height", "width")):
        return (blob.num, blob.channels, blob.height, blob.width)
    if blob.HasField("shape"):
        return tuple(blob.shape.dim)
    return (len(blob.data) or len(blob.double_data),)


def blob_to_array(blob, where="blob"):
    """The blob's values as a float32 numpy array of its shape (a view into the file when possible)."""
    shape = blob_shape(blob)
    data = blob.data if len(blob.data) or not len(blob.double_data) else blob.double_data.astype(np.float32)
    count = math.prod(shape)  # Python integers: a corrupt huge shape must not wrap around
    if any(dim < 0 for dim in shape):
        raise CaffemodelError(f"{where}: negative dimension in shape {shape}")
    if data.size != count:
        raise CaffemodelError(f"{where}: shape {shape} needs {count} values but the file holds {data.size}")
    return data.reshape(shape)


def array_to_blob(array, legacy=False):
    """A BlobProto holding `array` as float32 (shape.dim, or legacy 4-D fields when legacy=True)."""
    array = np.asarray(array)
    blob = schema.BlobProto()
    if legacy:
        dims = (1,) * (4 - array.ndim) + array.shape
        if len(dims) != 4:
            raise ValueError(f"legacy blobs have at most 4 axes, not {array.ndim}")
        blob.num, blob.channels, blob.height, blob.width = dims
    else:
        blob.shape.dim.extend(array.shape)
    blob.data = np.ascontiguousarray(array, dtype="<f4").reshape(-1)
    return blob


def load_weights(path):
    """{layer name: [numpy arrays of its blobs, in file order]} for each layer of a .caffemodel that
    has blobs (after upgrade; a later layer of the same name wins, as in Caffe's copy by name).

    Legacy 4-D blob shapes are returned as stored (an InnerProduct weight as 1x1xOUTxIN).
    """
    path = os.fspath(path)
    net = read_caffemodel(path)
    weights = {}
    for index, layer in enumerate(net.layer):
        if not len(layer.blobs):
            continue
        name = layer.name or f"#{index}"
        weights[name] = [blob_to_array(blob, f"{path}: layer '{name}' blob {i}")
                         for i, blob in enumerate(layer.blobs)]
    return weights
