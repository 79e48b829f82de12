"""Loss layers (EuclideanLoss, SoftmaxWithLoss, the other losses of BVLC's registry, and the successors'
BerHuLoss and DenseDepthLoss) and Accuracy. The net multiplies a loss top by its loss_weight (default 1)."""
import math

import torch

from ..caffe.schema import NormalizationMode
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


def _normalizer(mode, outer, inner, valid):
    """Caffe's LossLayer::GetNormalizer: how many the summed loss is divided by (at least 1)."""
    counts = {"FULL": outer * inner, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}
    return max(1.0, float(counts[mode]))


def _loss_mode(lp, default):
    """The normalisation of a loss layer: loss_param.normalization, else the legacy `normalize`, else default."""
    if lp.HasField("normalization"):
        return NormalizationMode.by_number[int(lp.normalization)]
    if lp.HasField("normalize"):
        return "VALID" if lp.normalize else "BATCH_SIZE"
    return default


def _floor_keeping_gradient(x, floor):
    """max(x, floor) in value, with x's own gradient everywhere (Caffe's analytic gradients ignore the floor)."""
    return x + (torch.clamp(x, min=floor) - x).detach()


@register("SoftmaxWithLoss")
class SoftmaxWithLoss(Layer):
    """-sum log(max(softmax(x)[label], FLT_MIN)) over the labelled positions, divided by the normalizer of
    loss_param.normalization (VALID by default: the positions whose label is not ignore_label; the legacy
    `normalize: false` means BATCH_SIZE). Labels are read as integers along softmax_param.axis (default 1); a
    second top, when given, is the softmax itself. No gradient reaches the labels."""
    BOTTOMS = 2
    TOPS = (1, 2)
    IS_LOSS = True

    def setup(self, bottom_shapes):
        scores, labels = bottom_shapes
        self.axis = self.canonical_axis(self.param.softmax_param.axis, len(scores))
        self.outer, self.inner = math.prod(scores[:self.axis]), math.prod(scores[self.axis + 1:])
        if self.outer * self.inner != math.prod(labels):
            raise self.shape_error(f"number of labels must match number of predictions: {self.outer} x "
                                   f"{self.inner} predictions for scores {scores}, {math.prod(labels)} labels {labels}")
        lp = self.param.loss_param
        self.ignore = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.mode = _loss_mode(lp, "VALID")
        return [()] + ([tuple(scores)] if len(self.param.top) > 1 else [])

    def forward(self, scores, labels):
        channels = scores.shape[self.axis]
        log_prob = torch.log_softmax(scores.reshape(self.outer, channels, self.inner), dim=1)
        prob = log_prob.exp()
        label = labels.reshape(self.outer, self.inner).detach().long()
        valid = torch.ones_like(label, dtype=torch.bool) if self.ignore is None else label != self.ignore
        if bool(((label < 0) | (label >= channels))[valid].any()):
            raise self.error(f"a label is outside 0..{channels - 1}")
        picked = torch.gather(log_prob, 1, label.clamp(0, channels - 1)[:, None, :])[:, 0, :]
        # the value of -log(max(p, FLT_MIN)), with Caffe's analytic gradient (softmax - onehot) even where p
        # underflows: the clamp changes the value only, not the gradient
        picked = _floor_keeping_gradient(picked, math.log(torch.finfo(scores.dtype).tiny))
        losses = -picked * valid
        loss = losses.sum() / _normalizer(self.mode, self.outer, self.inner, int(valid.sum()))
        if len(self.top_shapes) > 1:
            return loss, prob.reshape(scores.shape)
        return (loss,)


@register("Accuracy")
class Accuracy(Layer):
    """The fraction of labelled positions whose label is among the top_k scores along accuracy_param.axis
    (ties count against it, as in Caffe: a label is right when fewer than top_k scores are >= its own);
    positions labelled ignore_label are left out. A second top, when given, is the accuracy per class."""
    BOTTOMS = 2
    TOPS = (1, 2)

    def setup(self, bottom_shapes):
        scores, labels = bottom_shapes
        ap = self.param.accuracy_param
        self.top_k = int(ap.top_k)
        self.axis = self.canonical_axis(ap.axis, len(scores))
        self.outer, self.inner = math.prod(scores[:self.axis]), math.prod(scores[self.axis + 1:])
        self.classes = scores[self.axis]
        if self.top_k > self.classes:
            raise self.error(f"top_k ({self.top_k}) must be at most the number of classes ({self.classes})")
        if self.outer * self.inner != math.prod(labels):
            raise self.shape_error(f"number of labels must match number of predictions: scores {scores}, "
                                   f"labels {labels}")
        self.ignore = int(ap.ignore_label) if ap.HasField("ignore_label") else None
        return [()] + ([(self.classes,)] if len(self.param.top) > 1 else [])

    def forward(self, scores, labels):
        scores = scores.detach().reshape(self.outer, self.classes, self.inner)
        label = labels.detach().reshape(self.outer, self.inner).long()
        valid = torch.ones_like(label, dtype=torch.bool) if self.ignore is None else label != self.ignore
        true_score = torch.gather(scores, 1, label.clamp(0, self.classes - 1)[:, None, :])
        right = ((scores >= true_score).sum(dim=1) - 1 < self.top_k) & valid
        count = int(valid.sum())
        accuracy = right.sum().to(scores.dtype) / count if count else scores.new_zeros(())
        if len(self.top_shapes) == 1:
            return (accuracy,)
        per_class = scores.new_zeros(self.classes)
        for c in range(self.classes):
            members = (label == c) & valid
            if bool(members.any()):
                per_class[c] = right[members].sum().to(scores.dtype) / int(members.sum())
        return accuracy, per_class


@register("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLoss(Layer):
    """-sum [t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))] over the positions whose target is not
    ignore_label, in Caffe's overflow-free form, divided by the normaliser (BATCH_SIZE unless loss_param says
    otherwise). The targets get no gradient."""
    BOTTOMS = 2
    IS_LOSS = True

    def setup(self, bottom_shapes):
        scores, targets = bottom_shapes
        if math.prod(scores) != math.prod(targets):
            raise self.shape_error(f"scores {scores} and targets {targets} must have the same count")
        lp = self.param.loss_param
        self.ignore = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.mode = _loss_mode(lp, "BATCH_SIZE")
        self.outer = scores[0] if scores else 1
        self.inner = math.prod(scores) // max(1, self.outer)
        return [()]

    def forward(self, x, target):
        t = target.detach().reshape(x.shape)
        valid = torch.ones_like(t, dtype=torch.bool) if self.ignore is None else t != self.ignore
        positive = (x >= 0).to(x.dtype)
        terms = -(x * (t - positive) - torch.log1p(torch.exp(x - 2 * x * positive)))
        loss = (terms * valid).sum()
        return (loss / _normalizer(self.mode, self.outer, self.inner, int(valid.sum())),)


class _LabelPerSample(Layer):
    """Losses of N x C values with one integer label per sample."""
    BOTTOMS = 2
    IS_LOSS = True

    def setup(self, bottom_shapes):
        values, labels = bottom_shapes
        self.num = values[0]
        self.dim = math.prod(values) // self.num
        if math.prod(labels) != self.num:
            raise self.shape_error(f"needs one label per sample: values {values}, labels {labels}")
        return [()]

    def _rows_and_labels(self, x, labels):
        label = labels.detach().reshape(self.num).long()
        if bool(((label < 0) | (label >= self.dim)).any()):
            raise self.error(f"a label is outside 0..{self.dim - 1}")
        return x.reshape(self.num, self.dim), label


@register("MultinomialLogisticLoss")
class MultinomialLogisticLoss(_LabelPerSample):
    """-sum log(max(p[label], 1e-20)) / N over probabilities p (N x C); the gradient keeps Caffe's
    -1 / max(p, 1e-20) where p is below the threshold."""

    def forward(self, p, labels):
        flat, label = self._rows_and_labels(p, labels)
        picked = flat[torch.arange(self.num), label]
        return (-torch.log(_floor_keeping_gradient(picked, 1e-20)).sum() / self.num,)


@register("HingeLoss")
class HingeLoss(_LabelPerSample):
    """One-vs-all hinge loss of scores (N x C): sum over classes of max(0, 1 - x) for the label and
    max(0, 1 + x) for the others, per hinge_loss_param.norm L1 (default) or squared (L2), divided by N."""

    def setup(self, bottom_shapes):
        from ..caffe.schema import HingeLossParameter
        self.squared = int(self.param.hinge_loss_param.norm) == HingeLossParameter.L2
        return super().setup(bottom_shapes)

    def forward(self, x, labels):
        flat, label = self._rows_and_labels(x, labels)
        sign = torch.ones_like(flat)
        sign[torch.arange(self.num), label] = -1.0
        margin = torch.clamp(1 + sign * flat, min=0)
        total = (margin * margin).sum() if self.squared else margin.sum()
        return (total / self.num,)


class _Contrastive(torch.autograd.Function):
    """ContrastiveLoss's value with Caffe's analytic gradients (see the layer); a and b are (N, C)."""

    @staticmethod
    def forward(ctx, a, b, similar, margin, legacy):
        diff = a - b
        dist_sq = (diff * diff).sum(dim=1)
        if legacy:
            dissimilar = torch.clamp(margin - dist_sq, min=0)
        else:
            dissimilar = torch.clamp(margin - dist_sq.sqrt(), min=0) ** 2
        ctx.save_for_backward(diff, dist_sq, similar)
        ctx.margin, ctx.legacy = margin, legacy
        return torch.where(similar, dist_sq, dissimilar).sum() / a.shape[0] / 2

    @staticmethod
    def backward(ctx, top_diff):
        diff, dist_sq, similar = ctx.saved_tensors
        if ctx.legacy:
            factor = torch.where(ctx.margin - dist_sq > 0, -1.0, 0.0).to(diff.dtype)
        else:
            dist = dist_sq.sqrt()
            mdist = ctx.margin - dist
            factor = torch.where(mdist > 0, -mdist / (dist + 1e-4), torch.zeros_like(dist))
        factor = torch.where(similar, torch.ones_like(factor), factor)
        grad = top_diff / diff.shape[0] * factor[:, None] * diff
        return grad, -grad, None, None, None


@register("ContrastiveLoss")
class ContrastiveLoss(Layer):
    """Hadsell et al.'s loss of pairs: sum over the N pairs of d^2 when similar (int(y) != 0), else
    max(margin - d, 0)^2 (legacy_version: max(margin - d^2, 0)), divided by 2 N; d = ||a - b|| over the
    channels of a and b (N x C x 1 x 1). Caffe's gradient divides by d + 1e-4 for dissimilar pairs (and is
    -(a - b) alpha in the legacy form); y gets none."""
    BOTTOMS = 3
    IS_LOSS = True

    def setup(self, bottom_shapes):
        a, b, y = bottom_shapes
        if len(a) < 2 or a[1:] != b[1:] or any(d != 1 for d in a[2:]):
            raise self.shape_error(f"a and b must be N x C x 1 x 1 of the same C, got {a} and {b}")
        if a[0] != b[0]:
            raise self.shape_error(f"a and b must have the same number of pairs, got {a} and {b}")
        if math.prod(y) != a[0]:
            raise self.shape_error(f"y must hold one similarity per pair (N x 1 x 1 x 1), got {y} for {a[0]} pairs")
        cp = self.param.contrastive_loss_param
        self.margin, self.legacy = float(cp.margin), bool(cp.legacy_version)
        return [()]

    def forward(self, a, b, y):
        similar = y.detach().reshape(-1).trunc() != 0
        return (_Contrastive.apply(a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1), similar, self.margin,
                                   self.legacy),)


@register("InfogainLoss")
class InfogainLoss(Layer):
    """BVLC Caffe's (master) InfogainLoss: a softmax of the scores along infogain_loss_param.axis, then
    -sum over the labelled positions of sum_k H[label, k] log(max(p_k, 1e-20)), divided by the normaliser of
    loss_param.normalization (VALID by default); positions labelled ignore_label are left out. H (K x K, row =
    true label) is the third bottom or the binaryproto file infogain_loss_param.source. The gradient is
    Caffe's p * rowsum(H)[label] - H[label, :] (the clamp changes the value only). A second top, when named,
    is the softmax. Neither the labels nor H get a gradient."""
    BOTTOMS = (2, 3)
    TOPS = (1, 2)
    IS_LOSS = True

    def setup(self, bottom_shapes):
        scores, labels = bottom_shapes[:2]
        ip = self.param.infogain_loss_param
        self.axis = self.canonical_axis(ip.axis, len(scores))
        self.outer, self.inner = math.prod(scores[:self.axis]), math.prod(scores[self.axis + 1:])
        self.classes = scores[self.axis]
        if self.outer * self.inner != math.prod(labels):
            raise self.shape_error(f"number of labels must match number of predictions: scores {scores}, "
                                   f"labels {labels}")
        lp = self.param.loss_param
        if lp.HasField("normalize"):
            raise self.error("loss_param.normalize is deprecated in InfogainLoss: use loss_param.normalization")
        self.ignore = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.mode = _loss_mode(lp, "VALID")
        self.matrix = None
        if len(bottom_shapes) == 3:
            if math.prod(bottom_shapes[2]) != self.classes ** 2:
                raise self.shape_error(f"H must hold {self.classes} x {self.classes} values, got "
                                       f"{bottom_shapes[2]}")
        else:
            if not ip.source:
                raise self.error("give H as a third bottom or in infogain_loss_param.source (a binaryproto)")
            self.matrix = self._read_matrix(ip.source)
        return [()] + ([tuple(scores)] if self.num_tops(1) > 1 else [])

    def _read_matrix(self, source):
        import numpy as np
        from ..caffe.io import blob_to_array, read_binaryproto
        array = np.asarray(blob_to_array(read_binaryproto(source)), dtype=np.float32)
        if array.size != self.classes ** 2:
            raise self.shape_error(f"{source}: H holds {array.size} values, not {self.classes} x {self.classes}")
        return torch.from_numpy(array.reshape(self.classes, self.classes).copy())

    def forward(self, scores, labels, matrix=None):
        H = (matrix.detach() if matrix is not None else self.matrix.to(scores.device)).reshape(
            self.classes, self.classes).to(scores.dtype)
        log_prob = torch.log_softmax(scores.reshape(self.outer, self.classes, self.inner), dim=1)
        prob = log_prob.exp()
        label = labels.detach().reshape(self.outer, self.inner).long()
        valid = torch.ones_like(label, dtype=torch.bool) if self.ignore is None else label != self.ignore
        if bool(((label < 0) | (label >= self.classes))[valid].any()):
            raise self.error(f"a label is outside 0..{self.classes - 1}")
        weights = H[label.clamp(0, self.classes - 1)].permute(0, 2, 1)  # (outer, K, inner): row H[label]
        clamped = _floor_keeping_gradient(log_prob, math.log(1e-20))
        losses = -(weights * clamped).sum(dim=1) * valid
        loss = losses.sum() / _normalizer(self.mode, self.outer, self.inner, int(valid.sum()))
        if self.num_tops(1) > 1:
            return loss, prob.detach().reshape(scores.shape)
        return (loss,)


@register("BerHuLoss")
class BerHuLoss(Layer):
    """The reverse Huber loss of FCRN (Laina et al. 2016, eq. 2; not a BVLC type): over the pixels whose
    ground truth (the second bottom) is positive, r = prediction - truth and B(r) = |r| where |r| <= c, else
    (r^2 + c^2) / (2c), with c = 1/5 of the largest |r| over the batch's valid pixels, as the paper states; the
    loss is the mean of B over those pixels (0 when there are none). Pixels without a depth (truth <= 0, as in
    the Kinect's holes) are left out. c is a constant of each forward, so the gradient is sign(r) where |r| <= c
    and r / c beyond, divided by the number of valid pixels; the truth gets none."""
    BOTTOMS = 2
    IS_LOSS = True
    C_FRACTION = 0.2

    def setup(self, bottom_shapes):
        prediction, truth = bottom_shapes
        if tuple(prediction) != tuple(truth):
            raise self.shape_error(f"the prediction {prediction} and the ground truth {truth} must have one shape")
        return [()]

    def forward(self, prediction, truth):
        truth = truth.detach()
        valid = truth > 0
        residual = (prediction - truth)[valid]
        if residual.numel() == 0:
            return (prediction.sum() * 0,)
        c = self.C_FRACTION * residual.detach().abs().max()
        if float(c) == 0:
            return (residual.abs().mean(),)
        absolute = residual.abs()
        values = torch.where(absolute <= c, absolute, (residual * residual + c * c) / (2 * c))
        return (values.mean(),)


@register("DenseDepthLoss")
class DenseDepthLoss(Layer):
    """DenseDepth's loss (Alhashim and Wonka 2018, eq. 1-4, and their released Keras code; not a BVLC type), on
    a prediction and a ground truth (N, 1, H, W, H and W at least 11) in the paper's normalised depth
    y = 10 m / depth (so 1..100 for 0.1..10 m; a Power layer with power -1 and scale 0.1 per metre makes it):

        L = 0.1 * L_depth + L_grad + L_SSIM

    L_depth: the mean |prediction - truth|. L_grad: the mean of |d_y prediction - d_y truth| + |d_x prediction
    - d_x truth| over all pixels, with forward differences (0 on the last row and column, as TensorFlow's
    image_gradients). L_SSIM: per image clip((1 - SSIM) / 2, 0, 1), averaged over the batch, SSIM being the mean
    of the SSIM map over the positions where an 11 x 11 Gaussian window (sigma 1.5) fits (TensorFlow's ssim:
    k1 0.01, k2 0.03, dynamic range 100, the biased covariance). Pixels without a depth (a truth that is not
    finite and positive) are left out: the depth term averages over the others; a difference counts where both
    of its pixels have a depth and the gradient term is divided by the number of pixels with one; the SSIM map
    keeps the windows whose every pixel has one (an image without any such window is left out of that term).
    The truth gets no gradient."""
    BOTTOMS = 2
    IS_LOSS = True
    THETA, DYNAMIC_RANGE, WINDOW, SIGMA, K1, K2 = 0.1, 100.0, 11, 1.5, 0.01, 0.03

    def setup(self, bottom_shapes):
        prediction, truth = bottom_shapes
        if tuple(prediction) != tuple(truth) or len(prediction) != 4 or prediction[1] != 1:
            raise self.shape_error(f"needs a prediction and a ground truth of one shape (N, 1, H, W), got {prediction} "
                                   f"and {truth}")
        if min(prediction[2:]) < self.WINDOW:
            raise self.shape_error(f"SSIM's {self.WINDOW} x {self.WINDOW} window needs H and W of at least "
                                   f"{self.WINDOW}, got {prediction}")
        return [()]

    def _window(self, like):
        offsets = torch.arange(self.WINDOW, dtype=like.dtype, device=like.device) - (self.WINDOW - 1) / 2
        line = torch.exp(-offsets ** 2 / (2 * self.SIGMA ** 2))
        kernel = line[:, None] * line[None, :]
        return (kernel / kernel.sum())[None, None]

    def _ssim_term(self, p, t, valid):
        import torch.nn.functional as F
        window = self._window(p)
        mean_p, mean_t = F.conv2d(p, window), F.conv2d(t, window)
        var_p = F.conv2d(p * p, window) - mean_p ** 2
        var_t = F.conv2d(t * t, window) - mean_t ** 2
        cov = F.conv2d(p * t, window) - mean_p * mean_t
        c1, c2 = (self.K1 * self.DYNAMIC_RANGE) ** 2, (self.K2 * self.DYNAMIC_RANGE) ** 2
        ssim_map = ((2 * mean_p * mean_t + c1) / (mean_p ** 2 + mean_t ** 2 + c1)
                    * (2 * cov + c2) / (var_p + var_t + c2))
        ones = torch.ones((1, 1, self.WINDOW, self.WINDOW), dtype=p.dtype, device=p.device)
        full = F.conv2d(valid.to(p.dtype), ones) > self.WINDOW ** 2 - 0.5  # windows whose every pixel has a depth
        counts = full.flatten(1).sum(1)
        kept = counts > 0
        if not bool(kept.any()):
            return p.sum() * 0
        per_image = (ssim_map * full).flatten(1).sum(1)[kept] / counts[kept]
        return torch.clamp((1 - per_image) / 2, 0, 1).mean()

    def forward(self, prediction, truth):
        truth = truth.detach()
        valid = torch.isfinite(truth) & (truth > 0)
        count = int(valid.sum())
        if count == 0:
            return (prediction.sum() * 0,)
        t = torch.where(valid, truth, torch.zeros_like(truth))
        p = prediction
        depth_term = ((p - t).abs() * valid).sum() / count
        dy = ((p[:, :, 1:] - p[:, :, :-1]) - (t[:, :, 1:] - t[:, :, :-1])).abs() * (valid[:, :, 1:] & valid[:, :, :-1])
        dx = ((p[..., 1:] - p[..., :-1]) - (t[..., 1:] - t[..., :-1])).abs() * (valid[..., 1:] & valid[..., :-1])
        gradient_term = (dy.sum() + dx.sum()) / count
        return (self.THETA * depth_term + gradient_term + self._ssim_term(p, t, valid),)
