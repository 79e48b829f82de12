"""The thesis's networks in eigen_depth/prototxt/ (docs/specification.md section 3), checked by routes independent of eigen_depth.

1. Syntax: every file is parsed strictly (unknown fields and bad enum values fail) against the subset of
   Caffe's caffe.proto listed in docs/caffe_format.md, built here as a protobuf descriptor.
2. Shapes: a small walker written here from Caffe's size rules (docs/specification.md section 2) gives every blob's
   and every weight's shape, for the deploy nets and for both phases of the training nets.
3. OpenCV's dnn (an independent Caffe reader) runs every deploy net and must produce the outputs of
   docs/specification.md section 1 with the shapes of NETS: checked in test_fidelity_cv2.py, which runs it.
4. The training nets hold the data sources, losses, lr_mult table, fillers and ReLU placement of
   docs/specification.md section 3, and the solvers its settings.
"""
import math
import os

import pytest

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from eigen_depth.caffe import read_prototxt, read_solver
from eigen_depth.prototxt import ROOT as PROTOTXT_ROOT

PROTOTXT = PROTOTXT_ROOT

# (family, variant) -> the deploy net's outputs and their shapes (docs/specification.md sections 1 and 3).
DEPTH = {"depth": (1, 1, 27, 37)}
GRADIENT = {"gradient": (1, 2, 25, 35)}
REFINED = {"depth-refine": (1, 1, 54, 74)}
NETS = {
    ("global_context", "abs"): DEPTH,
    ("global_context", "log_abs"): DEPTH,
    ("global_context", "norm"): DEPTH,
    ("global_context", "sc_inv"): DEPTH,
    ("gradient", "abs"): GRADIENT,
    ("gradient", "norm"): GRADIENT,
    ("joint", "A"): {**DEPTH, **GRADIENT},
    ("joint", "B"): {**DEPTH, **GRADIENT},
    ("refining", "abs"): REFINED,
    ("refining", "log_abs"): REFINED,
    ("refining", "norm_abs"): REFINED,
    ("refining", "norm_abs_global_only"): REFINED,
    ("refining", "sc_inv_abs"): REFINED,
}
NET_IDS = [f"{family}/{variant}" for family, variant in NETS]
SOLVER_NET = {"global_context": "norm", "gradient": "norm", "joint": "A", "refining": "norm_abs"}
BASE_LR = {"global_context": 0.0005, "gradient": 0.00025, "joint": 0.0005, "refining": 0.000025}

# --------------------------------------------------------------------------------- strict parsing
# The caffe.proto subset of docs/caffe_format.md: message -> [(field, number, type, repeated)]. Types in
# lower case are scalars; capitalised ones are messages or the enums in ENUMS.
_R = True
SCHEMA = {
    "BlobShape": [("dim", 1, "int64", _R)],
    "BlobProto": [("shape", 7, "BlobShape"), ("data", 5, "float", _R), ("diff", 6, "float", _R),
                  ("double_data", 8, "double", _R), ("double_diff", 9, "double", _R), ("num", 1, "int32"),
                  ("channels", 2, "int32"), ("height", 3, "int32"), ("width", 4, "int32")],
    "NetParameter": [("name", 1, "string"), ("layer", 100, "LayerParameter", _R), ("input", 3, "string", _R),
                     ("input_shape", 8, "BlobShape", _R), ("input_dim", 4, "int32", _R),
                     ("force_backward", 5, "bool"), ("state", 6, "NetState"), ("debug_info", 7, "bool")],
    "NetState": [("phase", 1, "Phase"), ("level", 2, "int32"), ("stage", 3, "string", _R)],
    "NetStateRule": [("phase", 1, "Phase"), ("min_level", 2, "int32"), ("max_level", 3, "int32"),
                     ("stage", 4, "string", _R), ("not_stage", 5, "string", _R)],
    "ParamSpec": [("name", 1, "string"), ("share_mode", 2, "DimCheckMode"), ("lr_mult", 3, "float"),
                  ("decay_mult", 4, "float")],
    "LayerParameter": [
        ("name", 1, "string"), ("type", 2, "string"), ("bottom", 3, "string", _R), ("top", 4, "string", _R),
        ("phase", 10, "Phase"), ("loss_weight", 5, "float", _R), ("param", 6, "ParamSpec", _R),
        ("blobs", 7, "BlobProto", _R), ("propagate_down", 11, "bool", _R), ("include", 8, "NetStateRule", _R),
        ("exclude", 9, "NetStateRule", _R), ("transform_param", 100, "TransformationParameter"),
        ("loss_param", 101, "LossParameter"), ("concat_param", 104, "ConcatParameter"),
        ("convolution_param", 106, "ConvolutionParameter"), ("data_param", 107, "DataParameter"),
        ("dropout_param", 108, "DropoutParameter"), ("inner_product_param", 117, "InnerProductParameter"),
        ("input_param", 143, "InputParameter"), ("log_param", 134, "LogParameter"),
        ("lrn_param", 118, "LRNParameter"), ("mvn_param", 120, "MVNParameter"),
        ("pooling_param", 121, "PoolingParameter"), ("power_param", 122, "PowerParameter"),
        ("relu_param", 123, "ReLUParameter"), ("reshape_param", 133, "ReshapeParameter")],
    "TransformationParameter": [("scale", 1, "float"), ("mirror", 2, "bool"), ("crop_size", 3, "uint32"),
                                ("mean_file", 4, "string"), ("mean_value", 5, "float", _R),
                                ("force_color", 6, "bool"), ("force_gray", 7, "bool")],
    "LossParameter": [("ignore_label", 1, "int32"), ("normalize", 2, "bool")],
    "ConcatParameter": [("axis", 2, "int32"), ("concat_dim", 1, "uint32")],
    "ConvolutionParameter": [
        ("num_output", 1, "uint32"), ("bias_term", 2, "bool"), ("pad", 3, "uint32", _R),
        ("kernel_size", 4, "uint32", _R), ("stride", 6, "uint32", _R), ("dilation", 18, "uint32", _R),
        ("pad_h", 9, "uint32"), ("pad_w", 10, "uint32"),
        ("kernel_h", 11, "uint32"), ("kernel_w", 12, "uint32"),
        ("stride_h", 13, "uint32"), ("stride_w", 14, "uint32"), ("group", 5, "uint32"),
        ("weight_filler", 7, "FillerParameter"), ("bias_filler", 8, "FillerParameter"),
        ("axis", 16, "int32")],
    "DataParameter": [("source", 1, "string"), ("batch_size", 4, "uint32"), ("rand_skip", 7, "uint32"),
                      ("backend", 8, "DB"), ("scale", 2, "float"), ("mean_file", 3, "string"),
                      ("crop_size", 5, "uint32"), ("mirror", 6, "bool"), ("prefetch", 10, "uint32")],
    "DropoutParameter": [("dropout_ratio", 1, "float")],
    "FillerParameter": [("type", 1, "string"), ("value", 2, "float"), ("min", 3, "float"),
                        ("max", 4, "float"),
                        ("mean", 5, "float"), ("std", 6, "float"), ("sparse", 7, "int32"),
                        ("variance_norm", 8, "VarianceNorm")],
    "InnerProductParameter": [("num_output", 1, "uint32"), ("bias_term", 2, "bool"),
                              ("weight_filler", 3, "FillerParameter"), ("bias_filler", 4, "FillerParameter"),
                              ("axis", 5, "int32"), ("transpose", 6, "bool")],
    "InputParameter": [("shape", 1, "BlobShape", _R)],
    "LogParameter": [("base", 1, "float"), ("scale", 2, "float"), ("shift", 3, "float")],
    "LRNParameter": [("local_size", 1, "uint32"), ("alpha", 2, "float"), ("beta", 3, "float"),
                     ("norm_region", 4, "NormRegion"), ("k", 5, "float")],
    "MVNParameter": [("normalize_variance", 1, "bool"), ("across_channels", 2, "bool"), ("eps", 3, "float")],
    # round_mode is left out on purpose: the thesis's 2016 Caffe did not have it.
    "PoolingParameter": [("pool", 1, "PoolMethod"), ("pad", 4, "uint32"), ("pad_h", 9, "uint32"),
                         ("pad_w", 10, "uint32"), ("kernel_size", 2, "uint32"), ("kernel_h", 5, "uint32"),
                         ("kernel_w", 6, "uint32"), ("stride", 3, "uint32"), ("stride_h", 7, "uint32"),
                         ("stride_w", 8, "uint32"), ("global_pooling", 12, "bool")],
    "PowerParameter": [("power", 1, "float"), ("scale", 2, "float"), ("shift", 3, "float")],
    "ReLUParameter": [("negative_slope", 1, "float")],
    "ReshapeParameter": [("shape", 1, "BlobShape"), ("axis", 2, "int32"), ("num_axes", 3, "int32")],
    "SolverParameter": [
        ("net", 24, "string"), ("train_net", 1, "string"), ("test_net", 2, "string", _R),
        ("test_iter", 3, "int32", _R), ("test_interval", 4, "int32"), ("base_lr", 5, "float"),
        ("display", 6, "int32"), ("max_iter", 7, "int32"), ("lr_policy", 8, "string"), ("gamma", 9, "float"),
        ("power", 10, "float"), ("momentum", 11, "float"), ("weight_decay", 12, "float"),
        ("stepsize", 13, "int32"), ("stepvalue", 34, "int32", _R), ("snapshot", 14, "int32"),
        ("snapshot_prefix", 15, "string"), ("solver_mode", 17, "SolverMode"), ("device_id", 18, "int32"),
        ("random_seed", 20, "int64"), ("iter_size", 36, "int32"), ("type", 40, "string"),
        ("regularization_type", 29, "string"), ("snapshot_after_train", 28, "bool"),
        ("test_initialization", 32, "bool"), ("average_loss", 33, "int32")],
}
ENUMS = {
    "Phase": ["TRAIN", "TEST"],
    "DimCheckMode": ["STRICT", "PERMISSIVE"],
    "DB": ["LEVELDB", "LMDB"],
    "PoolMethod": ["MAX", "AVE", "STOCHASTIC"],
    "NormRegion": ["ACROSS_CHANNELS", "WITHIN_CHANNEL"],
    "VarianceNorm": ["FAN_IN", "FAN_OUT", "AVERAGE"],
    "SolverMode": ["CPU", "GPU"],
}
_SCALARS = {"string": "TYPE_STRING", "float": "TYPE_FLOAT", "double": "TYPE_DOUBLE", "bool": "TYPE_BOOL",
            "int32": "TYPE_INT32", "int64": "TYPE_INT64", "uint32": "TYPE_UINT32"}


def _build_messages():
    fdp = descriptor_pb2.FileDescriptorProto(name="caffe_subset_test.proto", package="caffe", syntax="proto2")
    for enum, values in ENUMS.items():
        # Enum value names are package-scoped in protobuf; wrap each enum in its own message.
        holder = fdp.message_type.add(name=enum + "Holder")
        e = holder.enum_type.add(name=enum)
        for number, value in enumerate(values):
            e.value.add(name=value, number=number)
    FD = descriptor_pb2.FieldDescriptorProto
    for message, fields in SCHEMA.items():
        m = fdp.message_type.add(name=message)
        for name, number, kind, *rep in fields:
            f = m.field.add(name=name, number=number)
            f.label = FD.LABEL_REPEATED if rep else FD.LABEL_OPTIONAL
            if kind in _SCALARS:
                f.type = getattr(FD, _SCALARS[kind])
            elif kind in ENUMS:
                f.type, f.type_name = FD.TYPE_ENUM, f".caffe.{kind}Holder.{kind}"
            else:
                f.type, f.type_name = FD.TYPE_MESSAGE, f".caffe.{kind}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName("caffe." + name))
            for name in ("NetParameter", "SolverParameter")}


MESSAGES = _build_messages()
TRAIN, TEST = 0, 1


def parse(path, message="NetParameter"):
    """Strictly parses a prototxt file (protobuf text format) into a NetParameter/SolverParameter."""
    with open(path, encoding="utf-8") as f:
        return text_format.Parse(f.read(), MESSAGES[message]())


def net_path(family, variant, kind):
    return os.path.join(PROTOTXT, family, variant, f"net_{kind}.prototxt")


def active_layers(net, phase):
    """The layers Caffe instantiates in a phase (include/exclude rules on phase only)."""
    out = []
    for layer in net.layer:
        if layer.include and not any(not r.HasField("phase") or r.phase == phase for r in layer.include):
            continue
        if any(r.HasField("phase") and r.phase == phase for r in layer.exclude):
            continue
        out.append(layer)
    return out


# ------------------------------------------------------------------------ shapes by Caffe's rules
def _spatial(p, name, default):
    """kernel/pad/stride of a Convolution/Deconvolution parameter as (h, w)."""
    rep = list(getattr(p, name)) if name != "kernel" else list(p.kernel_size)
    h_name, w_name = {"kernel": ("kernel_h", "kernel_w")}.get(name, (name + "_h", name + "_w"))
    if p.HasField(h_name) or p.HasField(w_name):
        return getattr(p, h_name), getattr(p, w_name)
    if not rep:
        return default, default
    assert len(rep) == 1, "one value for both axes expected"
    return rep[0], rep[0]


def _pool_out(size, k, s, p):
    out = -(-(size + 2 * p - k) // s) + 1  # ceil
    if p > 0 and (out - 1) * s >= size + p:
        out -= 1
    return out


LMDB_SHAPES = {"color_298x218": (3, 218, 298), "depth_37x27": (1, 27, 37), "depth_74x54": (1, 54, 74)}


def walk_shapes(net, phase):
    """Blob shapes and learnable-parameter shapes of a net, by Caffe's rules (docs/specification.md section 2)."""
    blobs, params = {}, {}
    for layer in active_layers(net, phase):
        t, name = layer.type, layer.name
        ins = [blobs[b] for b in layer.bottom]
        if t == "Input":
            outs = [tuple(layer.input_param.shape[0].dim)]
        elif t == "Data":
            source = layer.data_param.source
            key = source.split("_", 1)[1]
            outs = [(layer.data_param.batch_size,) + LMDB_SHAPES[key]]
        elif t in ("Convolution", "Deconvolution"):
            p = layer.convolution_param
            kh, kw = _spatial(p, "kernel", None)
            (ph, pw), (sh, sw) = _spatial(p, "pad", 0), _spatial(p, "stride", 1)
            assert not p.dilation, name
            n, c, h, w = ins[0]
            g = p.group if p.HasField("group") else 1
            assert c % g == 0 and p.num_output % g == 0, f"{name}: group {g} vs {c} -> {p.num_output}"
            if t == "Convolution":
                oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
                weight = (p.num_output, c // g, kh, kw)
            else:
                oh, ow = sh * (h - 1) + kh - 2 * ph, sw * (w - 1) + kw - 2 * pw
                weight = (c, p.num_output // g, kh, kw)
            bias = p.bias_term if p.HasField("bias_term") else True
            params[name] = [weight] + ([(p.num_output,)] if bias else [])
            outs = [(n, p.num_output, oh, ow)]
        elif t == "Pooling":
            p = layer.pooling_param
            assert p.pool == 0 and not p.HasField("kernel_h") and not p.HasField("pad_h"), name
            n, c, h, w = ins[0]
            s = p.stride if p.HasField("stride") else 1
            outs = [(n, c, _pool_out(h, p.kernel_size, s, p.pad), _pool_out(w, p.kernel_size, s, p.pad))]
        elif t == "InnerProduct":
            p = layer.inner_product_param
            params[name] = [(p.num_output, math.prod(ins[0][1:])), (p.num_output,)]
            outs = [(ins[0][0], p.num_output)]
        elif t == "Reshape":
            dims = list(layer.reshape_param.shape.dim)
            dims = [ins[0][i] if d == 0 else d for i, d in enumerate(dims)]
            if -1 in dims:
                known = math.prod(d for d in dims if d != -1)
                dims[dims.index(-1)] = math.prod(ins[0]) // known
            assert math.prod(dims) == math.prod(ins[0]), f"{name}: cannot reshape {ins[0]} to {dims}"
            outs = [tuple(dims)]
        elif t == "Concat":
            axis = layer.concat_param.axis if layer.concat_param.HasField("axis") else 1
            for s in ins[1:]:
                assert s[:axis] + s[axis + 1:] == ins[0][:axis] + ins[0][axis + 1:], f"{name}: {ins}"
            outs = [ins[0][:axis] + (sum(s[axis] for s in ins),) + ins[0][axis + 1:]]
        elif t in ("ReLU", "LRN", "Dropout", "MVN", "Power", "Log"):
            outs = [ins[0]]
        elif t == "EuclideanLoss":
            assert ins[0] == ins[1], f"{name}: Euclidean between {ins[0]} and {ins[1]}"
            outs = [()]
        else:
            raise AssertionError(f"layer type {t} not covered by the test")
        assert len(outs) == len(layer.top), name
        blobs.update(zip(layer.top, outs))
    return blobs, params


# ------------------------------------------------------------------------------------------ tests
def test_layout_is_complete():
    for family, variant in NETS:
        for kind in ("train", "deploy"):
            assert os.path.isfile(net_path(family, variant, kind))
    for family in SOLVER_NET:
        assert os.path.isfile(os.path.join(PROTOTXT, family, "solver.prototxt"))
    assert os.path.isfile(os.path.join(PROTOTXT, "README.md"))


def test_strict_parser_rejects_unknown_fields():
    with pytest.raises(text_format.ParseError):
        text_format.Parse('layer { convolution_param { kernal_size: 3 } }', MESSAGES["NetParameter"]())


@pytest.mark.parametrize("family,variant", NETS, ids=NET_IDS)
def test_every_file_starts_with_a_comment_header_and_a_name(family, variant):
    for kind in ("train", "deploy"):
        with open(net_path(family, variant, kind), encoding="utf-8") as f:
            lines = f.read().splitlines()
        assert lines[0].startswith("#") and lines[1].startswith("#")
        assert parse(net_path(family, variant, kind)).name == f"{family}_{variant}"


@pytest.mark.parametrize("family,variant", NETS, ids=NET_IDS)
def test_deploy_output_shapes_by_caffe_rules(family, variant):
    net = parse(net_path(family, variant, "deploy"))
    assert net.layer[0].type == "Input" and list(net.layer[0].top) == ["X"]
    blobs, _ = walk_shapes(net, TEST)
    consumed = {b for layer in net.layer for b in layer.bottom if b not in layer.top}
    dangling = {b for layer in net.layer for b in layer.top} - consumed
    assert dangling == set(NETS[family, variant])
    for blob, shape in NETS[family, variant].items():
        assert blobs[blob] == shape


def test_intermediate_shapes_of_reference_section_3():
    blobs, params = walk_shapes(parse(net_path("global_context", "norm", "deploy")), TEST)
    assert blobs["conv1"] == (1, 96, 52, 72) and blobs["pool1"] == (1, 96, 26, 36)
    assert blobs["pool5"] == (1, 256, 13, 18) and params["fc-main"][0] == (1024, 256 * 13 * 18)
    blobs, _ = walk_shapes(parse(net_path("gradient", "norm", "deploy")), TEST)
    assert blobs["pool1"] == (1, 96, 25, 35) and blobs["grad_out"] == (1, 2, 25, 35)
    blobs, _ = walk_shapes(parse(net_path("joint", "A", "deploy")), TEST)
    assert blobs["joint"] == (1, 768, 25, 35)
    blobs, params = walk_shapes(parse(net_path("refining", "norm_abs", "deploy")), TEST)
    assert blobs["grad-upsample"] == (1, 2, 27, 37) and blobs["concat-global"] == (1, 3, 27, 37)
    assert blobs["est"] == (1, 3, 54, 74) and blobs["conv1-refine"] == (1, 96, 106, 146)
    assert blobs["pool1-refine"] == (1, 96, 54, 74) and blobs["concat"] == (1, 99, 54, 74)
    assert params["upsample"] == [(2, 1, 3, 3)] and params["upsample-global"] == [(3, 1, 2, 2)]
    blobs, _ = walk_shapes(parse(net_path("refining", "norm_abs_global_only", "deploy")), TEST)
    assert blobs["est"] == (1, 1, 54, 74) and blobs["concat"] == (1, 97, 54, 74)


@pytest.mark.parametrize("family,variant", NETS, ids=NET_IDS)
def test_train_and_deploy_define_the_same_weights(family, variant):
    train, deploy = parse(net_path(family, variant, "train")), parse(net_path(family, variant, "deploy"))
    for phase in (TRAIN, TEST):
        _, train_params = walk_shapes(train, phase)
        _, deploy_params = walk_shapes(deploy, TEST)
        train_params.pop("gradientFilter", None)  # the GT side, not part of the deployed network
        assert train_params == deploy_params
    deploy_types = [layer.type for layer in deploy.layer]
    assert "Dropout" in deploy_types and not any(t.endswith("Loss") or t == "Data" for t in deploy_types)


DATA_SIZE = {"global_context": "37x27", "gradient": "37x27", "joint": "37x27", "refining": "74x54"}


@pytest.mark.parametrize("family,variant", NETS, ids=NET_IDS)
def test_train_data_layers(family, variant):
    net = parse(net_path(family, variant, "train"))
    batch = 16 if family == "refining" else 32
    for phase, prefix in ((TRAIN, "train"), (TEST, "test")):
        data = [layer for layer in active_layers(net, phase) if layer.type == "Data"]
        by_top = {layer.top[0]: layer for layer in data}
        assert sorted(by_top) == ["X", "Y"]
        color, depth = by_top["X"], by_top["Y"]
        assert color.data_param.source == f"{prefix}_color_298x218"
        assert depth.data_param.source == f"{prefix}_depth_{DATA_SIZE[family]}"
        for layer in data:
            assert layer.data_param.backend == 1 and layer.data_param.batch_size == batch  # LMDB
        assert list(color.transform_param.mean_value) == [127] and not color.transform_param.HasField("scale")
        assert depth.transform_param.scale == pytest.approx(0.00390625)
        assert not depth.transform_param.mean_value


def _losses(net):
    return {layer.name: layer for layer in net.layer if layer.type == "EuclideanLoss"}


def _producer(net, blob):
    """The last layer that writes `blob` before it is read (in-place layers included)."""
    return [layer for layer in net.layer if blob in layer.top][-1]


def _log_gt_chain(net, blob):
    """Checks `blob` = Power(0.179581 x + 1) of Log(0.996078431 Y + 0.00392156863)."""
    power = _producer(net, blob)
    assert power.type == "Power"
    assert (power.power_param.scale, power.power_param.shift) == pytest.approx((0.179581, 1))
    log = _producer(net, power.bottom[0])
    assert log.type == "Log" and list(log.bottom) == ["Y"]
    assert (log.log_param.scale, log.log_param.shift) == pytest.approx((0.996078431, 0.00392156863))
    assert not log.log_param.HasField("base") or log.log_param.base == -1


def _mvn_of(net, blob, mean_only=False):
    mvn = _producer(net, blob)
    assert mvn.type == "MVN", blob
    p = mvn.mvn_param
    assert (p.normalize_variance if p.HasField("normalize_variance") else True) == (not mean_only)
    assert not p.across_channels
    return mvn.bottom[0]


def _check_loss(net, loss, kind, out, weight=None):
    """kind: abs/log_abs (raw vs GT or log GT), norm (MVN both), sc_inv (mean-only MVN of log GT)."""
    assert loss.type == "EuclideanLoss"
    if weight is None:
        assert not loss.loss_weight or list(loss.loss_weight) == [1]
    else:
        assert list(loss.loss_weight) == pytest.approx([weight])
    a, b = loss.bottom
    if kind in ("norm", "sc_inv"):
        a, b = _mvn_of(net, a, kind == "sc_inv"), _mvn_of(net, b, kind == "sc_inv")
    pair = {a, b}
    assert out in pair, (loss.name, pair)
    gt = (pair - {out}).pop()
    if kind in ("log_abs", "sc_inv"):
        _log_gt_chain(net, gt)
    else:
        assert gt == "Y" or gt == "Y_grad", gt


def _check_gradient_gt(net):
    layer = _producer(net, "Y_grad")
    assert layer.name == "gradientFilter" and layer.type == "Convolution" and list(layer.bottom) == ["Y"]
    p = layer.convolution_param
    assert (p.num_output, list(p.kernel_size), list(p.pad)) == (2, [3], [])
    assert [(s.lr_mult, s.decay_mult) for s in layer.param] == [(0, 0), (0, 0)]


@pytest.mark.parametrize("family,variant", NETS, ids=NET_IDS)
def test_train_losses(family, variant):
    net = parse(net_path(family, variant, "train"))
    losses = _losses(net)
    if family == "global_context":
        assert list(losses) == ["loss"]
        _check_loss(net, losses["loss"], variant, "depth")
    elif family == "gradient":
        assert list(losses) == ["loss"]
        _check_gradient_gt(net)
        _check_loss(net, losses["loss"], variant, "gradient")
        if variant == "abs":
            assert list(losses["loss"].bottom) == ["Y_grad", "gradient"]
    elif family == "joint":
        assert sorted(losses) == ["loss_depth", "loss_grad"]
        _check_gradient_gt(net)
        _check_loss(net, losses["loss_depth"], "norm", "depth", 1)
        _check_loss(net, losses["loss_grad"], "norm", "gradient", 1)
    elif variant in ("abs", "log_abs"):
        assert list(losses) == ["loss"]
        _check_loss(net, losses["loss"], variant, "depth-refine")
    elif variant.startswith("norm_abs"):
        assert sorted(losses) == ["loss_abs", "loss_norm"]
        _check_loss(net, losses["loss_norm"], "norm", "depth-refine", 0.5)
        _check_loss(net, losses["loss_abs"], "abs", "depth-refine", 0.5)
    else:
        assert variant == "sc_inv_abs" and sorted(losses) == ["loss_abs", "loss_sc_inv"]
        _check_loss(net, losses["loss_sc_inv"], "sc_inv", "depth-refine", 0.5)
        _check_loss(net, losses["loss_abs"], "log_abs", "depth-refine", 0.5)


# lr_mult (weight, bias) per layer with weights: docs/specification.md tables 3.1-3.4.
GLOBAL_LR = {"conv1": 0.02, "conv2": 0.02, "conv3": 0.02, "conv4": 0.02, "conv5": 0.02, "fc-main": 1,
             "fc-depth": 0.2}
GRADIENT_LR = {"conv1": 0.001, "conv2-grad": 1, "conv3-grad": 1, "conv4-grad": 1, "conv5-grad": 0.1,
               "gradientFilter": 0}
JOINT_A_LR = {"conv1": 0.02, "conv2": 0.02, "conv3": 0.02, "conv1_g": 0.0005, "conv2-grad": 0.5,
              "conv3-grad": 0.5, "conv4_joint": 0.02, "conv5": 0.02, "fc-main": 1, "fc-depth": 0.2,
              "conv4-grad": 0.5, "conv5-grad": 0.05, "gradientFilter": 0}
JOINT_B_LR = {"conv1": 0.02, "conv2": 0.02, "conv3": 1, "conv4": 1, "conv5": 0.02, "fc-main": 1,
              "fc-depth": 0.2, "conv4-grad": 0.5, "conv5-grad": 0.05, "gradientFilter": 0}
REFINE_HEAD_LR = {"upsample": 0, "upsample-global": 0, "conv1-refine": 0.001, "conv2-refine": 1,
                  "conv3-refine": 1, "conv4-refine": 1, "conv5-refine": 0.01}
FROZEN_GRADIENT = ["conv1-grad", "conv2-grad", "conv3-grad", "conv4-grad", "conv5-grad"]


def expected_lr(family, variant):
    if family == "global_context":
        return GLOBAL_LR
    if family == "gradient":
        return GRADIENT_LR
    if family == "joint":
        return JOINT_A_LR if variant == "A" else JOINT_B_LR
    table = {name: 0 for name in GLOBAL_LR}
    if variant != "norm_abs_global_only":
        table.update({name: 0 for name in FROZEN_GRADIENT})
    table.update(REFINE_HEAD_LR)
    if variant == "norm_abs_global_only":
        del table["upsample"]
    return table


@pytest.mark.parametrize("family,variant", NETS, ids=NET_IDS)
def test_lr_mult_table(family, variant):
    net = parse(net_path(family, variant, "train"))
    _, params = walk_shapes(net, TRAIN)
    expected = expected_lr(family, variant)
    assert set(params) == set(expected)
    for layer in net.layer:
        if layer.name not in params:
            assert not layer.param, layer.name
            continue
        specs = [(s.lr_mult, s.decay_mult) for s in layer.param]
        assert len(specs) == len(params[layer.name]), f"{layer.name}: one param block per blob"
        decay = 0 if layer.name == "gradientFilter" or layer.type == "Deconvolution" else 1
        lr = expected[layer.name]
        assert specs == [pytest.approx((lr, decay))] * len(specs), layer.name


def _filler(f):
    if f.type == "gaussian":
        return f"gaussian {f.std:.3g}"
    if f.type == "constant":
        return f"constant {f.value:.3g}"
    return f.type


# weight / bias fillers of freshly initialised layers (docs/specification.md tables)
GLOBAL_FILL = {"conv1": ("gaussian 0.01", "constant 0"), "conv2": ("gaussian 0.01", "constant 0.1"),
               "conv3": ("gaussian 0.01", "constant 0"), "conv4": ("gaussian 0.01", "constant 0.1"),
               "conv5": ("gaussian 0.01", "constant 0.1"), "fc-main": ("xavier", "constant 0"),
               "fc-depth": ("gaussian 0.001", "constant 0.5")}
GRADIENT_FILL = {"conv1": ("gaussian 0.01", "constant 0"), "conv2-grad": ("xavier", "constant 0.1"),
                 "conv3-grad": ("xavier", "constant 0"), "conv4-grad": ("xavier", "constant 0.1")}
REFINE_FILL = {"conv1-refine": ("constant 0", "constant 0"), "conv2-refine": ("xavier", "constant 0"),
               "conv3-refine": ("xavier", "constant 0"), "conv4-refine": ("xavier", "constant 0.1"),
               "conv5-refine": ("gaussian 0.01", "constant 0.5"), "upsample": ("bilinear",),
               "upsample-global": ("bilinear",)}


@pytest.mark.parametrize("family,variant", NETS, ids=NET_IDS)
def test_fillers(family, variant):
    net = parse(net_path(family, variant, "train"))
    if family == "global_context":
        expected = GLOBAL_FILL
    elif family == "gradient":
        std = {"abs": "0.002", "norm": "0.01"}[variant]
        expected = {**GRADIENT_FILL, "conv5-grad": (f"gaussian {std}", "constant 0")}
    elif family == "refining":
        expected = {k: v for k, v in REFINE_FILL.items() if k in {layer.name for layer in net.layer}}
    else:
        expected = {"conv5-grad": ("gaussian 0.01", "constant 0"), "fc-depth": GLOBAL_FILL["fc-depth"]}
    layers = {layer.name: layer for layer in net.layer}
    for name, fill in expected.items():
        layer = layers[name]
        p = layer.inner_product_param if layer.type == "InnerProduct" else layer.convolution_param
        got = (_filler(p.weight_filler), _filler(p.bias_filler))[:len(fill)]
        assert got == fill, name


# The last convolution of each network has no ReLU; every other convolution and fc-main has one.
NO_RELU = {"conv5-grad", "conv5-refine", "gradientFilter"}


@pytest.mark.parametrize("family,variant", NETS, ids=NET_IDS)
def test_relu_placement(family, variant):
    for kind in ("train", "deploy"):
        net = parse(net_path(family, variant, kind))
        relu_blobs = []
        for layer in net.layer:
            if layer.type == "ReLU":
                assert list(layer.bottom) == list(layer.top), f"{layer.name} should be in place"
                relu_blobs.append(layer.bottom[0])
        expected = [layer.top[0] for layer in net.layer
                    if layer.type == "Convolution" and layer.name not in NO_RELU or layer.name == "fc-main"]
        assert sorted(relu_blobs) == sorted(expected)


@pytest.mark.parametrize("family,variant", NETS, ids=NET_IDS)
def test_lrn_dropout_and_power_settings(family, variant):
    net = parse(net_path(family, variant, "deploy"))
    for layer in net.layer:
        if layer.type == "LRN":
            p = layer.lrn_param
            assert (p.local_size, p.alpha, p.beta) == pytest.approx((5, 1e-4, 0.75)) and p.norm_region == 0
        if layer.type == "Dropout":
            assert layer.dropout_param.dropout_ratio == pytest.approx(0.5)
    layers = {layer.name: layer for layer in net.layer}
    if "gradient" in NETS[family, variant]:
        power = _producer(net, "gradient")
        scale = 0.02 if (family, variant) == ("gradient", "abs") else 0.01
        assert power.type == "Power" and list(power.bottom) == ["grad_out"]
        assert power.power_param.scale == pytest.approx(scale)
    if family == "refining":
        power = layers["power-refine"]
        assert list(power.bottom) == ["depth-refine_"] and power.power_param.scale == pytest.approx(0.01)
        assert layers["conv5-refine"].top[0] == "depth-refine_"


@pytest.mark.parametrize("family", list(SOLVER_NET))
def test_solver(family):
    path = os.path.join(PROTOTXT, family, "solver.prototxt")
    s = parse(path, "SolverParameter")
    assert s.net == f"{SOLVER_NET[family]}/net_train.prototxt"
    assert os.path.isfile(os.path.join(os.path.dirname(path), s.net))  # relative to the solver's folder
    assert s.base_lr == pytest.approx(BASE_LR[family])
    assert (s.momentum, s.weight_decay) == pytest.approx((0.9, 0.005))
    assert s.lr_policy == "fixed" and s.max_iter == 100000 and s.snapshot == 10000
    assert s.snapshot_prefix == "snaps/" and list(s.test_iter) == [50] and s.test_interval == 500
    assert s.display == 20 and s.solver_mode == 1  # GPU


def _layer_list(net):
    return [(layer.name, layer.type, list(layer.bottom), list(layer.top)) for layer in net.layer]


def test_eigen_depth_reader_agrees_with_protobuf():
    """eigen_depth.caffe's reader sees the same layers, shapes and solver fields as protobuf's parser."""
    for family, variant in NETS:
        for kind in ("train", "deploy"):
            path = net_path(family, variant, kind)
            ours, theirs = parse(path), read_prototxt(path)
            assert _layer_list(theirs) == _layer_list(ours), path
            for phase in (TRAIN, TEST) if kind == "train" else (TEST,):
                assert walk_shapes(theirs, phase) == walk_shapes(ours, phase), (path, phase)
    for family in SOLVER_NET:
        path = os.path.join(PROTOTXT, family, "solver.prototxt")
        ours, theirs = parse(path, "SolverParameter"), read_solver(path)
        for field in ("net", "base_lr", "momentum", "weight_decay", "lr_policy", "max_iter", "snapshot",
                      "snapshot_prefix", "test_interval", "display", "solver_mode"):
            assert getattr(theirs, field) == getattr(ours, field), (path, field)
        assert list(theirs.test_iter) == list(ours.test_iter)
