"""CaffeNet: a NetParameter and a phase turned into a torch module that runs the layer graph by blob name.

The net owns the graph and nothing about layers' internals: which layers the phase/level/stages include,
blob shapes (each layer's setup computes its tops from its bottoms), in-place tops (a top that reuses a
bottom's name replaces that blob, as in Caffe), blobs read by several layers (Caffe's implicit splits:
here the tensor is simply reused and autograd sums the gradients), loss weights, which layers need
gradients (lr_mult, propagate_down, force_backward: the rest runs under no_grad), weight sharing by
ParamSpec name, and weight loading/saving by layer name.
"""
import os
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from . import fusion
from .caffe import array_to_blob, blob_to_array, read_caffemodel, read_net, schema
from .caffe.io import release_pages, require_layers
from .caffe.schema import TEST, TRAIN
from .errors import CaffemodelError, EigenDepthError, LayerError, ShapeError
from .layers import layer_class
from .layers.base import check_fits, recording

PHASE_NAMES = {TRAIN: "TRAIN", TEST: "TEST"}
_COPY_CHUNK_VALUES = 1 << 20  # 4 MiB of float32: at most this much of a weights file is held twice while loading


def parse_phase(phase):
    """TRAIN/TEST from 0/1, "train"/"test" or the constants."""
    if isinstance(phase, str):
        try:
            return {"TRAIN": TRAIN, "TEST": TEST}[phase.upper()]
        except KeyError:
            raise ValueError(f"phase must be TRAIN or TEST, not {phase!r}") from None
    if phase not in (TRAIN, TEST):
        raise ValueError(f"phase must be TRAIN (0) or TEST (1), not {phase!r}")
    return int(phase)


def state_meets_rule(phase, level, stages, rule):
    """Caffe's StateMeetsRule."""
    if rule.HasField("phase") and rule.phase != phase:
        return False
    if rule.HasField("min_level") and level < rule.min_level:
        return False
    if rule.HasField("max_level") and level > rule.max_level:
        return False
    return all(s in stages for s in rule.stage) and not any(s in stages for s in rule.not_stage)


def layer_included(layer, phase, level, stages):
    """Caffe's FilterNet rule for one layer: include rules (any met) or exclude rules (none met)."""
    if len(layer.include) and len(layer.exclude):
        raise LayerError(f"layer '{layer.name}': specify include or exclude rules, not both")
    if len(layer.include):
        return any(state_meets_rule(phase, level, stages, rule) for rule in layer.include)
    return not any(state_meets_rule(phase, level, stages, rule) for rule in layer.exclude)


class ParamInfo:
    """One learnable blob: where it lives and its multipliers (what the solver needs)."""

    __slots__ = ("layer", "index", "parameter", "lr_mult", "decay_mult", "owner")

    def __init__(self, layer, index, parameter, lr_mult, decay_mult, owner=None):
        self.layer, self.index, self.parameter = layer, index, parameter
        self.lr_mult, self.decay_mult = lr_mult, decay_mult
        self.owner = owner  # (layer, index) of the blob this one shares, or None

    def __repr__(self):
        return f"ParamInfo({self.layer}[{self.index}] {tuple(self.parameter.shape)} lr_mult={self.lr_mult} " \
               f"decay_mult={self.decay_mult})"


class CopyReport:
    """What copy_from did: layers whose blobs were copied, target layers left at their fillers, and
    source layers the net does not have."""

    def __init__(self, copied, missing, ignored):
        self.copied, self.missing, self.ignored = copied, missing, ignored

    def __repr__(self):
        return (f"CopyReport(copied={len(self.copied)} layers, missing={self.missing}, "
                f"ignored={self.ignored})")


class CaffeNet(nn.Module):
    """A Caffe network on torch.

    net_param: a NetParameter or a path to a prototxt/caffemodel. phase: TRAIN or TEST.
    input_shapes: {input blob: shape} overriding the Input layers' shapes (e.g. another batch size).
    data_shapes: {top: shape} for source layers whose shapes come from data (Data, HDF5Data).
    weights: a caffemodel (or NetParameter, or {layer: [arrays]}) to copy by layer name; layers it
    lacks start from the prototxt's fillers (seeded by `seed`; fill=False leaves zeros, for shape
    inspection). Load more later with copy_from.
    data: the DataSettings its Data / HDF5Data layers read with (default: eigen_depth.data.current()).
    fuse: where no gradient is needed, run BatchNorm / Scale / ReLU chains as one operation (equal up to float32
    rounding) and chains of Concats into one buffer (eigen_depth.fusion); False runs every layer separately,
    in Caffe's order. Settable later.
    """

    def __init__(self, net_param, phase=TEST, level=0, stages=(), input_shapes=None, seed=None,
                 bilinear="2016", source=None, weights=None, fill=True, data=None, fuse=True):
        super().__init__()
        self.fuse = fuse
        if not isinstance(net_param, schema.NetParameter):
            source = os.fspath(net_param)
            net_param = require_layers(read_net(source), source)
        self.source = source or "<net>"
        self.net_param = net_param
        self.phase = parse_phase(phase)
        state = net_param.state
        self.level = level or state.level
        self.stages = tuple(stages) or tuple(state.stage)
        self.bilinear = bilinear
        self.layer_params = [layer for layer in net_param.layer
                             if layer_included(layer, self.phase, self.level, self.stages)]
        self.layers = nn.ModuleList()
        self.register_buffer("_probe", torch.zeros(0), persistent=False)  # follows .to(device/dtype)
        self.input_names = []
        self.data_settings = data
        if data is None:
            self._build(dict(input_shapes or {}))
        else:
            from .data.settings import using
            with using(data):
                self._build(dict(input_shapes or {}))
        self._check_paired_sources()
        self._share_and_freeze()
        self._plan_gradients()
        self.copy_report = self.copy_from(weights) if weights is not None else None
        loaded = set(self.copy_report.copied) if self.copy_report else set()
        generator = torch.Generator().manual_seed(seed if seed is not None else 0x5EED)
        for layer in self.layers:
            if fill and layer.name not in loaded:
                layer.fill(generator, bilinear=self.bilinear)
        self._tie_shared_blobs()

    # Building ---------------------------------------------------------------------------------
    def _located(self, error, param):
        """`error` from building a layer, with this net's file and the layer in front when it names neither."""
        text = str(error)
        named = self.source and not str(self.source).startswith("<")
        if named and text.startswith(str(self.source)):
            return error
        if not text.startswith(f"layer '{param.name}'"):
            text = f"layer '{param.name}' ({param.type}): {text}"
        return type(error)(f"{self.source}: {text}" if named else text)

    def _build(self, input_shapes):
        shapes = OrderedDict()
        consumed = set()
        self.layer_bottoms, self.layer_tops = [], []
        self._last_reader_cache = {}  # forward's {(first, last): {blob: last reader}}
        for param in self.layer_params:
            name = param.name
            bottoms = list(param.bottom)
            for bottom in bottoms:
                if bottom not in shapes:
                    raise LayerError(f"{self.source}: layer '{name}' ({param.type}) needs bottom blob "
                                     f"'{bottom}', which no earlier layer produces"
                                     f"{self._phase_hint()}")
            try:
                cls = layer_class(param.type, name)
                if param.type == "Input":
                    param = self._input_param(param, input_shapes)
                layer = cls(param, [shapes[b] for b in bottoms], self.phase)
            except EigenDepthError as error:
                raise self._located(error, param) from None
            tops = list(param.top)
            if len(tops) != len(layer.top_shapes):
                raise LayerError(f"{self.source}: layer '{name}' ({param.type}) declares {len(tops)} tops "
                                 f"but produces {len(layer.top_shapes)}")
            if param.type == "Input":
                self.input_names.extend(tops)
            for top, shape in zip(tops, layer.top_shapes):
                too_big = check_fits(shape, f"top '{top}'")
                if too_big:
                    raise ShapeError(f"{self.source}: layer '{name}' ({param.type}): {too_big}")
                shapes[top] = shape
            consumed.update(b for b in bottoms if b not in tops)
            self.layers.append(layer)
            self.layer_bottoms.append(bottoms)
            self.layer_tops.append(tops)
        self.blob_shapes = shapes
        self.output_names = [b for b in shapes if b not in consumed]
        self.loss_weights = [self._loss_weights(layer) for layer in self.layers]
        self._fusions = fusion.plan(self.layers, self.layer_bottoms, self.layer_tops, shapes, self.output_names)
        self._concats = fusion.plan_concats(self.layers, self.layer_bottoms, self.layer_tops, shapes)
        self._in_place = fusion.plan_in_place(self.layers, self.layer_bottoms, self.layer_tops)

    def _phase_hint(self):
        return (f" in the {PHASE_NAMES[self.phase]} phase (is it produced by a layer excluded from this phase?)"
                if any(len(layer.include) or len(layer.exclude) for layer in self.net_param.layer) else "")

    @staticmethod
    def _input_param(param, input_shapes):
        if not any(top in input_shapes for top in param.top):
            return param
        copy = schema.LayerParameter()
        copy.CopyFrom(param)
        copy.input_param.ClearField("shape")
        original = list(param.input_param.shape)
        for index, top in enumerate(param.top):
            if top in input_shapes:
                dims = list(input_shapes[top])
            else:
                dims = list((original[index] if len(original) > 1 else original[0]).dim)
            copy.input_param.shape.add(dim=[int(d) for d in dims])
        return copy

    def _loss_weights(self, layer):
        weights = list(layer.param.loss_weight)
        if not weights and layer.IS_LOSS:
            weights = [1.0]
        if len(weights) > len(layer.top_shapes):
            raise LayerError(f"{self.source}: layer '{layer.name}' has {len(weights)} loss_weight values "
                             f"but {len(layer.top_shapes)} tops")
        return weights + [0.0] * (len(layer.top_shapes) - len(weights))

    def _share_and_freeze(self):
        """Builds the ParamInfo list: lr/decay multipliers per blob, shared blobs by ParamSpec name."""
        self.param_infos = []
        owners = {}
        explicit = {}  # shared param name -> {"lr_mult"/"decay_mult": the first value a spec set}
        for layer in self.layers:
            specs = list(layer.param.param)
            if len(specs) > len(layer.blobs):
                raise LayerError(f"{self.source}: layer '{layer.name}' has {len(specs)} param specs but "
                                 f"{len(layer.blobs)} blobs")
            for index, blob in enumerate(layer.blobs):
                spec = specs[index] if index < len(specs) else schema.ParamSpec()
                owner = None
                if spec.name:
                    if spec.name in owners:
                        owner = owners[spec.name]
                        owner_blob = self.layer_by_name(owner[0]).blobs[owner[1]]
                        if owner_blob.shape != blob.shape:  # PERMISSIVE reshaping is not supported
                            raise ShapeError(f"{self.source}: layer '{layer.name}' shares param '{spec.name}' "
                                             f"of shape {tuple(owner_blob.shape)} but needs {tuple(blob.shape)}")
                    else:
                        owners[spec.name] = (layer.name, index)
                    self._check_shared_multipliers(spec, layer.name, explicit.setdefault(spec.name, {}))
                info = ParamInfo(layer.name, index, blob, float(spec.lr_mult), float(spec.decay_mult), owner)
                self.param_infos.append(info)
                blob.requires_grad_(spec.lr_mult != 0)
        for info in self.param_infos:  # a shared blob learns with the multipliers its specs agreed on
            owner = info.owner or (info.layer, info.index)
            spec_name = self._spec_name(info)
            if spec_name in explicit:
                info.lr_mult = float(explicit[spec_name].get("lr_mult", info.lr_mult))
                info.decay_mult = float(explicit[spec_name].get("decay_mult", info.decay_mult))
                self.layer_by_name(owner[0]).blobs[owner[1]].requires_grad_(info.lr_mult != 0)

    def _spec_name(self, info):
        specs = self.layer_by_name(info.layer).param.param
        return specs[info.index].name if info.index < len(specs) else ""

    def _check_shared_multipliers(self, spec, layer_name, agreed):
        """Caffe's rule for shared params: every spec that sets lr_mult (decay_mult) must set the same value;
        specs that leave it unset take the value another spec set."""
        for field in ("lr_mult", "decay_mult"):
            if not spec.HasField(field):
                continue
            value = getattr(spec, field)
            if field in agreed and agreed[field] != value:
                raise LayerError(f"{self.source}: layer '{layer_name}' shares param '{spec.name}' with "
                                 f"{field} {value:g}, but another layer sharing it set {agreed[field]:g} "
                                 f"(Caffe refuses mismatched multipliers: give them the same value)")
            agreed[field] = value

    def _tie_shared_blobs(self):
        for info in self.param_infos:
            if info.owner is not None:
                owner = self.layer_by_name(info.owner[0]).blobs[info.owner[1]]
                self.layer_by_name(info.layer).blobs[info.index] = owner
                info.parameter = owner

    def _plan_gradients(self):
        """Which layers need autograd: a learnable blob, or a bottom that carries a gradient
        (Caffe's need_backward), honouring propagate_down and force_backward."""
        carries = set()
        force = self.net_param.force_backward
        self.layer_needs_grad, self.layer_detach = [], []
        for layer, bottoms, tops in zip(self.layers, self.layer_bottoms, self.layer_tops):
            propagate = list(layer.param.propagate_down)
            if propagate and len(propagate) != len(bottoms):
                raise LayerError(f"{self.source}: layer '{layer.name}' has {len(propagate)} propagate_down "
                                 f"values for {len(bottoms)} bottoms")
            detach = [bool(propagate) and not propagate[i] for i in range(len(bottoms))]
            from_bottoms = any(b in carries and not d for b, d in zip(bottoms, detach))
            learnable = any(p.requires_grad for p in layer.blobs)
            needs = from_bottoms or learnable or (force and layer.type_name != "Input")
            self.layer_needs_grad.append(needs)
            self.layer_detach.append(detach)
            for top in tops:
                (carries.add if needs else carries.discard)(top)

    # Running ---------------------------------------------------------------------------------
    def layer_by_name(self, name):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named '{name}' in {self.source}")

    @property
    def layer_names(self):
        return [layer.name for layer in self.layers]

    def forward(self, inputs=None, keep_blobs=False, start=None, end=None, **named_inputs):
        """Runs the net. inputs: {blob: tensor or array}, the input blobs (and, with start, any blob the
        layers from `start` read). start/end: names of the first and last layer to run (default: all).
        Returns {blob: tensor}: the net's outputs (the tops of `end` when given; every blob when
        keep_blobs=True). total_loss(result) gives the weighted sum of the losses."""
        feed = dict(inputs or {}, **named_inputs)
        names = self.layer_names
        first = names.index(start) if start is not None else 0
        last = names.index(end) if end is not None else len(names) - 1
        values = self._feed(feed, check_inputs=start is None)
        grad_enabled = torch.is_grad_enabled()
        fed = set() if grad_enabled else {_memory(value) for value in values.values()}
        returned = self.output_names if end is None else self.layer_tops[last]
        # blob -> the last layer that reads it: dropped after that layer (peak memory)
        last_read = {} if keep_blobs else self._last_readers(first, last)
        index, buffers = first, {}  # buffers: the Concat chains' (eigen_depth.fusion) of this forward
        while index <= last:
            layer, bottoms, tops = self.layers[index], self.layer_bottoms[index], self.layer_tops[index]
            if layer.type_name == "Input" or (not bottoms and tops and all(t in feed for t in tops)):
                index += 1
                continue  # inputs, and source layers (Data, DummyData) whose tops were fed directly
            missing = [b for b in bottoms if b not in values]
            if missing:
                raise ShapeError(f"{self.source}: layer '{layer.name}' needs blob(s) {', '.join(missing)}: "
                                 f"feed them when starting at '{start}'")
            done = self._run_fused(index, last, values, grad_enabled, keep_blobs, buffers)
            if done is None:
                detach = self.layer_detach[index]
                args = [values[b].detach() if d else values[b] for b, d in zip(bottoms, detach)]
                with torch.set_grad_enabled(grad_enabled and self.layer_needs_grad[index]):
                    if not grad_enabled and self._may_overwrite(index, values, fed, buffers):
                        outputs = layer(*args, in_place=True)
                    else:
                        outputs = layer(*args)
                for top, output in zip(tops, outputs):
                    values[top] = output
                done = index
            for bottom in bottoms:
                if index <= last_read.get(bottom, -1) <= done and bottom not in self.layer_tops[done] \
                        and bottom not in returned:
                    values.pop(bottom, None)
            index = done + 1
        if keep_blobs:
            return values
        return OrderedDict((name, values[name]) for name in returned)

    @property
    def fusible(self):
        """Whether the net has chains that `fuse` runs together (eigen_depth.fusion)."""
        return bool(self._fusions or self._concats)

    def _run_fused(self, index, last, values, grad_enabled, keep_blobs, buffers):
        """Runs the fused chain that starts at layer `index` (eigen_depth.fusion) when it may be: fusion on, no
        gradient needed, the chain within the layers run, and its inner blobs unseen; returns the index of its
        last layer, or None when the layer is to run alone."""
        if not self.fuse or recording():
            return None  # exports keep the layers as written
        if index in self._concats and not (grad_enabled and self.layer_needs_grad[index]):
            with torch.no_grad():  # as the layer itself would run: no gradient
                return self._run_concat(index, values, buffers)
        chain = self._fusions.get(index)
        if chain is None or chain.last > last or (keep_blobs and not chain.in_place):
            return None
        if grad_enabled and any(self.layer_needs_grad[i] for i in range(chain.first, chain.last + 1)):
            return None
        with torch.no_grad():
            values[self.layer_tops[chain.last][0]] = chain(values[self.layer_bottoms[index][0]])
        return chain.last

    def _may_overwrite(self, index, values, fed, buffers):
        """Whether layer `index` may run in place (eigen_depth.fusion.plan_in_place) in this forward without
        gradients: its bottom's memory is not a fed input's, not shared with another blob (a second name or a
        view of it) nor with a Concat chain's buffer, and no trace or export is recording."""
        if index not in self._in_place or recording():
            return False
        name = self.layer_bottoms[index][0]
        memory = _memory(values[name])
        return memory not in fed and all(_memory(value) != memory for other, value in values.items() if other != name) \
            and all(_memory(buffer) != memory for buffer, _ in buffers.values())

    def _run_concat(self, index, values, buffers):
        """A Concat of a chain (eigen_depth.fusion.plan_concats): its new channels written into the chain's buffer,
        its top a view of the filled part. Returns index; None when the chain was not begun in this forward (a
        range starting inside it), so the layer joins its bottoms itself."""
        chain, before, after = self._concats[index]
        first, new = (values[name] for name in self.layer_bottoms[index])
        if index == chain.first:
            channels_last = first.dim() == 4 and not first.is_contiguous() and \
                first.is_contiguous(memory_format=torch.channels_last)
            buffer = torch.empty((first.shape[0], chain.channels) + tuple(first.shape[2:]), dtype=first.dtype,
                                 device=first.device,
                                 memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            buffer[:, :before].copy_(first)
        else:
            buffer, view = buffers.get(chain, (None, None))
            if view is not first:
                return None
        buffer[:, before:after].copy_(new)
        view = buffer[:, :after]
        buffers[chain] = (buffer, view)
        values[self.layer_tops[index][0]] = view
        return index

    def _last_readers(self, first, last):
        """{blob: index of the last layer in [first, last] that reads it}, computed once per range."""
        cache = self._last_reader_cache
        if (first, last) not in cache:
            readers = {}
            for index in range(first, last + 1):
                for bottom in self.layer_bottoms[index]:
                    readers[bottom] = index
            cache[(first, last)] = readers
        return cache[(first, last)]

    def loss_weight(self, blob):
        """The loss_weight of a top (0 for tops that are not losses); the last producer of the name wins."""
        weight = 0.0
        for tops, weights in zip(self.layer_tops, self.loss_weights):
            for top, value in zip(tops, weights):
                if top == blob:
                    weight = value
        return weight

    def total_loss(self, blobs):
        """The objective: sum of loss_weight * sum(top) over every loss top present in `blobs` (the
        result of forward); None when the net has no loss."""
        total = None
        for tops, weights in zip(self.layer_tops, self.loss_weights):
            for top, weight in zip(tops, weights):
                if weight and top in blobs:
                    term = weight * blobs[top].sum()
                    total = term if total is None else total + term
        return total

    def _feed(self, feed, check_inputs):
        values = {}
        if check_inputs:
            for name in self.input_names:
                if name not in feed:
                    raise ShapeError(f"{self.source}: input '{name}' was not given "
                                     f"(inputs: {', '.join(self.input_names)})")
        for name, value in feed.items():
            if name not in self.blob_shapes:
                raise ShapeError(f"{self.source}: the net has no blob '{name}' to feed "
                                 f"(inputs: {', '.join(self.input_names)})")
            tensor = torch.as_tensor(value)
            if tensor.dtype != self.dtype:
                tensor = tensor.to(self.dtype)
            values[name] = tensor.to(self.device, non_blocking=True)
            self._check_input(name, values[name])
        return values

    def _check_input(self, name, tensor):
        expected = self.blob_shapes[name]
        if tuple(tensor.shape[1:]) != tuple(expected[1:]):
            raise ShapeError(f"{self.source}: input '{name}' has shape {tuple(tensor.shape)} but the net was "
                             f"built for {tuple(expected)} (any batch size works; other sizes need "
                             f"reshape({{'{name}': shape}}))")

    def reshape(self, input_shapes):
        """Rebuilds the layers for new input shapes. The learnable blobs stay the very Parameter objects they
        were, so whoever holds them (pycaffe's net.params, a solver's history, a test net sharing them)
        keeps seeing the net's weights; a blob whose shape would have to change is a ShapeError, as in Caffe."""
        rebuilt = CaffeNet(self.net_param, self.phase, self.level, self.stages, input_shapes,
                           bilinear=self.bilinear, source=self.source, fill=False,
                           data=self.data_settings).to(self.device, self.dtype)
        for old, new in zip(self.layers, rebuilt.layers):
            for index, (blob, wanted) in enumerate(zip(old.blobs, new.blobs)):
                if blob.shape != wanted.shape:
                    raise ShapeError(f"{self.source}: layer '{old.name}' would need blob {index} of shape "
                                     f"{tuple(wanted.shape)} for these inputs, but holds {tuple(blob.shape)}")
            new.blobs = old.blobs
        for name in ("layers", "blob_shapes", "output_names", "input_names", "layer_bottoms", "layer_tops",
                     "loss_weights", "layer_needs_grad", "layer_detach"):
            setattr(self, name, getattr(rebuilt, name))

    # Source layers ---------------------------------------------------------------------------
    def source_layers(self):
        """The layers that read data themselves (Data, HDF5Data), in net order."""
        return [layer for layer in self.layers if layer.READS_DATA]

    def use_generator(self, generator):
        """Gives every layer that draws random numbers (Dropout) this torch.Generator (on the net's device)."""
        for layer in self.layers:
            if layer.DRAWS_RANDOM:
                layer.generator = generator

    def _check_paired_sources(self):
        """Source layers with the same pair_key (colour and depth of one split) must be able to read in step."""
        groups = {}
        for layer in self.source_layers():
            if layer.pair_key is not None:
                for other in groups.setdefault(layer.pair_key, []):
                    layer.check_paired_with(other)
                groups[layer.pair_key].append(layer)

    def seek(self, batches, world_size=1):
        """Positions every source layer where a run would be after `batches` batches (of every process)."""
        for layer in self.source_layers():
            layer.seek(batches * layer.loader.batch_size * world_size)

    def close(self):
        """Stops the source layers' background threads (also on leaving a `with CaffeNet(...)` block)."""
        for layer in self.source_layers():
            layer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def device(self):
        return self._probe.device

    @property
    def dtype(self):
        return self._probe.dtype

    # Weights ----------------------------------------------------------------------------------
    def copy_from(self, weights, strict=False, share=True):
        """Copies blobs by layer name from a caffemodel path, a NetParameter or {layer: [arrays]}.

        Shapes must match exactly, or as Caffe's legacy 4-D shapes (1x1xOUTxIN for an InnerProduct
        weight); the blob count must match. Returns a CopyReport. strict=True makes layers of the net
        that the source lacks an error. From a file on the CPU, the parameters become views of the
        file's memory map: no copy is made. share=False copies into the net's own blobs instead: a
        caffemodel's floats mostly lie at addresses that are not multiples of 4, where a batch-1 inner
        product runs about 2x slower, and the file's map can close.
        """
        from_file = isinstance(weights, (str, os.PathLike))
        where = weights if from_file else "<weights>"
        source = self._weight_arrays(weights, where)
        copied, ignored = [], []
        by_name = {layer.name: layer for layer in self.layers}
        for name, arrays in source.items():
            layer = by_name.get(name)
            if layer is None:
                ignored.append(name)
                continue
            if len(arrays) != len(layer.blobs):
                raise ShapeError(f"{where}: layer '{name}' has {len(arrays)} blobs but the net's "
                                 f"{layer.type_name} layer '{name}' has {len(layer.blobs)}: is this caffemodel for "
                                 f"another network?")
            for index, (array, blob) in enumerate(zip(arrays, layer.blobs)):
                array = self._fit_shape(array, tuple(blob.shape), f"{where}: layer '{name}' blob {index}")
                self._assign(blob, array, share, release=from_file)
            copied.append(name)
        missing = [layer.name for layer in self.layers if len(layer.blobs) and layer.name not in source]
        if source and not copied and missing:
            raise CaffemodelError(f"{where}: none of its layers with weights ({', '.join(list(source)[:5])}"
                                  f"{', ...' if len(source) > 5 else ''}) is in the net ({', '.join(missing[:5])}"
                                  f"{', ...' if len(missing) > 5 else ''}): is it the caffemodel of another network?")
        if strict and missing:
            raise CaffemodelError(f"{where}: has no weights for layers {', '.join(missing)}")
        return CopyReport(copied, missing, ignored)

    @staticmethod
    def _weight_arrays(weights, where):
        if isinstance(weights, dict):
            return {name: [np.asarray(a) for a in arrays] for name, arrays in weights.items()}
        if isinstance(weights, (str, os.PathLike)):
            weights = read_caffemodel(weights)
        if not isinstance(weights, schema.NetParameter):
            raise TypeError("weights must be a caffemodel path, a NetParameter or {layer: [arrays]}")
        out = {}
        for index, layer in enumerate(weights.layer):
            if len(layer.blobs):
                out[layer.name or f"#{index}"] = [blob_to_array(b, f"{where}: layer '{layer.name}' blob {i}")
                                                  for i, b in enumerate(layer.blobs)]
        return out

    @staticmethod
    def _fit_shape(array, expected, where):
        found = tuple(array.shape)
        if found == expected:
            return array
        # Caffe's ShapeEquals: a legacy 4-D blob matches when its trailing axes equal the shape.
        if len(found) == 4 and len(expected) <= 4 and found == (1,) * (4 - len(expected)) + expected:
            return array.reshape(expected)
        raise ShapeError(f"{where}: shape mismatch: the net expects {expected}, the weights have {found}")

    @staticmethod
    def _assign(blob, array, share=True, release=False):
        """Puts `array` into `blob`: as a view (share), else as a copy. release: `array` views a file read for
        this copy alone; its pages leave memory as they are copied, a few MiB at a time, so that loading
        never holds the weights twice."""
        with torch.no_grad():
            if share and blob.device.type == "cpu" and array.dtype == np.float32 and blob.dtype == torch.float32 \
                    and array.flags.writeable and array.flags.c_contiguous:
                blob.data = torch.from_numpy(array)  # shares the file's copy-on-write mapping
            elif release and blob.is_contiguous() and array.flags.c_contiguous and array.flags.writeable:
                flat, target = array.reshape(-1), blob.view(-1)
                for start in range(0, flat.size, _COPY_CHUNK_VALUES):
                    part = flat[start:start + _COPY_CHUNK_VALUES]
                    target[start:start + part.size].copy_(torch.from_numpy(part))
                    release_pages(part)
            else:
                blob.copy_(torch.as_tensor(np.asarray(array), dtype=blob.dtype))

    def to_net_parameter(self, include_blobs=True):
        """The net as a NetParameter (layer definitions as given, blobs from the current weights)."""
        out = schema.NetParameter()
        out.name = self.net_param.name
        for param, layer in zip(self.layer_params, self.layers):
            copy = out.layer.add()
            copy.CopyFrom(param)
            copy.ClearField("blobs")
            if len(layer.param.param) != len(param.param):  # specs the layer added (BatchNorm's lr_mult 0)
                copy.ClearField("param")
                for spec in layer.param.param:
                    copy.param.add().CopyFrom(spec)
            if include_blobs:
                for blob in layer.blobs:
                    copy.blobs.append(array_to_blob(blob.detach().cpu().numpy()))
        return out

    def save(self, path):
        """Writes the weights as a .caffemodel that Caffe and OpenCV read."""
        from .caffe import write_caffemodel
        write_caffemodel(self.to_net_parameter(), path)

    def weights_dict(self):
        """{layer name: [numpy arrays]} of the current weights (views on the CPU)."""
        return {layer.name: [blob.detach().cpu().numpy() for blob in layer.blobs]
                for layer in self.layers if len(layer.blobs)}

    def learnable_params(self):
        """ParamInfo for every blob, in Caffe's learnable-parameter order (shared blobs once)."""
        return [info for info in self.param_infos if info.owner is None]


def _memory(tensor):
    """The address of a tensor's storage: tensors that share it share their values."""
    return tensor.untyped_storage().data_ptr()
