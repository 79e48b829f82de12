"""Normalisation and per-channel affine layers: MVN, BatchNorm, Scale, Bias."""
import torch

from ..caffe.schema import TEST
from .base import Layer, recording, register


def _mvn_groups(shape, across_channels):
    """Caffe's MVN statistics run over rows of num = N (across channels) or N*C values each."""
    if across_channels or len(shape) < 2:
        return shape[0]
    return shape[0] * shape[1]


class _MVNFunction(torch.autograd.Function):
    """MVN with variance normalisation and Caffe's backward, which treats y = (x - mean) / (std + eps) as if
    eps were 0 in the derivative of std: dx = (dy - mean(dy) - y * mean(y * dy)) / (std + eps). Unlike
    autograd through sqrt, it stays finite for constant inputs (std 0), as Caffe's does."""

    @staticmethod
    def forward(ctx, rows, eps):
        centered = rows - rows.mean(dim=1, keepdim=True)
        std = centered.pow(2).mean(dim=1, keepdim=True).sqrt() + eps
        top = centered / std
        ctx.save_for_backward(top, std)
        return top

    @staticmethod
    def backward(ctx, top_diff):
        top, std = ctx.saved_tensors
        dim = top.shape[1]
        inner = top * (top * top_diff).sum(dim=1, keepdim=True) + top_diff.sum(dim=1, keepdim=True)
        return (top_diff - inner / dim) / std, None


@register("MVN")
class MVN(Layer):
    """Per sample (and per channel unless across_channels): subtract the mean; with normalize_variance
    (default) divide by sqrt(population variance) + eps (eps default 1e-9, outside the square root)."""

    def setup(self, bottom_shapes):
        mp = self.param.mvn_param
        self.normalize_variance = bool(mp.normalize_variance)
        self.across_channels = bool(mp.across_channels)
        self.eps = float(mp.eps)
        if len(bottom_shapes[0]) == 0:
            raise self.shape_error("needs a bottom with a batch axis, got a scalar")
        return bottom_shapes

    def forward(self, x):
        rows = x.reshape(_mvn_groups(tuple(x.shape), self.across_channels), -1)
        if not self.normalize_variance:
            return ((rows - rows.mean(dim=1, keepdim=True)).reshape(x.shape),)
        if torch.is_grad_enabled() and rows.requires_grad and not recording():
            return (_MVNFunction.apply(rows, self.eps).reshape(x.shape),)
        centered = rows - rows.mean(dim=1, keepdim=True)
        std = centered.pow(2).mean(dim=1, keepdim=True).sqrt() + self.eps
        return ((centered / std).reshape(x.shape),)


@register("BatchNorm")
class BatchNorm(Layer):
    """y = (x - mean) / sqrt(var + eps) per channel (axis 1).

    Blobs: running mean (C,), running variance (C,), scale factor (1,); the statistics are the first two
    divided by the third (a factor of 0 gives 0). use_global_stats defaults to (phase == TEST); without it
    the batch's mean and population variance over all axes but 1 are used, and the blobs are updated in
    place as Caffe does: factor = factor * maf + 1, mean = mean * maf + batch mean,
    var = var * maf + batch var * m / (m - 1), m = count / C. The blobs are never learned
    (requires_grad False, and, as Caffe's LayerSetUp does, missing `param` specs are added to the layer's
    LayerParameter with lr_mult 0; a nonzero lr_mult is an error).
    """
    NEEDS_PHASE = True

    def setup(self, bottom_shapes):
        bp = self.param.batch_norm_param
        shape = bottom_shapes[0]
        if len(shape) == 0:
            raise self.shape_error("needs a bottom with a batch axis, got a scalar")
        self.use_global_stats = (bool(bp.use_global_stats) if bp.HasField("use_global_stats")
                                 else self.phase == TEST)
        self.moving_average_fraction = float(bp.moving_average_fraction)
        self.eps = float(bp.eps)
        self.channels = 1 if len(shape) == 1 else shape[1]
        for i, spec in enumerate(self.param.param):
            if spec.lr_mult != 0:
                raise self.error(f"cannot learn the batch normalisation statistics: param {i} has lr_mult "
                                 f"{spec.lr_mult} (use 0 or leave the param out)")
        for blob_shape in ((self.channels,), (self.channels,), (1,)):
            self.add_blob(blob_shape).requires_grad_(False)
        if len(self.param.param) < len(self.blobs):  # as Caffe's LayerSetUp: the net sees lr_mult 0
            own = type(self.param)()  # the layer's own copy: the caller's LayerParameter stays as given
            own.CopyFrom(self.param)
            own.ClearField("blobs")
            while len(own.param) < len(self.blobs):
                own.param.add(lr_mult=0.0)
            self.param = own
        return bottom_shapes

    def forward(self, x):
        m = x.numel() // self.channels
        if not self.use_global_stats and m > 1 and not recording():
            return (self._batch_statistics_forward(x if x.dim() >= 2 else x.reshape(-1, 1)).reshape(x.shape),)
        rows = x.reshape(x.shape[0], self.channels, -1)
        if self.use_global_stats:
            mean, var = self._stored_statistics()
        else:
            mean = rows.mean(dim=(0, 2))
            var = (rows - mean[:, None]).pow(2).mean(dim=(0, 2))
            self._update_running(mean.detach(), var.detach() * (m / (m - 1) if m > 1 else 1.0))
        top = (rows - mean[:, None]) / torch.sqrt(var + self.eps)[:, None]
        return (top.reshape(x.shape),)

    def _batch_statistics_forward(self, x):
        """Normalisation by the batch's own statistics through torch's batch_norm kernel, whose backward is
        one fused pass instead of autograd's chain of full-size temporaries (on the CPU recipe's global net
        that chain was a large part of a training iteration). With momentum 1, torch leaves in its running
        buffers exactly the batch's mean and unbiased variance, which feed Caffe's moving averages."""
        mean = x.new_zeros(self.channels)
        unbiased_var = x.new_ones(self.channels)
        top = torch.nn.functional.batch_norm(x, mean, unbiased_var, training=True, momentum=1.0, eps=self.eps)
        self._update_running(mean, unbiased_var)
        return top

    def channel_affine(self):
        """With the stored statistics, the layer is y = x * a + b per channel (axis 1): (a, b) as (C,) tensors;
        None when it normalises by the batch's own statistics."""
        if not self.use_global_stats:
            return None
        mean, var = self._stored_statistics()
        multiplier = 1 / torch.sqrt(var + self.eps)
        return multiplier, -mean * multiplier

    def _stored_statistics(self):
        """(mean, variance): the blobs divided by the scale factor (a factor of 0 gives 0)."""
        mean_blob, var_blob, factor_blob = self.blobs
        factor = factor_blob[0]
        inverse = torch.where(factor == 0, torch.zeros_like(factor), 1 / factor)
        return mean_blob * inverse, var_blob * inverse

    def fill(self, generator, **options):
        with torch.no_grad():
            for blob in self.blobs:
                blob.zero_()

    def _update_running(self, mean, unbiased_var):
        """Caffe's moving averages, from the batch's mean and its variance times m / (m - 1) (1 when m is 1)."""
        maf = self.moving_average_fraction
        mean_blob, var_blob, factor_blob = self.blobs
        with torch.no_grad():
            factor_blob.mul_(maf).add_(1)
            mean_blob.mul_(maf).add_(mean.to(mean_blob.dtype))
            var_blob.mul_(maf).add_(unbiased_var.to(var_blob.dtype))


class _Broadcast(Layer):
    """Scale and Bias: combine bottom[0] with a blob (or bottom[1]) of shape bottom[0].shape[axis:axis+n],
    broadcast over the other axes (Caffe's outer_dim x dim x inner_dim)."""
    BOTTOMS = (1, 2)

    def operand_shape(self, bottom_shapes, spec):
        """The shape of the scale/bias: bottom[1]'s, or bottom[0].shape[axis:axis+num_axes] (one bottom)."""
        shape = bottom_shapes[0]
        if len(bottom_shapes) == 2:
            operand = bottom_shapes[1]
        else:
            axis = self.canonical_axis(spec.axis, len(shape)) if len(shape) else 0
            if spec.num_axes < -1:
                raise self.error(f"num_axes must be non-negative, or -1 to extend to the end, got {spec.num_axes}")
            if spec.num_axes >= 0 and axis + spec.num_axes > len(shape):
                raise self.shape_error(f"a blob of {spec.num_axes} axes from axis {axis} extends past the "
                                       f"bottom's shape {shape}")
            operand = shape[axis:] if spec.num_axes == -1 else shape[axis:axis + spec.num_axes]
        # A scalar operand applies everywhere: Caffe then ignores axis.
        self.axis = 0 if len(operand) == 0 else self.canonical_axis(spec.axis, len(shape))
        if self.axis + len(operand) > len(shape) or shape[self.axis:self.axis + len(operand)] != tuple(operand):
            raise self.shape_error(f"a blob of shape {tuple(operand)} does not match bottom {shape} from axis "
                                   f"{self.axis}")
        return tuple(operand)

    def broadcast(self, operand, ndim):
        return operand.reshape(tuple(operand.shape) + (1,) * (ndim - self.axis - operand.dim()))


@register("Scale")
class Scale(_Broadcast):
    """y = x * scale (+ bias with bias_term). One bottom: blobs [scale, bias], scale of shape
    x.shape[axis:axis+num_axes] (default filler constant 1); two bottoms: bottom[1] is the scale and the
    only blob is the bias."""

    def setup(self, bottom_shapes):
        sp = self.param.scale_param
        operand = self.operand_shape(bottom_shapes, sp)
        self.learned_scale = len(bottom_shapes) == 1
        if self.learned_scale:
            self.add_blob(operand)
        self.bias_term = bool(sp.bias_term)
        if self.bias_term:
            self.add_blob(operand)
        return bottom_shapes[:1]

    def forward(self, x, *scale):
        scale = self.blobs[0] if self.learned_scale else scale[0]
        top = x * self.broadcast(scale, x.dim())
        if self.bias_term:
            top = top + self.broadcast(self.blobs[-1], x.dim())
        return (top,)

    def channel_affine(self):
        """y = x * a + b per channel (axis 1) as (a, b) (C,) tensors (b None without bias_term); None unless
        the scale is the layer's own blob of one value per channel."""
        if not self.learned_scale or self.axis != 1 or self.blobs[0].dim() != 1:
            return None
        return self.blobs[0], (self.blobs[1] if self.bias_term else None)

    def fill(self, generator, **options):
        sp = self.param.scale_param
        if self.learned_scale:
            if sp.HasField("filler"):
                self.fill_blob(self.blobs[0], sp.filler, generator, **options)
            else:
                with torch.no_grad():
                    self.blobs[0].fill_(1.0)  # Caffe's default: the identity
        if self.bias_term:
            self.fill_blob(self.blobs[-1], sp.bias_filler, generator, **options)


@register("Bias")
class Bias(_Broadcast):
    """y = x + bias: one bottom: the blob of shape x.shape[axis:axis+num_axes] (filler default constant 0);
    two bottoms: bottom[1] is the bias."""

    def setup(self, bottom_shapes):
        operand = self.operand_shape(bottom_shapes, self.param.bias_param)
        self.learned_bias = len(bottom_shapes) == 1
        if self.learned_bias:
            self.add_blob(operand)
        return bottom_shapes[:1]

    def forward(self, x, *bias):
        bias = self.blobs[0] if self.learned_bias else bias[0]
        return (x + self.broadcast(bias, x.dim()),)

    def fill(self, generator, **options):
        if self.learned_bias:
            self.fill_blob(self.blobs[0], self.param.bias_param.filler, generator, **options)
