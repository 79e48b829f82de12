"""pycaffe's `caffe.net_spec`: nets written as Python calls (`L.Convolution(n.data, num_output=20)`) and turned
into a NetParameter (caffe_pb2) with `to_proto()`, with pycaffe's naming rules: a layer takes the name its
first top is given in a NetSpec, and unnamed ones get `<Type><count>`."""
from collections import Counter, OrderedDict

from .proto import caffe_pb2


def param_name_dict():
    """Layer type -> the LayerParameter field of its parameters ("Convolution" -> "convolution_param")."""
    layer = caffe_pb2.LayerParameter()
    names = [field.name for field in layer.DESCRIPTOR.fields if field.name.endswith("_param")]
    types = [getattr(layer, name).DESCRIPTOR.name for name in names]
    return {kind[:-len("Parameter")]: name for kind, name in zip(types, names) if kind.endswith("Parameter")}


def to_proto(*tops):
    """A NetParameter holding every layer the tops depend on."""
    layers = OrderedDict()
    autonames = Counter()
    for top in tops:
        top.fn._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


def assign_proto(proto, name, value):
    """proto.name = value, where dicts fill sub-messages and lists fill repeated fields."""
    is_repeated = hasattr(getattr(proto, name), "extend")
    if is_repeated and not isinstance(value, list):
        value = [value]
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            for item in value:
                entry = getattr(proto, name).add()
                for key, inner in item.items():
                    assign_proto(entry, key, inner)
        else:
            getattr(proto, name).extend(value)
    elif isinstance(value, dict):
        for key, inner in value.items():
            assign_proto(getattr(proto, name), key, inner)
    else:
        setattr(proto, name, value)


class Top:
    """One output of a layer function."""

    def __init__(self, fn, n):
        self.fn, self.n = fn, n

    def to_proto(self):
        return to_proto(self)

    def _to_proto(self, layers, names, autonames):
        return self.fn._to_proto(layers, names, autonames)


class Function:
    """A layer call: its type, its bottom Tops and its parameters."""

    def __init__(self, type_name, inputs, params):
        self.type_name, self.inputs, self.params = type_name, inputs, params
        for index, blob in enumerate(self.inputs):
            if not isinstance(blob, Top):
                raise TypeError(f"{type_name} input {index} is not a Top (type is {type(blob)})")
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        if self.in_place and (self.ntop != 1 or len(self.inputs) != 1):
            raise ValueError(f"{type_name}: in_place needs exactly one bottom and one top")
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _get_name(self, names, autonames):
        if self not in names and self.ntop > 0:
            names[self] = self._get_top_name(self.tops[0], names, autonames)
        elif self not in names:
            autonames[self.type_name] += 1
            names[self] = self.type_name + str(autonames[self.type_name])
        return names[self]

    def _get_top_name(self, top, names, autonames):
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = top.fn.type_name + str(autonames[top.fn.type_name])
        return names[top]

    def _to_proto(self, layers, names, autonames):
        if self in layers:
            return
        bottom_names = []
        for inp in self.inputs:
            inp._to_proto(layers, names, autonames)
            bottom_names.append(layers[inp.fn].top[inp.n])
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(bottom_names)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            for top in self.tops:
                layer.top.append(self._get_top_name(top, names, autonames))
        layer.name = self._get_name(names, autonames)
        param_names = param_name_dict()
        for key, value in self.params.items():
            if key.endswith("param"):  # generic *_param fields and `param` itself
                assign_proto(layer, key, value)
            else:
                try:
                    assign_proto(getattr(layer, param_names[self.type_name]), key, value)
                except (AttributeError, KeyError):
                    assign_proto(layer, key, value)
        layers[self] = layer


class NetSpec:
    """Tops assigned as attributes (`n.conv1 = L.Convolution(...)`) take those names in to_proto()."""

    def __init__(self):
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name, value):
        self.tops[name] = value

    def __getattr__(self, name):
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setitem__(self, key, value):
        self.__setattr__(key, value)

    def __getitem__(self, item):
        return self.__getattr__(item)

    def __delitem__(self, name):
        del self.tops[name]

    def keys(self):
        return list(self.tops.keys())

    def vals(self):
        return list(self.tops.values())

    def to_proto(self):
        names = {value: key for key, value in self.tops.items()}
        autonames = Counter()
        layers = OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


class Layers:
    """`L.<Type>(*bottoms, **params)`: a Top (one top), a tuple of Tops, or the Function itself (ntop=0).
    `L.Python` takes `module` and `layer` into python_param."""

    def __getattr__(self, name):
        def layer_fn(*args, **kwargs):
            fn = Function(name, args, kwargs)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops
        return layer_fn


class Parameters:
    """`P.Pooling.MAX`: the enum values of caffe_pb2's <Type>Parameter messages."""

    def __getattr__(self, name):
        class Param:
            def __getattr__(self, param_name):
                return getattr(getattr(caffe_pb2, name + "Parameter"), param_name)
        return Param()


layers = Layers()
params = Parameters()
