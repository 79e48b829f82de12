"""Element-wise layers: ReLU (leaky via negative_slope), Dropout, Power, Log, Exp, AbsVal, Sigmoid, TanH,
and Softmax (along an axis)."""
import numpy as np
import torch
import torch.nn.functional as F

from .base import NeuronLayer, register


@register("ReLU")
class ReLU(NeuronLayer):
    """y = max(x, 0) + negative_slope * min(x, 0)."""
    IN_PLACE = True

    def configure(self):
        self.negative_slope = float(self.param.relu_param.negative_slope)

    def forward(self, x, in_place=False):
        if self.negative_slope == 0:
            return (torch.relu_(x) if in_place else torch.relu(x),)
        return (F.leaky_relu(x, self.negative_slope, inplace=in_place),)


@register("Dropout")
class Dropout(NeuronLayer):
    """TRAIN: zeroes each value with probability dropout_ratio and scales survivors by 1/(1 - ratio);
    TEST: identity. Draws from `generator` when the net gives it one (a Solver does), else from torch's
    global generator."""
    NEEDS_PHASE = True
    DRAWS_RANDOM = True
    generator = None

    def configure(self):
        self.ratio = float(self.param.dropout_param.dropout_ratio)
        if not 0.0 <= self.ratio < 1.0:
            raise self.error(f"dropout_ratio must be in [0, 1), got {self.ratio}")

    def forward(self, x):
        if self.phase != self.TRAIN or self.ratio == 0.0:
            return (x,)
        if self.generator is None:
            return (F.dropout(x, self.ratio, training=True),)
        keep = torch.rand(x.shape, generator=self.generator, device=x.device, dtype=x.dtype) >= self.ratio
        return (x * keep / (1.0 - self.ratio),)


@register("Power")
class Power(NeuronLayer):
    """y = (shift + scale * x) ^ power; a constant when power * scale is 0, as in Caffe."""

    def configure(self):
        pp = self.param.power_param
        self.power, self.scale, self.shift = float(pp.power), float(pp.scale), float(pp.shift)

    def forward(self, x):
        if self.power * self.scale == 0:
            with np.errstate(invalid="ignore", divide="ignore"):  # Caffe's pow: NaN or inf where undefined
                value = 1.0 if self.power == 0 else float(np.power(np.float32(self.shift), np.float32(self.power)))
            return (torch.full_like(x, value),)
        y = x * self.scale if self.scale != 1 else x
        if self.shift != 0:
            y = y + self.shift
        if self.power != 1:
            y = y.pow(self.power)
        return (y,)


def _log_base(layer, base):
    """Caffe's log(base) in float32 (1 exactly for base -1, meaning e); base must be positive."""
    if base == -1:
        return 1.0
    if not base > 0:
        raise layer.error(f"base must be strictly positive (or -1 for e), got {base}")
    log_base = float(np.log(np.float32(base)))
    if not np.isfinite(log_base):
        raise layer.error(f"log(base) = log({base}) is not finite")
    return log_base


@register("Log")
class Log(NeuronLayer):
    """y = ln(shift + scale * x) / ln(base); natural log for base -1 (the default)."""

    def configure(self):
        lp = self.param.log_param
        log_base = _log_base(self, float(lp.base))
        if log_base == 0:
            raise self.error(f"1/log(base) is infinite for base {lp.base}")
        self.base_scale = float(np.float32(1) / np.float32(log_base))
        self.scale, self.shift = float(lp.scale), float(lp.shift)

    def forward(self, x):
        y = x * self.scale if self.scale != 1 else x
        if self.shift != 0:
            y = y + self.shift
        y = torch.log(y)
        return (y * self.base_scale if self.base_scale != 1 else y,)


@register("Exp")
class Exp(NeuronLayer):
    """y = base ^ (shift + scale * x), computed as Caffe does: base^shift * exp(ln(base) * scale * x)."""

    def configure(self):
        ep = self.param.exp_param
        base, scale, shift = float(ep.base), float(ep.scale), float(ep.shift)
        log_base = _log_base(self, base)
        self.inner_scale = float(np.float32(log_base) * np.float32(scale))
        if shift == 0:
            self.outer_scale = 1.0
        elif base == -1:
            self.outer_scale = float(np.exp(np.float32(shift)))
        else:
            self.outer_scale = float(np.power(np.float32(base), np.float32(shift)))

    def forward(self, x):
        y = torch.exp(x * self.inner_scale if self.inner_scale != 1 else x)
        return (y * self.outer_scale if self.outer_scale != 1 else y,)


@register("AbsVal")
class AbsVal(NeuronLayer):
    """y = |x| (gradient sign(x), 0 at 0)."""

    def forward(self, x):
        return (torch.abs(x),)


@register("Sigmoid")
class Sigmoid(NeuronLayer):
    """y = 1 / (1 + exp(-x))."""

    def forward(self, x):
        return (torch.sigmoid(x),)


@register("TanH")
class TanH(NeuronLayer):
    """y = tanh(x)."""

    def forward(self, x):
        return (torch.tanh(x),)


@register("Softmax")
class Softmax(NeuronLayer):
    """y = exp(x) / sum exp(x) along softmax_param.axis (default 1)."""

    def setup(self, bottom_shapes):
        self.axis = self.canonical_axis(self.param.softmax_param.axis, len(bottom_shapes[0]))
        return bottom_shapes

    def forward(self, x):
        return (torch.softmax(x, dim=self.axis),)


@register("ELU")
class ELU(NeuronLayer):
    """y = x for x > 0, alpha (exp(x) - 1) otherwise (elu_param.alpha, default 1)."""

    def configure(self):
        self.alpha = float(self.param.elu_param.alpha)

    def forward(self, x):
        return (torch.where(x > 0, x, self.alpha * torch.expm1(torch.clamp(x, max=0))),)


@register("BNLL")
class BNLL(NeuronLayer):
    """y = log(1 + exp(x)), computed as x + log(1 + exp(-x)) for x > 0 as Caffe does."""

    def forward(self, x):
        return (F.softplus(x),)


@register("Threshold")
class Threshold(NeuronLayer):
    """y = 1 where x > threshold_param.threshold (default 0), else 0; no gradient (Caffe has none)."""

    def configure(self):
        self.threshold = float(self.param.threshold_param.threshold)

    def forward(self, x):
        return ((x.detach() > self.threshold).to(x.dtype),)


@register("Swish")
class Swish(NeuronLayer):
    """y = x sigmoid(beta x) (swish_param.beta, default 1)."""

    def configure(self):
        self.beta = float(self.param.swish_param.beta)

    def forward(self, x):
        return (x * torch.sigmoid(self.beta * x),)


@register("Clip")
class Clip(NeuronLayer):
    """y = min(max(x, clip_param.min), clip_param.max); both bounds are required."""

    def configure(self):
        cp = self.param.clip_param
        if not (cp.HasField("min") and cp.HasField("max")):
            raise self.error("clip_param needs both min and max")
        self.low, self.high = float(cp.min), float(cp.max)
        if self.low > self.high:
            raise self.error(f"clip_param min ({self.low}) is above max ({self.high})")

    def forward(self, x):
        return (torch.clamp(x, self.low, self.high),)


@register("PReLU")
class PReLU(NeuronLayer):
    """y = max(0, x) + a min(0, x), with a learned slope a per channel (axis 1), or one for all with
    prelu_param.channel_shared; slopes start from prelu_param.filler (default constant 0.25)."""

    def setup(self, bottom_shapes):
        shape = bottom_shapes[0]
        if len(shape) < 2 and not self.param.prelu_param.channel_shared:
            raise self.shape_error(f"needs a channel axis, got {shape} (or set channel_shared)")
        self.shared = bool(self.param.prelu_param.channel_shared)
        self.add_blob((1,) if self.shared else (shape[1],))
        return bottom_shapes

    def fill(self, generator, **options):
        from ..caffe.schema import FillerParameter
        pp = self.param.prelu_param
        filler = pp.filler if pp.HasField("filler") else FillerParameter(type="constant", value=0.25)
        self.fill_blob(self.blobs[0], filler, generator, **options)

    def forward(self, x):
        slope = self.blobs[0] if self.shared else self.blobs[0].reshape((1, -1) + (1,) * (x.dim() - 2))
        return (torch.clamp(x, min=0) + slope * torch.clamp(x, max=0),)
