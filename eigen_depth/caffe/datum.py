"""Caffe's Datum records (one LMDB value): raw CHW uint8 pixels or an encoded PNG/JPEG, plus a label."""
import numpy as np

from ..errors import CaffemodelError
from . import schema
from .wire import decode_message


def array_to_datum(array_chw, label=0):
    """A Datum holding a (C, H, W) uint8 array (a 2-D array is one channel), as convert_imageset
    writes it; colour images are expected in Caffe's BGR order."""
    array = np.asarray(array_chw)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.dtype != np.uint8:
        raise ValueError(f"a Datum holds a (C, H, W) uint8 array, not {array.dtype} {array.shape}")
    channels, height, width = array.shape
    # Caffe's CVMatToDatum sets encoded to false explicitly, so its records end in the bytes 38 00
    return schema.Datum(channels=channels, height=height, width=width,
                        data=np.ascontiguousarray(array).tobytes(), label=label, encoded=False)


def encoded_datum(file_bytes, label=0):
    """A Datum carrying an encoded image file (encoded: true), as convert_imageset --encoded writes."""
    return schema.Datum(data=bytes(file_bytes), label=label, encoded=True)


def datum_to_array(datum, where="datum"):
    """The Datum's pixels as a (C, H, W) array: uint8 from `data`, float32 from `float_data`, and
    encoded images decoded with OpenCV (BGR, as Caffe decodes them)."""
    if datum.encoded:
        import cv2  # only encoded records need OpenCV
        image = cv2.imdecode(np.frombuffer(datum.data, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise CaffemodelError(f"{where}: encoded image data cannot be decoded")
        return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    shape = (datum.channels, datum.height, datum.width)
    count = shape[0] * shape[1] * shape[2]
    if min(shape) < 0:
        raise CaffemodelError(f"{where}: negative Datum shape {shape}")
    if len(datum.data):
        if len(datum.data) != count:
            raise CaffemodelError(f"{where}: Datum shape {shape} needs {count} bytes, holds {len(datum.data)}")
        return np.frombuffer(datum.data, np.uint8).reshape(shape)
    if len(datum.float_data) != count:
        raise CaffemodelError(f"{where}: Datum shape {shape} needs {count} values, holds {len(datum.float_data)}")
    return np.asarray(datum.float_data, np.float32).reshape(shape)


def encode_datum(array_chw, label=0):
    """The serialized bytes of array_to_datum(array_chw, label): an LMDB value."""
    return array_to_datum(array_chw, label).SerializeToString()


def decode_datum(value, where="datum"):
    """(array (C, H, W), label) from one serialized Datum."""
    datum = decode_message(schema.Datum, value, source=where)
    return datum_to_array(datum, where), datum.label
