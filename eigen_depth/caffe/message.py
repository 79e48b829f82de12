"""A small proto2 message model: typed fields, defaults, presence, repeated fields and enums.

The schema (schema.py) declares message types with `message_type(name, fields)`; instances behave like
the protobuf Python API that pycaffe users know (`layer.convolution_param.num_output = 96`,
`net.layer.add()`, `HasField`, `CopyFrom`, `SerializeToString`), without protoc or generated code.

Two field kinds go beyond protobuf's scalars: `float_array` and `double_array` hold a repeated float
or double as one numpy array, so a 60-million-value weight blob is a view into the file's buffer
rather than a list of Python floats.
"""
import math
import struct

import numpy as np

INT_RANGES = {
    "int32": (-(1 << 31), (1 << 31) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint32": (0, (1 << 32) - 1),
    "uint64": (0, (1 << 64) - 1),
}
SCALAR_KINDS = set(INT_RANGES) | {"bool", "enum", "float", "double", "string", "bytes"}
ARRAY_DTYPES = {"float_array": np.dtype("<f4"), "double_array": np.dtype("<f8")}
FLOAT32_MAX = 3.4028234663852886e38

MESSAGE_TYPES = {}


class Enum:
    """A named enum type: value names <-> numbers."""

    def __init__(self, name, values):
        self.name = name
        self.by_name = dict(values)
        self.by_number = {number: key for key, number in reversed(list(self.by_name.items()))}


class Field:
    """One field of a message type."""

    __slots__ = ("name", "number", "kind", "repeated", "default", "type_name", "enum")

    def __init__(self, name, number, kind, repeated=False, default=None, type_name=None, enum=None):
        self.name, self.number, self.kind, self.repeated = name, number, kind, repeated
        self.type_name, self.enum = type_name, enum
        if default is None and not repeated:
            default = {"bool": False, "float": 0.0, "double": 0.0, "string": "", "bytes": b""}.get(kind, 0)
            if kind == "enum":
                default = next(iter(enum.by_name.values()))
        if kind == "enum" and isinstance(default, str):
            default = enum.by_name[default]
        if kind == "float" and default is not None:
            default = to_float32(default)
        self.default = default

    @property
    def message_class(self):
        return MESSAGE_TYPES[self.type_name]

    def coerce(self, value):
        """Checks and converts one value for this field; TypeError/ValueError on a bad one."""
        kind = self.kind
        if kind in INT_RANGES:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"field '{self.name}' takes an integer, not {value!r}")
            low, high = INT_RANGES[kind]
            value = int(value)
            if not low <= value <= high:
                raise ValueError(f"field '{self.name}' ({kind}) cannot hold {value}")
            return value
        if kind in ("float", "double"):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"field '{self.name}' takes a number, not {value!r}")
            return to_float32(value) if kind == "float" else float(value)
        if kind == "bool":
            if isinstance(value, (bool, np.bool_)) or value in (0, 1):
                return bool(value)
            raise TypeError(f"field '{self.name}' takes true or false, not {value!r}")
        if kind == "enum":
            if isinstance(value, str):
                if value not in self.enum.by_name:
                    raise ValueError(f"'{value}' is not a value of {self.enum.name} "
                                     f"({', '.join(self.enum.by_name)})")
                return self.enum.by_name[value]
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and int(value) in self.enum.by_number:
                return int(value)
            raise ValueError(f"{value!r} is not a value of {self.enum.name} ({', '.join(self.enum.by_name)})")
        if kind == "string":
            if isinstance(value, bytes):
                return value.decode("utf-8")
            if not isinstance(value, str):
                raise TypeError(f"field '{self.name}' takes a string, not {value!r}")
            return value
        if kind == "bytes":
            if isinstance(value, str):
                return value.encode("utf-8")
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(f"field '{self.name}' takes bytes, not {value!r}")
            return bytes(value)
        if kind == "message":
            if not isinstance(value, self.message_class):
                raise TypeError(f"field '{self.name}' takes a {self.type_name}, not {type(value).__name__}")
            return value
        raise AssertionError(kind)


def to_float32(value):
    """Rounds a Python number to the nearest float32, as protobuf stores a `float` field."""
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return value
    if abs(value) > FLOAT32_MAX:
        return math.copysign(math.inf, value)  # protobuf's text parser saturates to infinity
    return struct.unpack("<f", struct.pack("<f", value))[0]


class Repeated(list):
    """A repeated field's values; appending marks the owning message as present."""

    __slots__ = ("_owner", "_field")

    def __init__(self, owner, field, values=()):
        super().__init__(field.coerce(v) for v in values)
        self._owner, self._field = owner, field

    def append(self, value):
        super().append(self._field.coerce(value))
        self._owner._mark_present()

    def extend(self, values):
        super().extend(self._field.coerce(v) for v in values)
        self._owner._mark_present()

    def insert(self, index, value):
        super().insert(index, self._field.coerce(value))
        self._owner._mark_present()

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            super().__setitem__(index, [self._field.coerce(v) for v in value])
        else:
            super().__setitem__(index, self._field.coerce(value))

    def add(self, **fields):
        """Appends a new message (repeated message fields only) and returns it."""
        item = self._field.message_class(**fields)
        super().append(item)
        self._owner._mark_present()
        return item


class Message:
    """Base of every declared message type; see the module docstring."""

    __slots__ = ("_values", "_parent", "_unknown", "_lazy")
    FIELDS_BY_NAME = {}
    FIELDS_BY_NUMBER = {}
    TYPE_NAME = "Message"

    def __init__(self, **fields):
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_parent", None)
        object.__setattr__(self, "_unknown", None)
        object.__setattr__(self, "_lazy", None)  # absent sub-messages handed out: same object each time
        for name, value in fields.items():
            field = self._field(name)
            if field.repeated and field.kind not in ARRAY_DTYPES:
                getattr(self, name).extend(value)
            elif field.kind == "message" and isinstance(value, dict):
                getattr(self, name).MergeFrom(field.message_class(**value))
            else:
                setattr(self, name, value)

    @classmethod
    def _field(cls, name):
        try:
            return cls.FIELDS_BY_NAME[name]
        except KeyError:
            raise AttributeError(f"{cls.TYPE_NAME} has no field '{name}'") from None

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        field = self._field(name)
        values = self._values
        if name in values:
            return values[name]
        if field.repeated:
            if field.kind in ARRAY_DTYPES:
                return np.zeros(0, ARRAY_DTYPES[field.kind])
            values[name] = Repeated(self, field)
            return values[name]
        if field.kind == "message":
            lazy = self._lazy
            if lazy is None:
                lazy = {}
                object.__setattr__(self, "_lazy", lazy)
            child = lazy.get(name)
            if child is None:
                child = lazy[name] = field.message_class()
                object.__setattr__(child, "_parent", (self, name))
            return child
        return field.default

    def __setattr__(self, name, value):
        field = self._field(name)
        if field.kind in ARRAY_DTYPES:
            value = np.asarray(value, dtype=ARRAY_DTYPES[field.kind]).reshape(-1)
        elif field.repeated:
            value = Repeated(self, field, value)
        elif field.kind == "message":
            copy = field.message_class()
            copy.CopyFrom(field.coerce(value))
            value = copy
            self._detach(name)
        else:
            value = field.coerce(value)
        self._values[name] = value
        self._mark_present()

    def __delattr__(self, name):
        self.ClearField(name)

    def _mark_present(self):
        parent = self._parent
        if parent is not None:
            owner, name = parent
            object.__setattr__(self, "_parent", None)
            owner._values.setdefault(name, self)
            if owner._lazy is not None:
                owner._lazy.pop(name, None)
            owner._mark_present()

    def _detach(self, name=None):
        """Forgets the absent sub-message(s) handed out for `name` (all when None): changing them later
        no longer reaches this message, as with protobuf after ClearField."""
        lazy = self._lazy
        if lazy:
            for key in ([name] if name is not None else list(lazy)):
                child = lazy.pop(key, None)
                if child is not None:
                    object.__setattr__(child, "_parent", None)

    # protobuf-style API ---------------------------------------------------------------------
    def HasField(self, name):
        field = self._field(name)
        if field.repeated:
            raise ValueError(f"HasField on repeated field '{name}'")
        return name in self._values

    def ClearField(self, name):
        self._field(name)
        self._values.pop(name, None)
        self._detach(name)

    def Clear(self):
        self._values.clear()
        self._detach()
        object.__setattr__(self, "_unknown", None)

    def ListFields(self):
        """(Field, value) for every present, non-empty field, in field-number order."""
        out = []
        for number in sorted(self.FIELDS_BY_NUMBER):
            field = self.FIELDS_BY_NUMBER[number]
            if field.name in self._values:
                value = self._values[field.name]
                if field.repeated and len(value) == 0:
                    continue
                out.append((field, value))
        return out

    def CopyFrom(self, other):
        if other is self:
            return
        self.Clear()
        self.MergeFrom(other)

    def MergeFrom(self, other):
        """protobuf merge: scalars overwrite, repeated fields append, messages merge recursively."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge a {type(other).__name__} into a {self.TYPE_NAME}")
        for field, value in other.ListFields():
            name = field.name
            if field.kind in ARRAY_DTYPES:
                mine = self._values.get(name)  # arrays are shared, not copied: weights can be huge
                self._values[name] = value if mine is None else np.concatenate([mine, value])
            elif field.repeated:
                target = getattr(self, name)
                if field.kind == "message":
                    for item in value:
                        target.add().MergeFrom(item)
                else:
                    target.extend(value)
            elif field.kind == "message":
                getattr(self, name).MergeFrom(value)
            else:
                self._values[name] = value
        if other._unknown:
            object.__setattr__(self, "_unknown", (self._unknown or []) + list(other._unknown))
        self._mark_present()

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        mine, theirs = self.ListFields(), other.ListFields()
        if [f.number for f, _ in mine] != [f.number for f, _ in theirs]:
            return False
        for (field, a), (_, b) in zip(mine, theirs):
            if field.kind in ARRAY_DTYPES:
                if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
                    return False
            elif field.kind in ("float", "double"):
                pairs = zip(a, b) if field.repeated else [(a, b)]
                if (field.repeated and len(a) != len(b)) or not all(
                        x == y or (math.isnan(x) and math.isnan(y)) for x, y in pairs):
                    return False
            elif list(a) != list(b) if field.repeated else a != b:
                return False
        return True

    __hash__ = None

    def __repr__(self):
        from .text_format import to_text
        body = to_text(self)
        return f"<{self.TYPE_NAME}>\n{body}" if body else f"<{self.TYPE_NAME} (empty)>"

    __str__ = __repr__

    def SerializeToString(self):
        from .wire import encode_message
        return encode_message(self)

    def ParseFromString(self, data):
        from .wire import decode_message
        self.CopyFrom(decode_message(type(self), data))
        return len(data)

    @classmethod
    def FromString(cls, data):
        from .wire import decode_message
        return decode_message(cls, data)


def message_type(name, fields, enums=()):
    """Declares a message type: `fields` are Field objects; `enums` are Enum objects exposed as
    class attributes (both the enum and each value name, as protobuf does)."""
    namespace = {
        "__slots__": (),
        "TYPE_NAME": name,
        "FIELDS_BY_NAME": {f.name: f for f in fields},
        "FIELDS_BY_NUMBER": {f.number: f for f in fields},
    }
    assert len(namespace["FIELDS_BY_NAME"]) == len(fields) == len(namespace["FIELDS_BY_NUMBER"]), name
    for enum in enums:
        namespace[enum.name] = enum
        namespace.update(enum.by_name)
    cls = type(name, (Message,), namespace)
    MESSAGE_TYPES[name] = cls
    return cls
