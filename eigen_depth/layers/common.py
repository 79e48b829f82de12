"""Blob plumbing and dense layers: InnerProduct, Reshape, Flatten, Concat, Slice, Split, Eltwise, Crop,
Silence, and the input layers Input and DummyData."""
import math

import torch
import torch.nn.functional as F

from ..caffe.schema import EltwiseParameter
from .base import Layer, register


def _count(shape, start=0, end=None):
    return math.prod(shape[start:end])


def _blob_shape(layer, blob_shape, what):
    shape = tuple(int(d) for d in blob_shape.dim)
    if any(d < 0 for d in shape):
        raise layer.shape_error(f"{what} has a negative dimension: {shape}")
    return shape


@register("InnerProduct")
class InnerProduct(Layer):
    """Flattens axes axis.. into K; weight (out, K), or (K, out) with transpose; bias (out,)."""
    NEW_TOPS = True

    def setup(self, bottom_shapes):
        ip = self.param.inner_product_param
        shape = bottom_shapes[0]
        self.axis = self.canonical_axis(ip.axis, len(shape))
        self.num_output = int(ip.num_output)
        if self.num_output <= 0:
            raise self.error("num_output must be positive")
        self.transpose = bool(ip.transpose)
        self.bias_term = bool(ip.bias_term)
        self.inputs = _count(shape, self.axis)
        self.add_blob((self.inputs, self.num_output) if self.transpose else (self.num_output, self.inputs))
        if self.bias_term:
            self.add_blob((self.num_output,))
        return [shape[:self.axis] + (self.num_output,)]

    def forward(self, x):
        flat = x.flatten(self.axis)
        if flat.shape[-1] != self.inputs:
            raise self.shape_error(f"input of shape {tuple(x.shape)} has {flat.shape[-1]} values from axis "
                                   f"{self.axis} on; the weights expect {self.inputs}")
        weight = self.blobs[0].t() if self.transpose else self.blobs[0]
        return (F.linear(flat, weight, self.blobs[1] if self.bias_term else None),)

    def fill(self, generator, **options):
        ip = self.param.inner_product_param
        self.fill_blob(self.blobs[0], ip.weight_filler, generator, **options)
        if self.bias_term:
            self.fill_blob(self.blobs[1], ip.bias_filler, generator, **options)


@register("Reshape")
class Reshape(Layer):
    """Replaces axes [axis, axis + num_axes) by reshape_param.shape: 0 copies the bottom's dimension,
    -1 (at most one) is inferred from the count."""

    def setup(self, bottom_shapes):
        rp = self.param.reshape_param
        self.dims = tuple(int(d) for d in rp.shape.dim)
        if sum(d == -1 for d in self.dims) > 1:
            raise self.error("new shape contains multiple -1 dims; at most a single (1) value of -1 may be "
                             "specified")
        if any(d < -1 for d in self.dims):
            raise self.error(f"new shape {self.dims} has a dimension below -1")
        self.axis, self.num_axes = int(rp.axis), int(rp.num_axes)
        if self.num_axes < -1:
            raise self.error(f"num_axes must be >= 0, or -1 for all, got {self.num_axes}")
        self._cache = {}
        return [self.top_shape(bottom_shapes[0])]

    def top_shape(self, shape):
        """The top shape for a bottom shape (cached per shape; safe from several threads: a shape computed
        twice gives the same value and setdefault keeps one)."""
        cached = self._cache.get(shape)
        if cached is not None:
            return cached
        ndim = len(shape)
        start = self.axis if self.axis >= 0 else ndim + self.axis + 1
        if not 0 <= start <= ndim:
            raise self.shape_error(f"axis {self.axis} is out of range for a {ndim}-axis bottom")
        end = ndim if self.num_axes == -1 else start + self.num_axes
        if end > ndim:
            raise self.shape_error(f"axis {start} + num_axes {self.num_axes} exceed the bottom's {ndim} axes")
        top = list(shape[:start]) + list(self.dims) + list(shape[end:])
        for i, d in enumerate(self.dims):
            if d == 0:
                if start + i >= ndim:
                    raise self.shape_error(f"new shape contains a 0 at position {i}, but bottom {shape} has no "
                                           f"axis {start + i} to copy")
                top[start + i] = shape[start + i]
        if -1 in self.dims:
            known = math.prod(d for j, d in enumerate(top) if j != start + self.dims.index(-1))
            total = _count(shape)
            if known == 0 or total % known:
                raise self.shape_error(f"bottom count {total} (shape {shape}) is not divisible by the product "
                                       f"of the specified dimensions ({known})")
            top[start + self.dims.index(-1)] = total // known
        top = tuple(top)
        if _count(top) != _count(shape):
            raise self.shape_error(f"cannot reshape {shape} ({_count(shape)} values) to {top} ({_count(top)})")
        return self._cache.setdefault(shape, top)

    def forward(self, x):
        return (x.reshape(self.top_shape(tuple(x.shape))),)


@register("Flatten")
class Flatten(Layer):
    """Merges axes axis..end_axis (inclusive) into one."""

    def setup(self, bottom_shapes):
        fp = self.param.flatten_param
        shape = bottom_shapes[0]
        self.start = self.canonical_axis(fp.axis, len(shape))
        self.end = self.canonical_axis(fp.end_axis, len(shape))
        if self.end < self.start:
            raise self.shape_error(f"end_axis {fp.end_axis} comes before axis {fp.axis}")
        return [shape[:self.start] + (_count(shape, self.start, self.end + 1),) + shape[self.end + 1:]]

    def forward(self, x):
        return (x.flatten(self.start, self.end),)


def _legacy_axis(layer, message, legacy_name, shape):
    """Axis from `axis` or a legacy (uint32, non-negative) field like concat_dim / slice_dim."""
    if message.HasField(legacy_name):
        if message.HasField("axis"):
            raise layer.error(f"either axis or {legacy_name} should be specified; not both")
        axis = int(getattr(message, legacy_name))
        if axis >= len(shape):
            raise layer.shape_error(f"{legacy_name} {axis} is out of range for a {len(shape)}-axis blob")
        return axis
    return layer.canonical_axis(message.axis, len(shape))


@register("Concat")
class Concat(Layer):
    """Joins the bottoms along axis (default 1, channels); the other axes must agree."""
    BOTTOMS = (1, None)

    def setup(self, bottom_shapes):
        first = bottom_shapes[0]
        self.axis = _legacy_axis(self, self.param.concat_param, "concat_dim", first)
        top = list(first)
        for i, shape in enumerate(bottom_shapes[1:], 1):
            if len(shape) != len(first):
                raise self.shape_error(f"all bottoms must have the same number of axes: {first} vs bottom {i} "
                                       f"{shape}")
            if any(a != b for j, (a, b) in enumerate(zip(first, shape)) if j != self.axis):
                raise self.shape_error(f"all bottoms must have the same shape except on axis {self.axis}: "
                                       f"{first} vs bottom {i} {shape}")
            top[self.axis] += shape[self.axis]
        return [tuple(top)]

    def forward(self, *bottoms):
        if len(bottoms) == 1:
            return (bottoms[0],)
        return (torch.cat(bottoms, dim=self.axis),)


@register("Slice")
class Slice(Layer):
    """Cuts the bottom along axis at slice_point (strictly increasing), or into equal parts."""
    TOPS = (1, None)

    def setup(self, bottom_shapes):
        sp = self.param.slice_param
        shape = bottom_shapes[0]
        self.axis = _legacy_axis(self, sp, "slice_dim", shape)
        self.points = [int(p) for p in sp.slice_point]
        self.tops = self.num_tops(len(self.points) + 1)
        if self.points and len(self.points) != self.tops - 1:
            raise self.error(f"{len(self.points)} slice points need {len(self.points) + 1} tops, got {self.tops}")
        if any(b <= a for a, b in zip([0] + self.points, self.points)):
            raise self.error(f"slice points must be positive and strictly increasing, got {self.points}")
        return [shape[:self.axis] + (size,) + shape[self.axis + 1:] for size in self.sizes(shape[self.axis])]

    def sizes(self, length):
        if self.points:
            if self.tops > length or self.points[-1] > length:
                raise self.shape_error(f"slice points {self.points} do not fit axis {self.axis} of size {length}")
            return [b - a for a, b in zip([0] + self.points, self.points + [length])]
        if length % self.tops:
            raise self.shape_error(f"{self.tops} tops do not evenly divide axis {self.axis} of size {length}")
        return [length // self.tops] * self.tops

    def forward(self, x):
        return tuple(torch.split(x, self.sizes(x.shape[self.axis]), dim=self.axis))


@register("Split")
class Split(Layer):
    """Gives the bottom to every top (Caffe shares the data; the gradients add up)."""
    TOPS = (1, None)

    def setup(self, bottom_shapes):
        self.tops = self.num_tops(1)
        return bottom_shapes * self.tops

    def forward(self, x):
        return (x,) * self.tops


@register("Eltwise")
class Eltwise(Layer):
    """Element-wise PROD, SUM (with one coeff per bottom) or MAX (the first maximum wins) of same-shape bottoms."""
    BOTTOMS = (2, None)

    def setup(self, bottom_shapes):
        ep = self.param.eltwise_param
        self.operation = ep.operation
        coeffs = [float(c) for c in ep.coeff]
        if coeffs and len(coeffs) != len(bottom_shapes):
            raise self.error(f"takes one coefficient per bottom blob: {len(coeffs)} for {len(bottom_shapes)}")
        if coeffs and self.operation != EltwiseParameter.SUM:
            raise self.error("only takes coefficients for summation (SUM)")
        if self.operation not in (EltwiseParameter.SUM, EltwiseParameter.PROD, EltwiseParameter.MAX):
            raise self.error(f"unknown operation {self.operation}")
        self.coeffs = coeffs or [1.0] * len(bottom_shapes)
        for i, shape in enumerate(bottom_shapes[1:], 1):
            if shape != bottom_shapes[0]:
                raise self.shape_error(f"bottoms must have the same shape: bottom 0 {bottom_shapes[0]}, "
                                       f"bottom {i} {shape}")
        return bottom_shapes[:1]

    def forward(self, *bottoms):
        first = bottoms[0]
        if self.operation == EltwiseParameter.PROD:
            top = first
            for x in bottoms[1:]:
                top = top * x
        elif self.operation == EltwiseParameter.SUM:
            top = first if self.coeffs[0] == 1 else first * self.coeffs[0]
            for coeff, x in zip(self.coeffs[1:], bottoms[1:]):
                top = top + x if coeff == 1 else top + coeff * x
        else:
            top = first
            for x in bottoms[1:]:  # strict '>': ties keep the earlier bottom, as Caffe's argmax mask does
                top = torch.where(x > top, x, top)
        return (top,)


@register("Crop")
class Crop(Layer):
    """Crops bottom[0] to bottom[1]'s shape on axes axis.. (default 2), at offset (one for all the cropped
    axes, or one per cropped axis; default 0)."""
    BOTTOMS = 2

    def setup(self, bottom_shapes):
        cp = self.param.crop_param
        data, like = bottom_shapes
        self.axis = self.canonical_axis(cp.axis, len(data))
        self.offset = [int(o) for o in cp.offset]
        if len(self.offset) > 1 and self.axis + len(self.offset) != len(data):
            raise self.error(f"{len(self.offset)} offsets given for the {len(data) - self.axis} axes from axis "
                             f"{self.axis} on; give one offset, or one per cropped axis")
        if len(like) != len(data):
            raise self.shape_error(f"bottoms must have the same number of axes: {data} vs {like}")
        return [self.crop(data, like)[0]]

    def crop(self, data, like):
        """The top shape and the per-axis slices."""
        shape, index = [], []
        for i, (size, target) in enumerate(zip(data, like)):
            if i < self.axis:
                shape.append(size)
                index.append(slice(None))
                continue
            offset = (self.offset[0] if len(self.offset) == 1 else
                      self.offset[i - self.axis] if self.offset else 0)
            if size - offset < target:
                raise self.shape_error(f"the crop of axis {i} is out of bounds: size {target} at offset "
                                       f"{offset} in {size}")
            shape.append(target)
            index.append(slice(offset, offset + target))
        return tuple(shape), tuple(index)

    def forward(self, x, like):
        return (x[self.crop(tuple(x.shape), tuple(like.shape))[1]],)


@register("Silence")
class Silence(Layer):
    """Consumes its bottoms (so they are not outputs of the net); no tops."""
    BOTTOMS = (1, None)
    TOPS = 0

    def setup(self, bottom_shapes):
        return []

    def forward(self, *bottoms):
        return ()


@register("Input")
class Input(Layer):
    """The net's inputs: tops shaped by input_param.shape (once for all tops, or once per top).
    The net feeds the data itself; forward is never called."""
    BOTTOMS = 0
    TOPS = (1, None)

    def setup(self, bottom_shapes):
        shapes = self.param.input_param.shape
        tops = self.num_tops(len(shapes))
        if len(shapes) == 0:
            raise self.error("input_param needs a shape (once, or once per top)")
        if len(shapes) not in (1, tops):
            raise self.error(f"must specify 'shape' once or once per top: {tops} tops vs {len(shapes)} shapes")
        return [_blob_shape(self, shapes[0 if len(shapes) == 1 else i], f"shape of top {i}") for i in range(tops)]

    def forward(self, *bottoms):
        raise self.error("an Input layer has no forward: the net feeds its tops")


@register("DummyData")
class DummyData(Layer):
    """Tops of dummy_data_param's shapes (or the legacy num/channels/height/width), filled by data_filler
    (one for all tops or one per top; default constant 0) at every forward."""
    BOTTOMS = 0
    TOPS = (1, None)

    def setup(self, bottom_shapes):
        dp = self.param.dummy_data_param
        legacy = len(dp.num)
        tops = self.num_tops(max(len(dp.shape), legacy, len(dp.data_filler), 1))
        for what, count in (("data fillers", len(dp.data_filler)), ("shapes", len(dp.shape)),
                            ("num values", legacy)):
            if count not in (0, 1, tops):
                raise self.error(f"number of {what} must be 0, 1 or the number of tops ({tops}), got {count}")
        for field in ("channels", "height", "width"):
            if len(getattr(dp, field)) != legacy:
                raise self.error(f"legacy shape fields need as many '{field}' values as 'num' values ({legacy})")
        if len(dp.shape) and legacy:
            raise self.error("both shape and the legacy num/channels/height/width were specified")
        if not len(dp.shape) and not legacy:
            raise self.error("dummy_data_param needs a shape (or num/channels/height/width)")
        shapes = []
        for i in range(tops):
            if legacy:
                j = 0 if legacy == 1 else i
                shapes.append((dp.num[j], dp.channels[j], dp.height[j], dp.width[j]))
            else:
                shapes.append(_blob_shape(self, dp.shape[0 if len(dp.shape) == 1 else i], f"shape of top {i}"))
        self.fillers = [dp.data_filler[0 if len(dp.data_filler) == 1 else i] if len(dp.data_filler) else None
                        for i in range(tops)]
        # Caffe fills constant tops once at set-up and never again (a script may overwrite them)
        self.constant_tops = frozenset(i for i, filler in enumerate(self.fillers)
                                       if filler is None or (filler.type == "constant" and filler.sparse == -1))
        # Follows the module's dtype and device (.double(), .to(device)).
        self.register_buffer("anchor", torch.zeros(()), persistent=False)
        return shapes

    def forward(self, *bottoms):
        tops = []
        for index, (shape, filler) in enumerate(zip(self.top_shapes, self.fillers)):
            if index in self.constant_tops:
                value = 0.0 if filler is None else float(filler.value)
                tops.append(torch.full(shape, value, dtype=self.anchor.dtype, device=self.anchor.device))
            else:
                top = torch.empty(shape, dtype=self.anchor.dtype, device=self.anchor.device)
                tops.append(self.fill_blob(top, filler, None))
        return tuple(tops)


@register("Tile")
class Tile(Layer):
    """The bottom repeated tile_param.tiles times along tile_param.axis (default 1)."""

    def setup(self, bottom_shapes):
        shape = bottom_shapes[0]
        tp = self.param.tile_param
        self.axis = self.canonical_axis(tp.axis, len(shape))
        self.tiles = int(tp.tiles)
        if self.tiles < 1:
            raise self.error(f"tile_param.tiles must be at least 1, got {self.tiles}")
        top = list(shape)
        top[self.axis] *= self.tiles
        return [tuple(top)]

    def forward(self, x):
        repeats = [1] * x.dim()
        repeats[self.axis] = self.tiles
        return (x.repeat(*repeats),)


@register("Reduction")
class Reduction(Layer):
    """SUM, ASUM (sum of |x|), SUMSQ or MEAN over every axis from reduction_param.axis (default 0) to the
    last, times coeff (default 1); the top keeps the axes before it."""

    def setup(self, bottom_shapes):
        from ..caffe.schema import ReductionOp
        shape = bottom_shapes[0]
        rp = self.param.reduction_param
        self.axis = self.canonical_axis(rp.axis, len(shape)) if len(shape) else 0
        self.operation = ReductionOp.by_number[int(rp.operation)]
        self.coeff = float(rp.coeff)
        return [tuple(shape[:self.axis])]

    def forward(self, x):
        flat = x.reshape(tuple(x.shape[:self.axis]) + (-1,))
        if self.operation == "ASUM":
            flat = flat.abs()
        elif self.operation == "SUMSQ":
            flat = flat * flat
        value = flat.mean(-1) if self.operation == "MEAN" else flat.sum(-1)
        return (value * self.coeff,)


@register("Parameter")
class Parameter(Layer):
    """No bottom; its top is its own learnable blob of parameter_param.shape."""
    BOTTOMS = 0

    def setup(self, bottom_shapes):
        shape = tuple(int(d) for d in self.param.parameter_param.shape.dim)
        self.add_blob(shape)
        return [shape]

    def forward(self):
        return (self.blobs[0] * 1,)


@register("Embed")
class Embed(Layer):
    """Rows of a learned (input_dim, num_output) table picked by the bottom's integer values, plus a bias;
    the top has the bottom's shape with num_output appended."""

    def setup(self, bottom_shapes):
        ep = self.param.embed_param
        self.input_dim, self.num_output = int(ep.input_dim), int(ep.num_output)
        if self.input_dim < 1 or self.num_output < 1:
            raise self.error("embed_param needs positive input_dim and num_output")
        self.bias_term = bool(ep.bias_term)
        self.add_blob((self.input_dim, self.num_output))
        if self.bias_term:
            self.add_blob((self.num_output,))
        return [tuple(bottom_shapes[0]) + (self.num_output,)]

    def fill(self, generator, **options):
        ep = self.param.embed_param
        self.fill_blob(self.blobs[0], ep.weight_filler, generator, **options)
        if self.bias_term:
            self.fill_blob(self.blobs[1], ep.bias_filler, generator, **options)

    def forward(self, x):
        index = x.detach().long()
        if bool(((index < 0) | (index >= self.input_dim)).any()):
            raise self.error(f"an index is outside 0..{self.input_dim - 1}")
        out = F.embedding(index, self.blobs[0])
        return (out + self.blobs[1] if self.bias_term else out,)


@register("ArgMax")
class ArgMax(Layer):
    """The indices of the top_k largest values (ties: the larger index first, as Caffe's sort of (value,
    index) pairs gives), per sample over all its values, or along argmax_param.axis when set. Without an axis
    the top is (N, 1, top_k), or (N, 2, top_k) with the values after the indices when out_max_val; with an
    axis it is the bottom's shape with top_k there, holding the values when out_max_val. No gradient."""

    def setup(self, bottom_shapes):
        shape = bottom_shapes[0]
        ap = self.param.argmax_param
        self.top_k, self.out_max_val = int(ap.top_k), bool(ap.out_max_val)
        self.axis = self.canonical_axis(ap.axis, len(shape)) if ap.HasField("axis") else None
        extent = shape[self.axis] if self.axis is not None else math.prod(shape[1:])
        if not 1 <= self.top_k <= extent:
            raise self.error(f"top_k ({self.top_k}) must be between 1 and the {extent} values it ranks")
        if self.axis is not None:
            top = list(shape)
            top[self.axis] = self.top_k
            return [tuple(top)]
        top = [1] * max(3, len(shape))
        top[0], top[2] = shape[0], self.top_k
        if self.out_max_val:
            top[1] = 2
        return [tuple(top)]

    def _ranked(self, values, dim):
        flipped = values.flip(dim)  # a stable descending sort of the flipped values puts larger indices first
        ranked, order = torch.sort(flipped, dim=dim, descending=True, stable=True)
        index = values.shape[dim] - 1 - order
        return ranked.narrow(dim, 0, self.top_k), index.narrow(dim, 0, self.top_k)

    def forward(self, x):
        x = x.detach()
        if self.axis is not None:
            values, index = self._ranked(x, self.axis)
            return ((values if self.out_max_val else index.to(x.dtype)),)
        values, index = self._ranked(x.reshape(x.shape[0], -1), 1)
        parts = [index.to(x.dtype)] + ([values] if self.out_max_val else [])
        return (torch.stack(parts, 1).reshape(self.top_shapes[0]),)


@register("BatchReindex")
class BatchReindex(Layer):
    """The bottom's samples in the order of the second bottom's indices: top[i] = data[permut[i]]; the
    gradient reaches the data only (summed where an index repeats)."""
    BOTTOMS = 2

    def setup(self, bottom_shapes):
        data, permut = bottom_shapes
        if len(permut) != 1:
            raise self.shape_error(f"the index bottom must be one axis, got {permut}")
        return [(permut[0],) + tuple(data[1:])]

    def forward(self, data, permut):
        index = permut.detach().long()
        if bool(((index < 0) | (index >= data.shape[0])).any()):
            raise self.error(f"an index is outside 0..{data.shape[0] - 1}")
        return (data[index],)


@register("Filter")
class Filter(Layer):
    """Keeps the samples whose selector (the last bottom, one value per sample) is not 0: each top is its
    bottom's selected rows, in order; with none selected the tops have 0 rows. The gradient reaches the
    selected rows (the others get 0); the selector gets none. Top shapes follow the selector at every
    forward (the first dimension given at set-up is the bottom's, as in Caffe)."""
    BOTTOMS = (2, None)
    TOPS = (1, None)

    def setup(self, bottom_shapes):
        *data, selector = bottom_shapes
        if self.num_tops(len(data)) != len(data):
            raise self.error(f"needs one top per data bottom: {len(data)} data bottom(s) and a selector, "
                             f"{self.num_tops(len(data))} top(s)")
        if not selector or any(d != 1 for d in selector[1:]):
            raise self.shape_error(f"the selector (last bottom) must hold one value per sample (N, 1, ...), "
                                   f"got {selector}")
        for shape in data:
            if not shape or shape[0] != selector[0]:
                raise self.shape_error(f"every data bottom needs the selector's {selector[0]} samples, got {shape}")
        return [tuple(shape) for shape in data]

    def forward(self, *bottoms):
        *data, selector = bottoms
        kept = torch.nonzero(selector.detach().reshape(-1) != 0).reshape(-1)
        return tuple(x.index_select(0, kept.to(x.device)) for x in data)
