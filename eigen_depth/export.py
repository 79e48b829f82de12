"""ONNX export of a deploy network: `to_onnx(prototxt, caffemodel, out)`.

The graph is the CaffeNet itself, traced by torch's TorchScript-based ONNX exporter
(`torch.onnx.export(..., dynamo=False)`, which needs nothing beyond torch and onnx). Its inputs and outputs
carry the Caffe blob names (`X` in, `depth` / `gradient` / `depth-refine` out), the weights are the
caffemodel's, and every layer keeps its Caffe semantics (Caffe's ceil-rule pooling with padded cells that
never win, MVN with eps outside the square root, the stored bilinear deconvolution weights). The model is
checked with `onnx.checker` (full check, with shape inference) before it is written, and written atomically.

With dynamic_batch the batch axis of every input and output is symbolic ("batch"); otherwise it is the
prototxt's. The spatial sizes are always fixed: they are the network's.

The traced graph is tidied before the check: constant-only subgraphs are folded (torch leaves F.pad's
paddings as a runtime computation), nodes, tensors and weights are named after the Caffe layers
(`norm1/Mul`, `conv1/blob0`), the outputs carry their Caffe shapes, ONNX shape inference fills in every
intermediate shape, and casts to a tensor's own type are dropped. None of this changes a value.
"""
import contextlib
import io
import os
import re
import warnings

import numpy as np
import torch

from .atomic import atomic_write, make_folder
from .errors import EigenDepthError, ShapeError

DEFAULT_OPSET = 17            # widely supported (onnxruntime >= 1.11, TensorRT 8.6+, OpenCV 4.8+)
MIN_OPSET = 9                 # the oldest opset every thesis network exports and runs at (tested down to it)
BATCH_AXIS_NAME = "batch"


class ExportError(EigenDepthError):
    """A network that torch's ONNX exporter or onnx's checker rejects."""


def max_opset():
    """The newest opset the TorchScript-based exporter of this torch writes."""
    from torch.onnx import _constants
    return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET))


def check_opset(opset):
    """The opset to write (DEFAULT_OPSET for None); ExportError outside what the exporter supports."""
    opset = DEFAULT_OPSET if opset is None else int(opset)
    if not MIN_OPSET <= opset <= max_opset():
        raise ExportError(f"opset {opset} is not supported: choose {MIN_OPSET} to {max_opset()} "
                          f"(default {DEFAULT_OPSET})")
    return opset


def load_net(model, weights=None):
    """The deploy net of `model` (a prototxt path, built in the TEST phase, or a CaffeNet) in float32 and eval
    mode, with the caffemodel `weights` (every layer with weights must find them there) copied in if given."""
    from .inference import build_deploy_net
    from .net import CaffeNet
    if isinstance(model, CaffeNet):
        net = model
        if weights is not None:
            net.copy_from(weights, strict=True)
    else:
        if weights is None:
            raise ExportError(f"{model}: exporting needs the weights (a .caffemodel)")
        net = build_deploy_net(model)
        net.copy_from(weights, strict=True)
    if not net.input_names:
        raise ShapeError(f"{net.source}: has no Input layer (data layers cannot be exported); "
                         f"export the deploy prototxt, whose input is an Input layer such as X")
    if not net.output_names:
        raise ShapeError(f"{net.source}: has no output blob to export")
    return net.float().eval()


class _Graph(torch.nn.Module):
    """The module the exporter traces: positional inputs in net.input_names order, a tuple of the net's
    outputs in net.output_names order."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, *inputs):
        outputs = self.net(dict(zip(self.net.input_names, inputs)))
        return tuple(outputs[name] for name in self.net.output_names)


class _Prefix(torch.nn.Module):
    """The net up to layer `end`, every blob made so far an output (so that no layer is dead code): a probe of
    which layer the exporter rejects."""

    def __init__(self, net, end):
        super().__init__()
        self.net, self.end = net, end

    def forward(self, *inputs):
        feed = dict(zip(self.net.input_names, inputs))
        blobs = self.net(feed, keep_blobs=True, end=self.end)
        return tuple(value for name, value in blobs.items() if name not in feed)


@contextlib.contextmanager
def _exporter_log_held_back():
    """torch's TorchScript exporter turns its log on for every export and, when it fails, writes the whole IR
    graph to the process's standard output (file descriptor 1, from C++): held back while it exports, since
    the error names what failed. (Output of other threads in those seconds is held back too.)"""
    import sys
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 to redirect
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _first_rejected_layer(net, examples, opset):
    """The first layer whose prefix of the net torch's exporter rejects (a binary search over the layers; each
    probe exports without the weights), or None when every prefix exports."""
    def rejected(index):
        try:
            with warnings.catch_warnings(), torch.no_grad(), _exporter_log_held_back():
                warnings.simplefilter("ignore")
                torch.onnx.export(_Prefix(net, net.layers[index].name), examples, io.BytesIO(), dynamo=False,
                                  opset_version=opset, export_params=False, do_constant_folding=False)
        except EigenDepthError:
            raise
        except Exception:  # the exporter's own errors, as in export_model
            return True
        return False
    low = next((i for i, layer in enumerate(net.layers) if layer.type_name != "Input"), None)
    high = len(net.layers) - 1
    if low is None or not rejected(high):
        return None
    while low < high:
        middle = (low + high) // 2
        if rejected(middle):
            high = middle
        else:
            low = middle + 1
    return net.layers[low]


def export_model(net, dynamic_batch=False, opset=None):
    """The checked onnx.ModelProto of a CaffeNet (see the module docstring); ExportError when the exporter
    or the checker rejects it."""
    import onnx
    opset = check_opset(opset)
    names_in, names_out = list(net.input_names), list(net.output_names)
    shared = set(names_in) & set(names_out)
    if shared:
        raise ShapeError(f"{net.source}: blob(s) {', '.join(sorted(shared))} are both input and output; "
                         f"ONNX needs distinct names")
    examples = tuple(torch.zeros(tuple(int(d) for d in net.blob_shapes[name]), device=net.device)
                     for name in names_in)
    dynamic_axes = {name: {0: BATCH_AXIS_NAME} for name in names_in + names_out} if dynamic_batch else None
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad(), _exporter_log_held_back():
            # The tracer warns about every Python-level shape check; the spatial sizes are the net's and
            # fixed, and the batch axis stays symbolic where it matters (Reshape's 0 copies it).
            warnings.simplefilter("ignore")
            torch.onnx.export(_Graph(net), examples, buffer, dynamo=False, input_names=names_in,
                              output_names=names_out, opset_version=opset, dynamic_axes=dynamic_axes,
                              do_constant_folding=True, export_params=True)
    except EigenDepthError:
        raise
    except Exception as error:  # the exporter raises many types (RuntimeError, OnnxExporterError, ...)
        reason = f"{type(error).__name__}: {' '.join(str(error).split())}"
        layer = _first_rejected_layer(net, examples, opset)
        if layer is not None:
            raise ExportError(f"{net.source}: layer '{layer.name}' ({layer.type_name}) cannot be exported by torch's "
                              f"ONNX exporter at opset {opset} ({reason})") from None
        raise ExportError(f"{net.source}: torch's ONNX exporter failed at opset {opset}: {reason}") from None
    model = onnx.load_from_string(buffer.getvalue())
    del buffer
    model.producer_name = "eigen_depth"
    model.doc_string = f"Caffe network {os.path.basename(str(net.source))} ({net.net_param.name or 'unnamed'})"
    try:
        _fold_constants(model)
        _caffe_names(model, net)
        _declare_shapes(model, net, dynamic_batch)
        _infer_shapes(model)
        _drop_identity_casts(model)
    except Exception as error:  # onnx.shape_inference.InferenceError, the reference evaluator's errors
        raise ExportError(f"{net.source}: ONNX shape inference or constant folding failed on the exported graph "
                          f"(opset {opset}): {' '.join(str(error).split())}") from None
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as error:  # onnx.checker.ValidationError, onnx.shape_inference.InferenceError
        raise ExportError(f"{net.source}: the exported graph fails onnx.checker: "
                          f"{' '.join(str(error).split())}") from None
    return model


# -- Tidying the traced graph ---------------------------------------------------------------------------
# torch's exporter computes F.pad's paddings with a Slice of step -1 that its own constant folding leaves
# alone, so the pads of every Pad stay a runtime computation and ONNX shape inference loses the shapes after
# the first one. The passes below fold such constant-only subgraphs (evaluated by onnx's reference
# implementation, exactly), rename the traced names after the Caffe layers, state the inputs' and outputs'
# Caffe shapes, and drop casts to the type a tensor already has.
_FOLD_LIMIT_BYTES = 1 << 16     # initializers larger than this (the weights) are never folded into
_NEVER_FOLDED = {"RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial", "Dropout"}


def _fold_constants(model):
    import onnx
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator
    graph = model.graph
    opsets = {o.domain: o.version for o in model.opset_import}
    known = {i.name: numpy_helper.to_array(i) for i in graph.initializer
             if np.prod(i.dims, dtype=np.int64) * 8 <= _FOLD_LIMIT_BYTES}
    nodes = []
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            (known[node.output[0]],) = ReferenceEvaluator(node, opsets=opsets).run(None, {})
            nodes.append(node)
            continue
        inputs = [name for name in node.input if name]
        if inputs and node.domain in ("", "ai.onnx") and node.op_type not in _NEVER_FOLDED \
                and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute) \
                and all(name in known for name in inputs):
            values = ReferenceEvaluator(node, opsets=opsets).run(None, {name: known[name] for name in inputs})
            for name, value in zip(node.output, values):
                value = np.asarray(value)
                known[name] = value
                nodes.append(helper.make_node("Constant", [], [name], name=f"{node.name or name}_folded",
                                              value=numpy_helper.from_array(value, name)))
            continue
        nodes.append(node)
    used = {name for node in nodes for name in node.input} | {o.name for o in graph.output}
    nodes = [n for n in nodes if n.op_type != "Constant" or any(o in used for o in n.output)]
    del graph.node[:]
    graph.node.extend(nodes)


_TRACED_TENSOR = re.compile(r"^/net/layers\.(\d+)/")
_TRACED_BLOB = re.compile(r"^net\.layers\.(\d+)\.blobs\.(\d+)$")


def _caffe_names(model, net):
    """Names the traced nodes, tensors and weights after the Caffe layers (`norm1/Mul`, `conv1/blob0`)
    instead of torch's module paths (`/net/layers.3/Mul`, `net.layers.1.blobs.0`)."""
    layer_names = [layer.name for layer in net.layers]

    def caffe(name):
        match = _TRACED_BLOB.match(name)
        if match:
            return f"{layer_names[int(match.group(1))]}/blob{match.group(2)}"
        return _TRACED_TENSOR.sub(lambda m: f"{layer_names[int(m.group(1))]}/", name)

    graph = model.graph
    for node in graph.node:
        node.name = caffe(node.name)
        node.input[:] = [caffe(name) for name in node.input]
        node.output[:] = [caffe(name) for name in node.output]
    for tensor in graph.initializer:
        tensor.name = caffe(tensor.name)
    for value in list(graph.value_info) + list(graph.input):
        value.name = caffe(value.name)


def _infer_shapes(model):
    """Fills graph.value_info by ONNX's strict shape inference, run on a copy without the large weights
    (declared as inputs of their shape instead): the same shapes, without copying the weights twice."""
    import onnx
    from onnx import helper
    skeleton = onnx.ModelProto()
    graph = model.graph
    large = [i for i in graph.initializer if np.prod(i.dims, dtype=np.int64) * 8 > _FOLD_LIMIT_BYTES]
    large_names = {i.name for i in large}
    skeleton.ir_version = model.ir_version
    skeleton.opset_import.extend(model.opset_import)
    skeleton.graph.name = graph.name
    skeleton.graph.node.extend(graph.node)
    skeleton.graph.input.extend(graph.input)
    skeleton.graph.input.extend(helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in large)
    skeleton.graph.output.extend(graph.output)
    skeleton.graph.initializer.extend(i for i in graph.initializer if i.name not in large_names)
    inferred = onnx.shape_inference.infer_shapes(skeleton, check_type=True, strict_mode=True, data_prop=True)
    del graph.value_info[:]
    graph.value_info.extend(inferred.graph.value_info)


def _declare_shapes(model, net, dynamic_batch):
    """The graph's inputs and outputs get the Caffe blob shapes (the batch axis symbolic or the prototxt's)."""
    values = {v.name: v for v in list(model.graph.input) + list(model.graph.output)}
    for name in list(net.input_names) + list(net.output_names):
        dims = values[name].type.tensor_type.shape.dim
        shape = [int(d) for d in net.blob_shapes[name]]
        del dims[:]
        for axis, size in enumerate(shape):
            dim = dims.add()
            if axis == 0 and dynamic_batch:
                dim.dim_param = BATCH_AXIS_NAME
            else:
                dim.dim_value = size


def _drop_identity_casts(model):
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type
             for v in list(graph.input) + list(graph.value_info) + list(graph.output)}
    types.update({i.name: i.data_type for i in graph.initializer})
    outputs = {o.name for o in graph.output}
    rename, nodes = {}, []
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
        if node.op_type == "Cast" and node.output[0] not in outputs:
            target = next(a.i for a in node.attribute if a.name == "to")
            if types.get(node.input[0]) == target:
                rename[node.output[0]] = node.input[0]
                continue
        nodes.append(node)
    kept = {name for node in nodes for name in node.output} | {i.name for i in graph.input}
    del graph.node[:]
    graph.node.extend(nodes)
    infos = [v for v in graph.value_info if v.name in kept]
    del graph.value_info[:]
    graph.value_info.extend(infos)


def onnx_bytes(net, dynamic_batch=False, opset=None):
    """The serialized, checked ONNX model of a CaffeNet."""
    return export_model(net, dynamic_batch, opset).SerializeToString()


def to_onnx(model, weights, out, dynamic_batch=False, opset=None):
    """Exports the deploy prototxt `model` (or a CaffeNet) with the caffemodel `weights` to the ONNX file
    `out` (written under a temporary name, then renamed). Returns the checked onnx.ModelProto."""
    check_opset(opset)
    net = load_net(model, weights)
    proto = export_model(net, dynamic_batch=dynamic_batch, opset=opset)
    folder = os.path.dirname(os.path.abspath(os.fspath(out)))
    make_folder(folder)
    with atomic_write(out) as handle:
        handle.write(proto.SerializeToString())
    return proto


def compare_with_onnxruntime(onnx_path, net, batch=1, seed=0):
    """Runs the ONNX file with onnxruntime and the net with torch on the same random inputs (uniform in
    [-127, 128], the range of a preprocessed image); returns {output: max |difference| / max |ours|}."""
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("checking with onnxruntime needs it installed (pip install onnxruntime)") from None
    rng = np.random.default_rng(seed)
    feed = {name: rng.uniform(-127, 128, (batch,) + tuple(int(d) for d in net.blob_shapes[name][1:]))
            .astype(np.float32) for name in net.input_names}
    session = onnxruntime.InferenceSession(os.fspath(onnx_path), providers=["CPUExecutionProvider"])
    theirs = session.run(list(net.output_names), feed)
    with torch.no_grad():
        ours = net({name: torch.from_numpy(value) for name, value in feed.items()})
    errors = {}
    for name, value in zip(net.output_names, theirs):
        expected = ours[name].detach().cpu().numpy()
        scale = float(np.abs(expected).max()) or 1.0
        errors[name] = float(np.abs(value - expected).max()) / scale
    return errors


def describe_io(model):
    """'inputs X (batch, 3, 218, 298); outputs depth (batch, 1, 27, 37)' for an onnx.ModelProto."""
    def shape(value):
        dims = value.type.tensor_type.shape.dim
        return "(" + ", ".join(d.dim_param or str(d.dim_value) for d in dims) + ")"
    initializers = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    return (f"inputs {', '.join(f'{v.name} {shape(v)}' for v in inputs)}; "
            f"outputs {', '.join(f'{v.name} {shape(v)}' for v in model.graph.output)}")
