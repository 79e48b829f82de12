"""Protobuf binary wire format for the declared messages: a zero-copy decoder and a streaming encoder.

Decoding works on any buffer (bytes, a memoryview of an mmap): packed float arrays become
`np.frombuffer` views into it, so a 290 MB caffemodel costs no second copy. Unknown fields are kept as
raw bytes and written back unchanged. Errors carry the absolute byte offset.
"""
import struct

import numpy as np

from ..errors import CaffemodelError
from .message import ARRAY_DTYPES, Repeated

WIRE_VARINT, WIRE_FIXED64, WIRE_BYTES, WIRE_START_GROUP, WIRE_END_GROUP, WIRE_FIXED32 = 0, 1, 2, 3, 4, 5
VARINT_KINDS = frozenset(["int32", "int64", "uint32", "uint64", "bool", "enum"])
NATURAL_WIRE = {"float": WIRE_FIXED32, "double": WIRE_FIXED64, "string": WIRE_BYTES, "bytes": WIRE_BYTES,
                "message": WIRE_BYTES, "float_array": WIRE_FIXED32, "double_array": WIRE_FIXED64}
NATURAL_WIRE.update({kind: WIRE_VARINT for kind in VARINT_KINDS})
# caffe.proto marks these [packed = true]; every other repeated scalar is written unpacked, as Caffe does.
PACKED_FIELDS = frozenset([("BlobShape", "dim")])
MAX_DEPTH = 64
_U64 = (1 << 64) - 1


class DecodeError(Exception):
    """Internal: a decoding failure at a byte offset; the readers turn it into a CaffemodelError."""

    def __init__(self, offset, message):
        super().__init__(message)
        self.offset, self.message = offset, message


def _varint(mv, pos, end):
    result = shift = 0
    start = pos
    while True:
        if pos >= end:
            raise DecodeError(start, "truncated varint (the data ends inside a number)")
        byte = mv[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DecodeError(start, "malformed varint (longer than 10 bytes)")


def _signed(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _convert_varint(field, value):
    kind = field.kind
    if kind == "int32" or kind == "enum":
        return _signed(value, 32)
    if kind == "int64":
        return _signed(value, 64)
    if kind == "uint32":
        return value & 0xFFFFFFFF
    if kind == "uint64":
        return value & _U64
    return value != 0  # bool


def _unpacked_run(mv, tag_pos, tag_len, end, itemsize):
    """Values of a run of identical-tag unpacked fixed-width records starting at tag_pos, vectorised.

    The run is searched in geometrically growing chunks, so the work is proportional to the run's
    length, not to the rest of the message (many short runs would otherwise cost quadratic time)."""
    stride = tag_len + itemsize
    total = (end - tag_pos) // stride
    tag = np.frombuffer(mv, np.uint8, count=tag_len, offset=tag_pos)
    count, chunk = 0, 64
    while count < total:
        rows = min(chunk, total - count)
        raw = np.frombuffer(mv, np.uint8, count=rows * stride, offset=tag_pos + count * stride)
        matches = (raw.reshape(rows, stride)[:, :tag_len] == tag).all(axis=1)
        if not matches.all():
            count += int(np.argmin(matches))
            break
        count += rows
        chunk *= 2
    raw = np.frombuffer(mv, np.uint8, count=count * stride, offset=tag_pos).reshape(count, stride)
    return raw[:, tag_len:].copy(), tag_pos + count * stride


def decode(cls, mv, pos, end, depth=0):
    """Parses mv[pos:end] as a message of type cls."""
    if depth > MAX_DEPTH:
        raise DecodeError(pos, f"messages nested more than {MAX_DEPTH} deep")
    message = cls()
    values = message._values
    fields = cls.FIELDS_BY_NUMBER
    pieces = {}  # array field -> its arrays in file order, joined once at the end (not once per piece)
    while pos < end:
        tag_pos = pos
        key, pos = _varint(mv, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise DecodeError(tag_pos, "field number 0 is invalid")
        value_pos = pos
        if wire == WIRE_VARINT:
            raw, pos = _varint(mv, pos, end)
        elif wire == WIRE_FIXED64 or wire == WIRE_FIXED32:
            pos += 8 if wire == WIRE_FIXED64 else 4
            if pos > end:
                raise DecodeError(tag_pos, f"truncated field {number} of {cls.TYPE_NAME}")
        elif wire == WIRE_BYTES:
            length, pos = _varint(mv, pos, end)
            value_pos = pos
            pos += length
            if pos > end:
                raise DecodeError(tag_pos, f"truncated field {number} of {cls.TYPE_NAME}: it declares "
                                           f"{length} bytes but only {end - value_pos} remain")
        elif wire in (WIRE_START_GROUP, WIRE_END_GROUP):
            raise DecodeError(tag_pos, "protobuf groups (wire types 3/4) do not occur in Caffe files")
        else:
            raise DecodeError(tag_pos, f"invalid wire type {wire}")

        field = fields.get(number)
        kind = field.kind if field is not None else None
        natural = NATURAL_WIRE.get(kind)
        packed = wire == WIRE_BYTES and field is not None and field.repeated and natural != WIRE_BYTES
        if field is None or (wire != natural and not packed):
            unknown = message._unknown
            if unknown is None:
                object.__setattr__(message, "_unknown", [])
            message._unknown.append(bytes(mv[tag_pos:pos]))
            continue
        name = field.name

        if kind in ARRAY_DTYPES:
            dtype = ARRAY_DTYPES[kind]
            if packed:
                if (pos - value_pos) % dtype.itemsize:
                    raise DecodeError(tag_pos, f"packed {name} of {cls.TYPE_NAME} has {pos - value_pos} "
                                               f"bytes, not a multiple of {dtype.itemsize}")
                array = np.frombuffer(mv, dtype, count=(pos - value_pos) // dtype.itemsize, offset=value_pos)
            else:
                raw_rows, pos = _unpacked_run(mv, tag_pos, value_pos - tag_pos, end, dtype.itemsize)
                array = raw_rows.view(dtype).reshape(-1)
            pieces.setdefault(name, []).append(array)
            continue

        if kind == "message":
            sub = decode(field.message_class, mv, value_pos, pos, depth + 1)
            if field.repeated:
                if name not in values:
                    values[name] = Repeated(message, field)
                list.append(values[name], sub)
            elif name in values:
                values[name].MergeFrom(sub)
            else:
                values[name] = sub
            continue

        if packed:
            items = _decode_packed(field, mv, value_pos, pos, tag_pos)
        elif kind in VARINT_KINDS:
            items = [_convert_varint(field, raw)]
        elif kind == "float":
            items = [struct.unpack_from("<f", mv, value_pos)[0]]
        elif kind == "double":
            items = [struct.unpack_from("<d", mv, value_pos)[0]]
        elif kind == "string":
            try:
                items = [str(mv[value_pos:pos], "utf-8")]
            except UnicodeDecodeError:
                raise DecodeError(value_pos, f"field {name} of {cls.TYPE_NAME} is not valid UTF-8 text") from None
        else:
            items = [bytes(mv[value_pos:pos])]

        if kind == "enum":
            known = [v for v in items if v in field.enum.by_number]
            if len(known) != len(items):  # proto2: an unknown enum number is kept as an unknown field
                unknown = message._unknown
                if unknown is None:
                    object.__setattr__(message, "_unknown", [])
                message._unknown.append(bytes(mv[tag_pos:pos]))
            items = known
            if not items:
                continue
        if field.repeated:
            if name not in values:
                values[name] = Repeated(message, field)
            list.extend(values[name], items)
        else:
            values[name] = items[-1]
    for name, arrays in pieces.items():
        values[name] = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    return message


def _decode_packed(field, mv, pos, end, tag_pos):
    kind = field.kind
    if kind == "float" or kind == "double":
        size = 4 if kind == "float" else 8
        if (end - pos) % size:
            raise DecodeError(tag_pos, f"packed field {field.name} has a length that is not a multiple of {size}")
        return np.frombuffer(mv, "<f4" if size == 4 else "<f8", count=(end - pos) // size, offset=pos).tolist()
    items = []
    while pos < end:
        raw, pos = _varint(mv, pos, end)
        items.append(_convert_varint(field, raw))
    return items


def decode_message(cls, data, source="<bytes>"):
    """Parses a whole buffer as cls; raises CaffemodelError naming `source` and the byte offset."""
    mv = memoryview(data).cast("B") if not isinstance(data, memoryview) else data.cast("B")
    try:
        return decode(cls, mv, 0, len(mv))
    except DecodeError as error:
        hint = ""
        head = bytes(mv[:64])
        if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
            hint = " (the file looks like text: is it a prototxt? read it with read_prototxt)"
        raise CaffemodelError(f"{source}: byte {error.offset}: {error.message}: not a valid "
                              f"{cls.TYPE_NAME} file, or a truncated one{hint}") from None


# Encoding ---------------------------------------------------------------------------------------

def _varint_bytes(value):
    value &= _U64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(number, wire):
    return _varint_bytes((number << 3) | wire)


def _scalar_bytes(kind, value):
    if kind in VARINT_KINDS:
        return _varint_bytes(int(value))
    if kind == "float":
        return struct.pack("<f", value)
    if kind == "double":
        return struct.pack("<d", value)
    data = value.encode("utf-8") if kind == "string" else value
    return _varint_bytes(len(data)) + data


def encode_chunks(message, out):
    """Appends the encoding of `message` to the list `out` (bytes and array buffers); returns its size."""
    size = 0
    for field, value in message.ListFields():
        kind, number = field.kind, field.number
        if kind in ARRAY_DTYPES:
            array = np.ascontiguousarray(value, dtype=ARRAY_DTYPES[kind])
            header = _tag(number, WIRE_BYTES) + _varint_bytes(array.nbytes)
            out.append(header)
            out.append(memoryview(array).cast("B"))
            size += len(header) + array.nbytes
        elif kind == "message":
            for item in (value if field.repeated else [value]):
                children = []
                length = encode_chunks(item, children)
                header = _tag(number, WIRE_BYTES) + _varint_bytes(length)
                out.append(header)
                out.extend(children)
                size += len(header) + length
        elif field.repeated and (message.TYPE_NAME, field.name) in PACKED_FIELDS:
            body = b"".join(_scalar_bytes(kind, v) for v in value)
            chunk = _tag(number, WIRE_BYTES) + _varint_bytes(len(body)) + body
            out.append(chunk)
            size += len(chunk)
        else:
            tag = _tag(number, NATURAL_WIRE[kind])
            chunk = b"".join(tag + _scalar_bytes(kind, v) for v in (value if field.repeated else [value]))
            out.append(chunk)
            size += len(chunk)
    for raw in message._unknown or ():
        out.append(raw)
        size += len(raw)
    return size


def encode_message(message):
    """The message's binary encoding as bytes."""
    chunks = []
    encode_chunks(message, chunks)
    return b"".join(chunks)
