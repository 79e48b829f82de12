"""Loss layers: EuclideanLoss. The net multiplies a loss top by its loss_weight (default 1)."""
import math

from .base import Layer, register


@register("EuclideanLoss")
class EuclideanLoss(Layer):
    """sum((a - b)^2) / (2 N), N = a.shape[0]; a scalar top of shape (). The bottoms need the same first
    axis and the same count per sample (their shapes may differ otherwise, as in Caffe)."""
    BOTTOMS = 2
    IS_LOSS = True

    def setup(self, bottom_shapes):
        a, b = bottom_shapes
        if len(a) == 0 or len(b) == 0:
            raise self.shape_error(f"needs bottoms with a batch axis, got {a} and {b}")
        if a[0] != b[0]:
            raise self.shape_error(f"the bottoms must have the same first dimension: {a} vs {b}")
        if math.prod(a[1:]) != math.prod(b[1:]):
            raise self.shape_error(f"the bottoms must have the same count per sample: {a} vs {b}")
        return [()]

    def forward(self, a, b):
        diff = a.reshape(a.shape[0], -1) - b.reshape(b.shape[0], -1)
        return ((diff * diff).sum() / a.shape[0] / 2,)
