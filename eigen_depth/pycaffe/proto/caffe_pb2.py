"""pycaffe's `caffe.proto.caffe_pb2`: Google protobuf message classes built at import from eigen_depth's
declaration of caffe.proto (eigen_depth/caffe/schema.py), so scripts that build, print (`text_format`, `str`),
serialise or parse messages the pycaffe way get real protobuf objects with Caffe's field numbers, defaults
and nested enums. Needs the `protobuf` package."""
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal import enum_type_wrapper

from ...caffe import message as _message
from ...caffe import schema as _schema

_FD = descriptor_pb2.FieldDescriptorProto
_SCALARS = {"int32": _FD.TYPE_INT32, "int64": _FD.TYPE_INT64, "uint32": _FD.TYPE_UINT32, "uint64": _FD.TYPE_UINT64,
            "float": _FD.TYPE_FLOAT, "double": _FD.TYPE_DOUBLE, "bool": _FD.TYPE_BOOL, "string": _FD.TYPE_STRING,
            "bytes": _FD.TYPE_BYTES, "float_array": _FD.TYPE_FLOAT, "double_array": _FD.TYPE_DOUBLE}


def _enum_homes(messages):
    """Enum name -> the message it is nested in (the first that declares it), or None for top-level ones."""
    homes = {}
    for name, cls in messages.items():
        for value in vars(cls).values():
            if isinstance(value, _message.Enum):
                homes.setdefault(value.name, name)
    return homes


def _default_text(field):
    value = field.default
    if value is None or field.repeated or field.kind == "message":
        return None
    if field.kind == "enum":
        return field.enum.by_number.get(value, value) if isinstance(value, int) else str(value)
    if field.kind == "bool":
        return "true" if value else "false"
    if field.kind in ("float", "double"):
        return repr(float(value))
    if field.kind == "bytes":
        return value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return str(value)


def _build():
    messages = dict(_message.MESSAGE_TYPES)
    homes = _enum_homes(messages)
    fdp = descriptor_pb2.FileDescriptorProto(name="caffe.proto", package="caffe", syntax="proto2")
    enums = {}
    for cls in messages.values():
        for field in cls.FIELDS_BY_NAME.values():
            if field.kind == "enum":
                enums[field.enum.name] = field.enum
    for value in vars(_schema).values():
        if isinstance(value, _message.Enum):
            enums.setdefault(value.name, value)

    def add_enum(container, enum):
        proto = container.add(name=enum.name)
        for key, number in enum.by_name.items():
            proto.value.add(name=key, number=number)

    for enum in enums.values():
        if homes.get(enum.name) is None:
            add_enum(fdp.enum_type, enum)
    for name, cls in messages.items():
        proto = fdp.message_type.add(name=name)
        for enum in enums.values():
            if homes.get(enum.name) == name:
                add_enum(proto.enum_type, enum)
        for field in sorted(cls.FIELDS_BY_NAME.values(), key=lambda f: f.number):
            entry = proto.field.add(name=field.name, number=field.number,
                                    label=_FD.LABEL_REPEATED if field.repeated else _FD.LABEL_OPTIONAL)
            if field.kind == "message":
                entry.type, entry.type_name = _FD.TYPE_MESSAGE, f".caffe.{field.type_name}"
            elif field.kind == "enum":
                home = homes.get(field.enum.name)
                entry.type = _FD.TYPE_ENUM
                entry.type_name = f".caffe.{home}.{field.enum.name}" if home else f".caffe.{field.enum.name}"
            else:
                entry.type = _SCALARS[field.kind]
            if field.kind.endswith("_array"):
                entry.options.packed = True
            default = _default_text(field)
            if default is not None:
                entry.default_value = default
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    classes = {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe.{name}"))
               for name in messages}
    top_level = {}
    for enum in enums.values():
        if homes.get(enum.name) is None:
            descriptor = pool.FindEnumTypeByName(f"caffe.{enum.name}")
            top_level[enum.name] = enum_type_wrapper.EnumTypeWrapper(descriptor)
            for key, number in enum.by_name.items():
                top_level[key] = number
    return classes, top_level


_classes, _enums = _build()
globals().update(_classes)
globals().update(_enums)
__all__ = sorted(_classes) + sorted(_enums)
