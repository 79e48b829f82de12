"""Spatial layers on 4-D (N, C, H, W) blobs: Convolution, Deconvolution, Pooling, LRN.

Sizes follow Caffe exactly: convolution floor((in + 2p - d(k-1) - 1)/s) + 1; deconvolution
(in - 1)s - 2p + d(k-1) + 1; pooling Caffe's ceil rule with its padding correction (see Pooling).
"""
import torch
import torch.nn.functional as F

from .. import winograd
from ..caffe.schema import LRNParameter, PoolingParameter
from .base import Layer, register

FLT_MAX = 3.4028234663852886e38  # Caffe's MAX pooling starts every window at -FLT_MAX


def _pool_floor(dtype):
    """What MAX pooling pads with: -FLT_MAX as Caffe, or the lowest finite value of a narrower type (bfloat16,
    half), in which -FLT_MAX does not fit."""
    return -FLT_MAX if dtype in (torch.float32, torch.float64) else float(torch.finfo(dtype).min)


def _pair(layer, what, values, h_w, has_h_w, default):
    """One of Caffe's spatial settings as (h, w): the repeated field (0, 1 or 2 values) or the _h/_w pair."""
    if has_h_w:
        if len(values):
            raise layer.error(f"either {what} or {what}_h/{what}_w should be specified; not both")
        return h_w
    if len(values) == 0:
        return (default, default)
    if len(values) == 1:
        return (int(values[0]), int(values[0]))
    if len(values) == 2:
        return (int(values[0]), int(values[1]))
    raise layer.error(f"{what} must be specified once, or once per spatial dimension (2); got {len(values)}")


class _ConvolutionBase(Layer):
    """Shared set-up of Convolution and Deconvolution (Caffe's BaseConvolutionLayer), 2-D only."""
    BOTTOMS = (1, None)
    TOPS = (1, None)
    TRANSPOSED = False
    NEW_TOPS = True
    # None: torch's choice (channels-last when the input or the weights are); else the layout the input is
    # put in, that of the weights (eigen_depth.layout)
    memory_format = None

    def in_layout(self, x):
        return x if self.memory_format is None else x.contiguous(memory_format=self.memory_format)

    def setup(self, bottom_shapes):
        cp = self.param.convolution_param
        first = bottom_shapes[0]
        if len(first) != 4:
            raise self.shape_error(f"needs 4-axis (N, C, H, W) bottoms (2-D convolution only), got {first}")
        if self.canonical_axis(cp.axis, len(first)) != 1:
            raise self.error(f"only axis 1 (channels) is supported, got axis {cp.axis}")
        for shape in bottom_shapes[1:]:
            if shape != first:
                raise self.shape_error(f"all bottoms must have the same shape: {first} vs {shape}")
        if self.num_tops(len(bottom_shapes)) != len(bottom_shapes):
            raise self.error(f"needs one top per bottom: {len(bottom_shapes)} bottoms, "
                             f"{self.num_tops(len(bottom_shapes))} tops")
        self.kernel = _pair(self, "kernel_size", cp.kernel_size, (cp.kernel_h, cp.kernel_w),
                            cp.HasField("kernel_h") or cp.HasField("kernel_w"), None)
        if self.kernel[0] is None:
            raise self.error("kernel_size (or kernel_h and kernel_w) is required")
        self.stride = _pair(self, "stride", cp.stride, (cp.stride_h, cp.stride_w),
                            cp.HasField("stride_h") or cp.HasField("stride_w"), 1)
        self.pad = _pair(self, "pad", cp.pad, (cp.pad_h, cp.pad_w),
                         cp.HasField("pad_h") or cp.HasField("pad_w"), 0)
        self.dilation = _pair(self, "dilation", cp.dilation, None, False, 1)
        if min(self.kernel) <= 0:
            raise self.error(f"kernel dimensions must be positive, got {self.kernel}")
        if min(self.stride) <= 0:
            raise self.error(f"stride dimensions must be positive, got {self.stride}")
        if min(self.dilation) <= 0:
            raise self.error(f"dilation must be positive, got {self.dilation}")
        self.num_output = int(cp.num_output)
        self.group = int(cp.group)
        channels = first[1]
        if self.num_output <= 0:
            raise self.error("num_output must be positive")
        if self.group <= 0 or channels % self.group:
            raise self.shape_error(f"{channels} input channels are not divisible by group {self.group}")
        if self.num_output % self.group:
            raise self.error(f"num_output {self.num_output} is not divisible by group {self.group}")
        self.bias_term = bool(cp.bias_term)
        if self.TRANSPOSED:
            self.add_blob((channels, self.num_output // self.group) + self.kernel)
        else:
            self.add_blob((self.num_output, channels // self.group) + self.kernel)
        if self.bias_term:
            self.add_blob((self.num_output,))
        return [self.output_shape(shape) for shape in bottom_shapes]

    def output_shape(self, shape):
        size = [self.output_size(shape[2 + i], i) for i in range(2)]
        if min(size) <= 0:
            raise self.shape_error(f"input {shape[2]}x{shape[3]} is too small for kernel {self.kernel}, "
                                   f"stride {self.stride}, pad {self.pad}, dilation {self.dilation} "
                                   f"(output would be {size[0]}x{size[1]})")
        return (shape[0], self.num_output, size[0], size[1])

    def fill(self, generator, **options):
        cp = self.param.convolution_param
        self.fill_blob(self.blobs[0], cp.weight_filler, generator, **options)
        if self.bias_term:
            self.fill_blob(self.blobs[1], cp.bias_filler, generator, **options)


@register("Convolution")
class Convolution(_ConvolutionBase):
    """Weight (out, in/group, kh, kw), bias (out,); output floor((in + 2p - d(k-1) - 1)/s) + 1."""

    def output_size(self, size, i):
        extent = self.dilation[i] * (self.kernel[i] - 1) + 1
        return (size + 2 * self.pad[i] - extent) // self.stride[i] + 1

    # True: computed by Winograd's algorithm (eigen_depth.winograd) wherever it applies: float32 on the CPU
    # without a gradient; eigen_depth.layout sets it where it was timed faster
    winograd = False
    _filters = None  # (the weights they were made from, their version, winograd.Filters)

    def winograd_eligible(self):
        return winograd.eligible(self.kernel, self.stride, self.dilation, self.pad)

    def forward(self, *bottoms):
        bias = self.blobs[1] if self.bias_term else None
        if self.winograd and winograd.applies(bottoms[0], self.blobs[0]):
            filters = self.winograd_filters()
            return tuple(winograd.conv2d(x, filters, bias, self.pad) for x in bottoms)
        return tuple(F.conv2d(self.in_layout(x), self.blobs[0], bias, self.stride, self.pad, self.dilation,
                              self.group) for x in bottoms)

    def winograd_filters(self, made=None):
        """The weights transformed for Winograd's algorithm, made again whenever the weights change (a new
        tensor, or an in-place write through torch, which counts a new version). The earlier weights are
        referenced until then, so a new tensor cannot reuse their address. made: filters the caller made from
        these same weights (in another memory layout), taken as they are."""
        weight = self.blobs[0]
        if made is not None:
            self._filters = (weight.detach(), weight._version, made)
        elif (self._filters is None or self._filters[0].data_ptr() != weight.data_ptr()
                or self._filters[1] != weight._version):
            self._filters = (weight.detach(), weight._version, winograd.Filters(weight, self.group))
        return self._filters[2]

    def drop_winograd(self):
        self.winograd, self._filters = False, None


@register("Deconvolution")
class Deconvolution(_ConvolutionBase):
    """Weight (in, out/group, kh, kw), bias (out,); output (in - 1)s - 2p + d(k-1) + 1."""
    TRANSPOSED = True

    def output_size(self, size, i):
        extent = self.dilation[i] * (self.kernel[i] - 1) + 1
        return self.stride[i] * (size - 1) + extent - 2 * self.pad[i]

    def forward(self, *bottoms):
        bias = self.blobs[1] if self.bias_term else None
        return tuple(F.conv_transpose2d(self.in_layout(x), self.blobs[0], bias, self.stride, self.pad, 0,
                                        self.group, self.dilation) for x in bottoms)


def caffe_pooled_size(size, kernel, stride, pad, any_pad, floor_mode=False):
    """Caffe's pooled size: ceil (or floor) of (size + 2 pad - kernel) / stride, plus one; when the layer
    has any padding, a last window starting at or beyond size + pad is dropped."""
    span = size + 2 * pad - kernel
    out = (span // stride if floor_mode else -((-span) // stride)) + 1
    if any_pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _separable_max(x, kernel, stride, geometry):
    """MAX pooling of an NCHW tensor as running maxima of strided views, first along the rows, then along
    the columns, after padding with -FLT_MAX to exactly the windows Caffe pools. The same values as
    F.max_pool2d, whose NCHW kernel on the CPU is several times slower."""
    if any(geometry.padding):
        x = F.pad(x, geometry.padding, value=_pool_floor(x.dtype))
    result = x
    for axis in (3, 2):
        k, s, count = kernel[axis - 2], stride[axis - 2], geometry.out[axis - 2]
        views = [_every(result, axis, start, count, s) for start in range(k)]
        result = views[0] if k == 1 else torch.maximum(views[0], views[1])
        for view in views[2:]:
            torch.maximum(result, view, out=result)
    return result.contiguous()


def _every(x, axis, start, count, step):
    """count cells of x along axis from start, step apart (a view)."""
    index = [slice(None)] * x.dim()
    index[axis] = slice(start, start + (count - 1) * step + 1, step)
    return x[tuple(index)]


class _PoolGeometry:
    """Pooled sizes, explicit paddings (left, right, top, bottom) and the AVE divisor for one input size."""

    def __init__(self, height, width, kernel, stride, pad, floor_mode):
        any_pad = pad[0] > 0 or pad[1] > 0
        self.out = tuple(caffe_pooled_size(size, k, s, p, any_pad, floor_mode)
                         for size, k, s, p in zip((height, width), kernel, stride, pad))
        if min(self.out) <= 0:
            return  # no output: the layer reports the shape error
        # Pad so that exactly out windows fit: (out - 1) * stride + kernel cells (negative = crop).
        ends = [(o - 1) * s + k - size - p
                for o, s, k, size, p in zip(self.out, stride, kernel, (height, width), pad)]
        self.padding = (pad[1], ends[1], pad[0], ends[0])
        self.symmetric = (ends[0] == pad[0] and ends[1] == pad[1]
                          and 2 * pad[0] <= kernel[0] and 2 * pad[1] <= kernel[1])
        # torch's ceil mode clips windows to the input as Caffe's MAX does, and sizes them by Caffe's rule with
        # the last-window drop whether padded or not; it pools without a padded copy wherever that is Caffe's size
        self.torch_ceil = (not floor_mode and 2 * pad[0] <= kernel[0] and 2 * pad[1] <= kernel[1]
                           and self.out == tuple(caffe_pooled_size(size, k, s, p, any_pad=True) for size, k, s, p
                                                 in zip((height, width), kernel, stride, pad)))
        # Caffe's AVE divisor: window size clipped to size + pad, before clipping to the image.
        divisors = []
        for o, s, k, size, p in zip(self.out, stride, kernel, (height, width), pad):
            start = torch.arange(o, dtype=torch.float64) * s - p
            end = torch.minimum(start + k, torch.tensor(float(size + p), dtype=torch.float64))
            divisors.append(end - start)
        self.divisor = divisors[0][:, None] * divisors[1][None, :]
        self._cast = {}

    def divisor_like(self, x):
        key = (x.device, x.dtype)
        cast = self._cast.get(key)
        if cast is None:  # several threads may get here at once: each result is the same, one is kept
            cast = self._cast.setdefault(key, self.divisor.to(device=x.device, dtype=x.dtype))
        return cast


@register("Pooling")
class Pooling(Layer):
    """MAX and AVE pooling with Caffe's sizes; MAX may have a second top, Caffe's argmax mask.

    MAX: padded cells never win (a window with no image cell gives -FLT_MAX, as in Caffe).
    AVE: sum over the window's image cells / Caffe's pool size, which counts padded cells up to
    size + pad but not cells beyond it.
    """
    NEW_TOPS = True
    TOPS = (1, 2)

    def setup(self, bottom_shapes):
        pp = self.param.pooling_param
        shape = bottom_shapes[0]
        if len(shape) != 4:
            raise self.shape_error(f"needs a 4-axis (N, C, H, W) bottom, got {shape}")
        self.method = pp.pool
        if self.method == PoolingParameter.STOCHASTIC:
            raise self.error("STOCHASTIC pooling is not supported (use MAX or AVE)")
        if self.method not in (PoolingParameter.MAX, PoolingParameter.AVE):
            raise self.error(f"unknown pooling method {self.method}")
        if self.num_tops(1) == 2 and self.method != PoolingParameter.MAX:
            raise self.error("only MAX pooling has a second (mask) top")
        self.global_pooling = bool(pp.global_pooling)
        has_kernel_hw = pp.HasField("kernel_h") or pp.HasField("kernel_w")
        if self.global_pooling:
            if pp.HasField("kernel_size") or has_kernel_hw:
                raise self.error("with global_pooling: true the kernel size cannot be specified")
            self.kernel = None
        else:
            if pp.HasField("kernel_size") == (pp.HasField("kernel_h") and pp.HasField("kernel_w")):
                if pp.HasField("kernel_size"):
                    raise self.error("kernel size is kernel_size OR kernel_h and kernel_w; not both")
                raise self.error("kernel_size (or both kernel_h and kernel_w) is required")
            self.kernel = ((pp.kernel_size, pp.kernel_size) if pp.HasField("kernel_size")
                           else (pp.kernel_h, pp.kernel_w))
            if min(self.kernel) <= 0:
                raise self.error(f"kernel dimensions must be positive, got {self.kernel}")
        has_pad_hw = pp.HasField("pad_h") or pp.HasField("pad_w")
        if has_pad_hw and (pp.HasField("pad") or not (pp.HasField("pad_h") and pp.HasField("pad_w"))):
            raise self.error("pad is pad OR pad_h and pad_w")
        has_stride_hw = pp.HasField("stride_h") or pp.HasField("stride_w")
        if has_stride_hw and (pp.HasField("stride") or not (pp.HasField("stride_h") and pp.HasField("stride_w"))):
            raise self.error("stride is stride OR stride_h and stride_w")
        self.pad = (pp.pad_h, pp.pad_w) if has_pad_hw else (pp.pad, pp.pad)
        self.stride = (pp.stride_h, pp.stride_w) if has_stride_hw else (pp.stride, pp.stride)
        if min(self.stride) <= 0:
            raise self.error(f"stride must be positive, got {self.stride}")
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise self.error("with global_pooling: true only pad = 0 and stride = 1 are allowed")
        if self.kernel is not None and (self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]):
            raise self.error(f"pad {self.pad} must be smaller than the kernel {self.kernel}")
        self.floor_mode = pp.round_mode == PoolingParameter.FLOOR
        if pp.HasField("ceil_mode") and not pp.HasField("round_mode"):  # converted models' spelling
            self.floor_mode = not pp.ceil_mode
        self._geometries = {}
        geometry = self.geometry(shape[2], shape[3])
        top = (shape[0], shape[1]) + geometry.out
        return [top] * self.num_tops(1)

    def kernel_for(self, height, width):
        return (height, width) if self.global_pooling else self.kernel

    def geometry(self, height, width):
        key = (height, width)
        geometry = self._geometries.get(key)
        if geometry is None:  # computed at most a few times at once from several threads, always alike
            kernel = self.kernel_for(height, width)
            geometry = _PoolGeometry(height, width, kernel, self.stride, self.pad, self.floor_mode)
            if min(geometry.out) <= 0:
                raise self.shape_error(f"input {height}x{width} is too small for kernel {kernel}, stride "
                                       f"{self.stride}, pad {self.pad} (output would be "
                                       f"{geometry.out[0]}x{geometry.out[1]})")
            geometry = self._geometries.setdefault(key, geometry)
        return geometry

    def forward(self, x):
        # Python ints even while tracing for ONNX: the geometry is fixed per input size, and traced sizes
        # would export Caffe's ceil rule as ONNX integer division, which truncates negative values.
        height, width = int(x.shape[-2]), int(x.shape[-1])
        geometry = self.geometry(height, width)
        kernel = self.kernel_for(height, width)
        if self.method == PoolingParameter.MAX:
            want_mask = self.num_tops(1) == 2
            if not want_mask and not self.global_pooling and _separable_pays(x):
                return (_in_cache_sized_chunks(lambda part: _separable_max(part, kernel, self.stride, geometry), x),)
            if geometry.symmetric and not want_mask:
                return (F.max_pool2d(x, kernel, self.stride, self.pad),)
            if geometry.torch_ceil and not want_mask and not torch.jit.is_tracing():  # ONNX sizes ceil mode its own way
                return (F.max_pool2d(x, kernel, self.stride, self.pad, ceil_mode=True),)
            padded = F.pad(x, geometry.padding, value=_pool_floor(x.dtype))
            if not want_mask:
                return (F.max_pool2d(padded, kernel, self.stride),)
            top, index = F.max_pool2d(padded, kernel, self.stride, return_indices=True)
            padded_width = padded.shape[-1]
            row = torch.div(index, padded_width, rounding_mode="floor") - self.pad[0]
            col = index % padded_width - self.pad[1]
            inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
            mask = torch.where(inside, row * width + col, torch.full_like(row, -1)).to(x.dtype)
            return top, mask
        if geometry.symmetric:
            sums = F.avg_pool2d(x, kernel, self.stride, self.pad, count_include_pad=True, divisor_override=1)
        else:
            sums = F.avg_pool2d(F.pad(x, geometry.padding), kernel, self.stride, divisor_override=1)
        return (sums / geometry.divisor_like(x),)


def _separable_pays(x):
    """Whether MAX pooling runs as running maxima (_separable_max): on the CPU, in NCHW, without a gradient
    (torch.maximum's gradient splits ties where Caffe's goes to one cell) and not while tracing for ONNX."""
    return (x.device.type == "cpu" and x.dim() == 4 and not x.is_contiguous(memory_format=torch.channels_last)
            and not (torch.is_grad_enabled() and x.requires_grad) and not torch.jit.is_tracing())


@register("LRN")
class LRN(Layer):
    """Local response normalisation, y = x * scale^-beta.

    ACROSS_CHANNELS: scale = k + alpha/n * sum of x^2 over channels c - (n-1)/2 .. c + (n-1)/2 (zero padded).
    WITHIN_CHANNEL: scale = 1 + alpha/n^2 * sum of x^2 over the n x n window (zero padded); Caffe builds
    it from AVE pooling (pad (n-1)/2, stride 1), whose divisor is n^2 everywhere for this geometry.
    """
    NEW_TOPS = True

    def setup(self, bottom_shapes):
        lp = self.param.lrn_param
        shape = bottom_shapes[0]
        if len(shape) != 4:
            raise self.shape_error(f"needs a 4-axis (N, C, H, W) bottom, got {shape}")
        self.size = int(lp.local_size)
        if self.size <= 0 or self.size % 2 == 0:
            raise self.error(f"local_size must be odd and positive, got {self.size}")
        self.alpha, self.beta, self.k = float(lp.alpha), float(lp.beta), float(lp.k)
        self.region = lp.norm_region
        if self.region not in (LRNParameter.ACROSS_CHANNELS, LRNParameter.WITHIN_CHANNEL):
            raise self.error(f"unknown norm_region {self.region}")
        return bottom_shapes

    def forward(self, x):
        if self.region == LRNParameter.ACROSS_CHANNELS:
            if torch.is_grad_enabled() and x.requires_grad and not torch.jit.is_tracing():
                return (_CrossChannelLRN.apply(x, self.size, self.alpha, self.beta, self.k),)
            if torch.jit.is_tracing():
                return (x * _negative_power(_cross_channel_scale(x, self.size, self.alpha, self.k), self.beta),)
            return (_in_cache_sized_chunks(self._across_channels, x),)
        half = (self.size - 1) // 2
        mean = F.avg_pool2d(x * x, self.size, stride=1, padding=half, count_include_pad=True)
        scale = mean.mul_(self.alpha).add_(1.0)
        return (x * _negative_power(scale, self.beta),)

    def _across_channels(self, x):
        scale = _cross_channel_scale(x, self.size, self.alpha, self.k)
        if self.beta == 0.75:  # in place: scale^-0.75 = rsqrt(scale) * sqrt(rsqrt(scale))
            root = scale.rsqrt_()
            return torch.sqrt(root).mul_(root).mul_(x)
        return scale.pow_(-self.beta).mul_(x)


CHUNK_ELEMENTS = 1 << 22  # ~16 MB of float32: the LRN's few temporaries stay in cache


def _in_cache_sized_chunks(function, *tensors):
    """function(*tensors) computed a few samples at a time (the tensors share their first axis; function
    returns one tensor or a tuple of them, each with that first axis): an element-wise chain over a large
    batch is memory-bound, and on chunks its temporaries stay in cache (about 4x faster at batch 16)."""
    first = tensors[0]
    per_sample = first[0].numel() if first.shape[0] else 0
    if first.shape[0] <= 1 or per_sample * first.shape[0] <= CHUNK_ELEMENTS:
        return function(*tensors)
    step = max(1, CHUNK_ELEMENTS // per_sample)
    outs = None
    for start in range(0, first.shape[0], step):
        parts = function(*(t[start:start + step] for t in tensors))
        single = isinstance(parts, torch.Tensor)
        parts = (parts,) if single else parts
        if outs is None:
            outs = tuple(part.new_empty((first.shape[0],) + part.shape[1:]) for part in parts)
        for out, part in zip(outs, parts):
            out[start:start + step] = part
    return outs[0] if single else outs


def _channel_window_sum(values, size):
    """Sum over the `size` channels centred on each channel (zero beyond the ends). Eager: the values
    plus their shifted slices, added in place. While tracing for ONNX: shifted slices of the zero-padded
    tensor (no in-place slice updates, so the graph stays plain Pad/Slice/Add)."""
    half = (size - 1) // 2
    channels = int(values.shape[1])  # a Python int even while tracing for ONNX: constant slice bounds
    if torch.jit.is_tracing():
        padded = F.pad(values, (0, 0, 0, 0, half, half))
        total = padded[:, 0:channels] + padded[:, 1:channels + 1] if size > 1 else padded.clone()
        for offset in range(2, size):
            total += padded[:, offset:offset + channels]
        return total
    total = values.clone()
    for offset in range(1, min(half, channels - 1) + 1):
        total[:, offset:] += values[:, :-offset]
        total[:, :-offset] += values[:, offset:]
    return total


def _cross_channel_scale(x, size, alpha, k):
    """Caffe's LRN scale: k + alpha/n * (window sum of x^2)."""
    return _channel_window_sum(x * x, size).mul_(alpha / size).add_(k)


class _CrossChannelLRN(torch.autograd.Function):
    """Across-channel LRN with Caffe's closed-form backward (lrn_layer.cpp): it keeps only x and the
    scale, where autograd through the forward's ops would keep every intermediate and replay them all.
        dx = dy * scale^-beta - (2 alpha beta / n) * x * window_sum(dy * y / scale)"""

    @staticmethod
    def forward(ctx, x, size, alpha, beta, k):
        def chunk(x):
            scale = _cross_channel_scale(x, size, alpha, k)
            return x * _negative_power(scale, beta), scale
        y, scale = _in_cache_sized_chunks(chunk, x)
        ctx.save_for_backward(x, scale)
        ctx.size, ctx.alpha, ctx.beta = size, alpha, beta
        return y

    @staticmethod
    def backward(ctx, grad_output):
        x, scale = ctx.saved_tensors
        size, factor, beta = ctx.size, -2.0 * ctx.alpha * ctx.beta / ctx.size, ctx.beta

        def chunk(grad_output, x, scale):
            power = _negative_power(scale, beta)
            ratio = grad_output * x * power / scale  # dy * y / scale
            accumulated = _channel_window_sum(ratio, size)
            grad = grad_output * power
            return grad.addcmul_(x, accumulated, value=factor)
        return _in_cache_sized_chunks(chunk, grad_output.contiguous(), x, scale), None, None, None, None


def _negative_power(scale, beta):
    """scale ** -beta, with rsqrt for Caffe's usual beta 0.75 (and 0.5): faster than pow, same to 1 ulp."""
    if beta == 0.75:
        root = torch.rsqrt(scale)
        return torch.sqrt(root) * root
    if beta == 0.5:
        return torch.rsqrt(scale)
    return scale.pow(-beta)


__all__ = ["Convolution", "Deconvolution", "Pooling", "LRN", "caffe_pooled_size"]


@register("Im2col")
class Im2col(Layer):
    """The patches a convolution would see, as channels: (N, C kh kw, out_h, out_w), channel-major within
    each patch as in Caffe's im2col (convolution_param's kernel, stride, pad and dilation; no weights)."""

    def setup(self, bottom_shapes):
        shape = bottom_shapes[0]
        if len(shape) != 4:
            raise self.shape_error(f"needs a 4-axis (N, C, H, W) bottom, got {shape}")
        cp = self.param.convolution_param
        self.kernel = _pair(self, "kernel_size", cp.kernel_size, (cp.kernel_h, cp.kernel_w),
                            cp.HasField("kernel_h") or cp.HasField("kernel_w"), None)
        if self.kernel[0] is None or min(self.kernel) <= 0:
            raise self.error("a positive kernel_size (or kernel_h and kernel_w) is required")
        self.stride = _pair(self, "stride", cp.stride, (cp.stride_h, cp.stride_w),
                            cp.HasField("stride_h") or cp.HasField("stride_w"), 1)
        self.pad = _pair(self, "pad", cp.pad, (cp.pad_h, cp.pad_w), cp.HasField("pad_h") or cp.HasField("pad_w"), 0)
        self.dilation = _pair(self, "dilation", cp.dilation, None, False, 1)
        size = [(shape[2 + i] + 2 * self.pad[i] - (self.dilation[i] * (self.kernel[i] - 1) + 1)) // self.stride[i] + 1
                for i in range(2)]
        if min(size) <= 0:
            raise self.shape_error(f"input {shape[2]}x{shape[3]} is too small for kernel {self.kernel}")
        self.out = tuple(size)
        return [(shape[0], shape[1] * self.kernel[0] * self.kernel[1]) + self.out]

    def forward(self, x):
        columns = F.unfold(x, self.kernel, dilation=self.dilation, padding=self.pad, stride=self.stride)
        return (columns.reshape(x.shape[0], -1, *self.out),)


@register("SPP")
class SPP(Layer):
    """Spatial pyramid pooling (He et al.) as Caffe builds it: for level l = 0 .. pyramid_height - 1, a
    Pooling layer (spp_param.pool, MAX or AVE) with n = 2^l bins per side, kernel = ceil(size / n), pad =
    (kernel n - size + 1) / 2 (integer), stride = kernel; each level's output flattened (channel, bin row,
    bin column) and the levels concatenated from 1x1 up: top (N, C (4^P - 1) / 3). With pyramid_height 1
    the single level's top is kept as (N, C, 1, 1). A level whose pad would reach its kernel (an input
    smaller than that level's bins) is an error, where Caffe aborts."""

    def setup(self, bottom_shapes):
        shape = bottom_shapes[0]
        if len(shape) != 4:
            raise self.shape_error(f"needs a 4-axis (N, C, H, W) bottom, got {shape}")
        sp = self.param.spp_param
        self.pyramid_height = int(sp.pyramid_height)
        if self.pyramid_height < 1:
            raise self.error("spp_param.pyramid_height must be at least 1")
        if sp.pool not in (PoolingParameter.MAX, PoolingParameter.AVE):
            raise self.error("only MAX and AVE pooling are supported (not STOCHASTIC)")
        self.pool = sp.pool
        self._levels = {}
        self.levels(shape[2], shape[3])
        if self.pyramid_height == 1:
            return [(shape[0], shape[1], 1, 1)]
        return [(shape[0], shape[1] * sum(4 ** level for level in range(self.pyramid_height)))]

    def levels(self, height, width):
        """The Pooling layers of the pyramid for one input size (built once per size)."""
        levels = self._levels.get((height, width))
        if levels is None:
            from ..caffe import schema
            levels = []
            for level in range(self.pyramid_height):
                bins = 2 ** level
                sizes = {}
                for axis, size in (("h", height), ("w", width)):
                    kernel = -(-size // bins)
                    sizes[axis] = (kernel, (kernel * bins - size + 1) // 2)
                (kernel_h, pad_h), (kernel_w, pad_w) = sizes["h"], sizes["w"]
                if pad_h >= kernel_h or pad_w >= kernel_w:
                    raise self.shape_error(f"a {height}x{width} input is too small for pyramid level {level} "
                                           f"({bins}x{bins} bins: kernel {kernel_h}x{kernel_w}, pad {pad_h}x{pad_w}); "
                                           f"lower pyramid_height")
                param = schema.LayerParameter(name=f"{self.name} level {level}", type="Pooling")
                pp = param.pooling_param
                pp.pool = self.pool
                pp.kernel_h, pp.kernel_w, pp.pad_h, pp.pad_w = kernel_h, kernel_w, pad_h, pad_w
                pp.stride_h, pp.stride_w = kernel_h, kernel_w
                levels.append(Pooling(param, [(1, 1, height, width)], self.phase))
            levels = self._levels.setdefault((height, width), levels)
        return levels

    def forward(self, x):
        levels = self.levels(int(x.shape[-2]), int(x.shape[-1]))
        if self.pyramid_height == 1:
            return levels[0](x)
        return (torch.cat([level(x)[0].flatten(1) for level in levels], dim=1),)
