"""Caffe's upgrade-on-load: V1 `layers` -> V2 `layer`, legacy net inputs -> an Input layer, old data
transform fields -> transform_param, old BatchNorm param specs, the deprecated solver_type enum.

Follows upgrade_proto.cpp's order: data transformation, V1 -> V2, net input, BatchNorm.
V0 layer definitions (Caffe before 2014) are not supported.
"""
from ..errors import EigenDepthError
from . import schema

V1_TYPE_NAMES = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData", "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN", "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence", "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}
V1_SHARED_FIELDS = ("bottom", "top", "name", "include", "exclude", "blobs", "loss_weight")
DATA_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
SOLVER_TYPE_NAMES = {0: "SGD", 1: "Nesterov", 2: "AdaGrad", 3: "RMSProp", 4: "AdaDelta", 5: "Adam"}


def net_needs_upgrade(net):
    return (len(net.layers) > 0 or len(net.input) > 0 or len(net.input_dim) > 0 or len(net.input_shape) > 0
            or any(layer.type == "BatchNorm" and len(layer.param) == 3 for layer in net.layer))


def upgrade_net(net, source="<net>"):
    """Returns a V2 copy of `net` (the message itself when nothing needs upgrading)."""
    if not net_needs_upgrade(net):
        return net
    upgraded = schema.NetParameter()
    upgraded.CopyFrom(net)
    if len(upgraded.layers):
        if len(upgraded.layer):
            raise EigenDepthError(f"{source}: the net mixes V1 'layers' and V2 'layer' definitions; "
                                  "Caffe refuses such files: keep only one kind")
        for old in upgraded.layers:
            _upgrade_v1_data_transform(old)
            upgraded.layer.append(upgrade_v1_layer(old))
        upgraded.ClearField("layers")
    _upgrade_net_input(upgraded, source)
    for layer in upgraded.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            layer.ClearField("param")  # old BatchNorm nets froze their 3 blobs via param specs
    return upgraded


def _upgrade_v1_data_transform(layer):
    type_name = schema.V1LayerType.by_number.get(layer.type)
    sub_name = {"DATA": "data_param", "IMAGE_DATA": "image_data_param",
                "WINDOW_DATA": "window_data_param"}.get(type_name)
    if sub_name is None or not layer.HasField(sub_name):
        return
    params = getattr(layer, sub_name)
    for name in DATA_TRANSFORM_FIELDS:
        if params.HasField(name):
            setattr(layer.transform_param, name, getattr(params, name))
            params.ClearField(name)


def upgrade_v1_layer(old):
    """One V1LayerParameter as a V2 LayerParameter (Caffe's UpgradeV1LayerParameter)."""
    layer = schema.LayerParameter()
    for field, value in old.ListFields():
        name = field.name
        if name in V1_SHARED_FIELDS:
            if field.repeated:
                getattr(layer, name).extend(value)
            else:
                setattr(layer, name, value)
        elif name == "type":
            layer.type = V1_TYPE_NAMES[schema.V1LayerType.by_number[value]]
        elif name in ("blobs_lr", "weight_decay", "param"):
            target = {"blobs_lr": "lr_mult", "weight_decay": "decay_mult", "param": "name"}[name]
            for index, item in enumerate(value):
                while len(layer.param) <= index:
                    layer.param.add()
                setattr(layer.param[index], target, item)
        else:  # every *_param, transform_param and loss_param have the same type in both versions
            getattr(layer, name).CopyFrom(value)
    if old._unknown:
        object.__setattr__(layer, "_unknown", None)  # V1 field numbers mean nothing in V2
    return layer


def _upgrade_net_input(net, source):
    names = list(net.input)
    if net.input_shape or net.input_dim:
        if net.input_shape and len(net.input_shape) != len(names):
            raise EigenDepthError(f"{source}: {len(names)} inputs but {len(net.input_shape)} input_shape entries")
        if net.input_dim and len(net.input_dim) != 4 * len(names):
            raise EigenDepthError(f"{source}: {len(names)} inputs need {4 * len(names)} input_dim values, "
                                  f"found {len(net.input_dim)}")
        layer = schema.LayerParameter(name="input", type="Input", top=names)
        for index in range(len(names)):
            dims = (list(net.input_shape[index].dim) if net.input_shape
                    else list(net.input_dim[4 * index:4 * index + 4]))
            layer.input_param.shape.add(dim=dims)
        layers = list(net.layer)
        net.ClearField("layer")
        net.layer.append(layer)
        net.layer.extend(layers)
    for name in ("input", "input_shape", "input_dim"):
        net.ClearField(name)


def upgrade_solver(solver):
    """Moves the deprecated solver_type enum into the `type` string, as Caffe does on load."""
    if solver.HasField("solver_type"):
        if solver.HasField("type") and solver.type != SOLVER_TYPE_NAMES[solver.solver_type]:
            raise EigenDepthError(f"solver sets both type '{solver.type}' and solver_type "
                                  f"{SOLVER_TYPE_NAMES[solver.solver_type]}: keep one")
        solver.type = SOLVER_TYPE_NAMES[solver.solver_type]
        solver.ClearField("solver_type")
    return solver
