"""Depth metrics, vectorised over a batch: the thesis's ten (docs/specification.md section 4) and the standard NYU set.

Every function takes predictions and ground truth of shape (N, H, W) (or (H, W) for one image) in meters
and returns {metric name: float64 array (N,)} with one value per image; average over images for a
snapshot's figure, as the original did.

The thesis's ten follow the original's arithmetic: no mask; depths are clamped below at m = 1/255 m where
the original clamped them (so GT zeros count, as 1/255 m); the threshold ratios are computed in the
inputs' dtype (float32 in the evaluator, like the original) so that pixel counts agree exactly; sums and
means are in float64. The standard metrics use only GT pixels in [1e-3, 10] m and clip predictions to
that range.
"""
import numpy as np

from .constants import (LOG_DEPTH_SCALE, METRIC_FLOOR, STANDARD_MAX_DEPTH_M, STANDARD_METRICS,
                        STANDARD_MIN_DEPTH_M, THESIS_METRICS, THRESHOLDS)


_LN10 = np.log(10.0)


def _flat(array):
    """(N, H, W) or (H, W) -> (N, H*W)."""
    array = np.asarray(array)
    return array.reshape(1, -1) if array.ndim == 2 else array.reshape(array.shape[0], -1)


def _work(output, gt):
    """Both maps flattened, in their common float type: float32 maps (the evaluator's, as the original's)
    are processed in float32 element by element, with every sum accumulated in float64. `gt` may be a
    GroundTruth, whose shared terms are kept when its type is the common one."""
    o = _flat(output)
    truth = gt if isinstance(gt, GroundTruth) else GroundTruth(gt)
    dtype = np.result_type(o.dtype, truth.g.dtype, np.float32)
    return o.astype(dtype, copy=False), truth.in_type(dtype)


def _mean(values):
    return np.mean(values, axis=1, dtype=np.float64)


class GroundTruth:
    """A GT map (N, H, W) or (H, W) in meters with the terms that every prediction's metrics share, each worked
    out once on first use: scoring several predictions against one GT (the evaluator's raw and MVN-fitted
    maps, each with the ten and the standard metrics) repeats none of its logarithms or masks. Pass it where
    the functions below take `gt_m`; the results are those of the plain array."""

    def __init__(self, gt_m):
        g = _flat(gt_m)
        self.g = g.astype(np.result_type(g.dtype, np.float32), copy=False)
        self._terms = {}

    def in_type(self, dtype):
        """This GT in `dtype` (itself when it is already), kept: its terms are shared there too."""
        if self.g.dtype == dtype:
            return self
        return self._term(("in_type", np.dtype(dtype)), lambda: GroundTruth(self.g.astype(dtype)))

    def _term(self, name, make):
        if name not in self._terms:
            term = make()
            for array in term if isinstance(term, tuple) else (term,):
                if isinstance(array, np.ndarray):
                    array.flags.writeable = False  # shared by every call: none may change it in place
            self._terms[name] = term
        return self._terms[name]

    # the ten metrics' terms: g' = max(g, m), ln g', ln max(g' / 10, m) + ln 10, g normalised
    @property
    def floored(self):
        return self._term("floored", lambda: np.maximum(self.g, self.g.dtype.type(METRIC_FLOOR)))

    @property
    def log_floored(self):
        return self._term("log_floored", lambda: np.log(self.floored))

    @property
    def log_tenth(self):
        return self._term("log_tenth", lambda: np.maximum(self.log_floored, _log_tenth_floor(self.g.dtype)))

    @property
    def normalised(self):
        return self._term("normalised", lambda: _normalised(self.g))

    # the standard metrics' terms: the valid pixels, and g with the others set to 1 (and its logarithm)
    def valid(self, min_depth, max_depth):
        def make():
            with np.errstate(invalid="ignore"):
                valid = np.isfinite(self.g) & (self.g >= min_depth) & (self.g <= max_depth)
            kept = np.where(valid, self.g, self.g.dtype.type(1))
            count = np.count_nonzero(valid, axis=1)
            return valid, count.astype(np.float64), self.g.shape[1] - count, kept, np.log(kept)
        return self._term(("valid", min_depth, max_depth), make)


def _log_tenth_floor(dtype):
    return dtype.type(np.log(10.0 * METRIC_FLOOR))


def log_depth(depth_tenth_m):
    """L(d) = 0.179581 ln(max(d, 1/255)) + 1 on depth in meters / 10 (the original's LogDepth)."""
    return LOG_DEPTH_SCALE * np.log(np.maximum(depth_tenth_m, METRIC_FLOOR)) + 1


def thesis_metrics(output_m, gt_m):
    """The ten metrics of docs/specification.md section 4 per image: {name: (N,)} in THESIS_METRICS order.

    o = output, g = GT (meters), m = 1/255:
    AbsRelDiff mean(|o - g'| / g') and SqrRelDiff mean((o - g')^2 / g') with g' = max(g, m) (the original used
    the clamped GT in the difference too); RMSE sqrt(mean((o - g)^2));
    RMSELog sqrt(mean(D^2)) and SIMSE mean(D^2) - (sum D)^2 / n^2 with D = 10 L(o / 10) - 10 L(g / 10);
    Log10 mean(|log10 max(o, m) - log10 max(g, m)|); MVN the RMSE of the two maps normalised to zero mean
    and unit (population) std; Threshold t the fraction of pixels with max(o'/g', g'/o') < t,
    o' = max(o, m), g' = max(g, m).
    """
    o, truth = _work(output_m, gt_m)
    n = o.shape[1]
    g_floor = truth.floored
    # two maps of scratch, reused from term to term
    work, scratch = o - truth.g, np.empty_like(o)
    result = {"RMSE": np.sqrt(_mean(np.square(work, out=work)))}
    np.subtract(o, g_floor, out=work)                                          # o - g'
    result["AbsRelDiff"] = _mean(np.divide(np.abs(work, out=scratch), g_floor, out=scratch))
    result["SqrRelDiff"] = _mean(np.divide(np.square(work, out=scratch), g_floor, out=scratch))
    # One logarithm per map: ln max(x, m) serves Log10, and since ln is monotonic,
    # ln max(x / 10, m) = max(ln max(x, m), ln 10m) - ln 10 serves D (the ln 10 cancels in the difference).
    o_floor = np.maximum(o, o.dtype.type(METRIC_FLOOR))
    ln_o = np.log(o_floor)
    np.subtract(ln_o, truth.log_floored, out=work)
    result["Log10"] = _mean(np.abs(work, out=scratch)) / _LN10
    log_diff = np.maximum(ln_o, _log_tenth_floor(o.dtype), out=ln_o)
    log_diff -= truth.log_tenth
    log_diff *= o.dtype.type(10.0 * LOG_DEPTH_SCALE)
    mean_square_log = _mean(np.square(log_diff, out=scratch))
    result["RMSELog"] = np.sqrt(mean_square_log)
    total = np.sum(log_diff, axis=1, dtype=np.float64)
    result["SIMSE"] = mean_square_log - total * total / float(n * n)
    result["MVN"] = _mvn_distance(_normalised(o), truth.normalised)
    # The ratios in the inputs' own precision (float32 in the evaluator), as the original computed them.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(np.divide(o_floor, g_floor, out=work), np.divide(g_floor, o_floor, out=scratch), out=work)
    for name, threshold in zip(THESIS_METRICS[7:], THRESHOLDS):
        result[name] = np.count_nonzero(ratio < threshold, axis=1) / float(n)
    return {name: result[name] for name in THESIS_METRICS}


def rmse(output, gt):
    """sqrt(mean((o - g)^2)) per image."""
    o, truth = _work(output, gt)
    diff = o - truth.g
    return np.sqrt(_mean(diff * diff))


def mvn_error(output, gt):
    """RMSE between the two maps after each is normalised to zero mean and unit population std, per image
    (the original's MVNError; a constant map gives NaN, as its division by a zero std did)."""
    o, truth = _work(output, gt)
    return _mvn_distance(_normalised(o), truth.normalised)


def _normalised(x):
    mean = _mean(x)[:, None]
    centred = x - mean.astype(x.dtype)
    std = np.sqrt(_mean(centred * centred))[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        centred /= std.astype(x.dtype)
    return centred


def _mvn_distance(o_normalised, g_normalised):
    with np.errstate(invalid="ignore"):
        diff = np.subtract(o_normalised, g_normalised, out=o_normalised)
        return np.sqrt(_mean(np.square(diff, out=diff)))


def gradient_metrics(output, gt):
    """test_grad's two metrics per map: {"RMSE": (N,), "MVN": (N,)} (docs/specification.md section 4)."""
    truth = GroundTruth(gt)
    return {"RMSE": rmse(output, truth), "MVN": mvn_error(output, truth)}


def standard_metrics(output_m, gt_m, min_depth=STANDARD_MIN_DEPTH_M, max_depth=STANDARD_MAX_DEPTH_M):
    """The standard NYU metrics per image over valid GT pixels (min_depth <= g <= max_depth, finite), with
    predictions clipped to [min_depth, max_depth]; p = prediction, g = GT, e = ln p - ln g:
    abs_rel mean(|p - g| / g); sq_rel mean((p - g)^2 / g); rmse sqrt(mean((p - g)^2));
    rmse_log sqrt(mean(e^2)); log10 mean(|log10 p - log10 g|); silog 100 sqrt(mean(e^2) - mean(e)^2);
    delta_k the fraction with max(p/g, g/p) < 1.25^k. An image without valid pixels gives NaN."""
    p, truth = _work(output_m, gt_m)
    valid, count, invalid, g, ln_g = truth.valid(min_depth, max_depth)
    # masked pixels become p = g = 1: zero error in every term, and a ratio of 1, under every threshold
    p = np.clip(p, g.dtype.type(min_depth), g.dtype.type(max_depth))
    if invalid.any():
        np.copyto(p, g.dtype.type(1), where=~valid)

    def mean(values):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sum(values, axis=1, dtype=np.float64) / count

    diff = p - g
    log_error = np.log(p)
    log_error -= ln_g
    ratio = np.maximum(p / g, g / p)
    mean_log, mean_square_log = mean(log_error), mean(log_error * log_error)
    square = diff * diff
    result = {
        "abs_rel": mean(np.abs(diff) / g),
        "sq_rel": mean(square / g),
        "rmse": np.sqrt(mean(square)),
        "rmse_log": np.sqrt(mean_square_log),
        "log10": mean(np.abs(log_error, out=log_error)) / _LN10,
        "silog": 100.0 * np.sqrt(np.maximum(mean_square_log - mean_log * mean_log, 0.0)),
    }
    for k, threshold in enumerate(THRESHOLDS, start=1):
        with np.errstate(invalid="ignore", divide="ignore"):
            result[f"delta{k}"] = (np.count_nonzero(ratio < threshold, axis=1) - invalid) / count
    return {name: result[name] for name in STANDARD_METRICS}


def mvn_fit(output, gt):
    """The "oracle" view of one image: output normalised to zero mean and unit std, then given the GT's
    std and mean, in the original's float32 arithmetic (numpy mean/std of the whole map). A constant
    output (std 0, where the original wrote NaN) becomes the GT's mean."""
    output = np.array(output, dtype=np.float32)
    gt = np.asarray(gt, dtype=np.float32)
    output -= output.mean()
    std = output.std()  # of the centred map, as the original; 0 also where float32 rounds a tiny spread away
    if not std > 0:
        return np.full(output.shape, gt.mean(), dtype=np.float32)
    output /= std
    output *= gt.std()
    output += gt.mean()
    return output


def rank(values, higher_is_better):
    """The original's TOP-N order of {snapshot: value}: ascending (stable in the given order), reversed
    where higher is better; NaN values go last either way. Returns [(snapshot, value)]."""
    items = list(values.items())
    finite = [item for item in items if not np.isnan(item[1])]
    missing = [item for item in items if np.isnan(item[1])]
    ordered = sorted(finite, key=lambda item: item[1])
    if higher_is_better:
        ordered.reverse()
    return ordered + missing


def format_top(title, ranked, count=10):
    """The original's printout: two blank lines, "TOP n for <title>", "i. <snapshot>: <value>", two blank
    lines."""
    length = min(count, len(ranked))
    lines = ["", "", f"TOP {length} for {title}"]
    lines += [f"{i}. {name}: {float(value)!r}" for i, (name, value) in enumerate(ranked[:length])]
    return "\n".join(lines + ["", ""])
