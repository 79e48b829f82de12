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
    are processed in float32 element by element, with every sum accumulated in float64."""
    o, g = _flat(output), _flat(gt)
    dtype = np.result_type(o.dtype, g.dtype, np.float32)
    return o.astype(dtype, copy=False), g.astype(dtype, copy=False)


def _mean(values):
    return np.mean(values, axis=1, dtype=np.float64)


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
    o, g = _work(output_m, gt_m)
    n = o.shape[1]
    floor = o.dtype.type(METRIC_FLOOR)
    diff = o - g
    square = diff * diff
    g_floor = np.maximum(g, floor)
    result = {}
    clamped_diff = o - g_floor
    result["AbsRelDiff"] = _mean(np.abs(clamped_diff) / g_floor)
    result["SqrRelDiff"] = _mean(clamped_diff * clamped_diff / g_floor)
    result["RMSE"] = np.sqrt(_mean(square))
    # One logarithm per map: ln max(x, m) serves Log10, and since ln is monotonic,
    # ln max(x / 10, m) = max(ln max(x, m), ln 10m) - ln 10 serves D (the ln 10 cancels in the difference).
    o_floor = np.maximum(o, floor)
    ln_o, ln_g = np.log(o_floor), np.log(g_floor)
    result["Log10"] = _mean(np.abs(ln_o - ln_g)) / _LN10
    floor_10 = o.dtype.type(np.log(10.0 * METRIC_FLOOR))
    log_diff = np.maximum(ln_o, floor_10) - np.maximum(ln_g, floor_10)
    log_diff *= o.dtype.type(10.0 * LOG_DEPTH_SCALE)
    mean_square_log = _mean(log_diff * log_diff)
    result["RMSELog"] = np.sqrt(mean_square_log)
    total = np.sum(log_diff, axis=1, dtype=np.float64)
    result["SIMSE"] = mean_square_log - total * total / float(n * n)
    result["MVN"] = _mvn_rows(o, g)
    # The ratios in the inputs' own precision (float32 in the evaluator), as the original computed them.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(o_floor / g_floor, g_floor / o_floor)
    for name, threshold in zip(THESIS_METRICS[7:], THRESHOLDS):
        result[name] = np.count_nonzero(ratio < threshold, axis=1) / float(n)
    return {name: result[name] for name in THESIS_METRICS}


def rmse(output, gt):
    """sqrt(mean((o - g)^2)) per image."""
    o, g = _work(output, gt)
    diff = o - g
    return np.sqrt(_mean(diff * diff))


def mvn_error(output, gt):
    """RMSE between the two maps after each is normalised to zero mean and unit population std, per image
    (the original's MVNError; a constant map gives NaN, as its division by a zero std did)."""
    return _mvn_rows(*_work(output, gt))


def _mvn_rows(o, g):
    def normalised(x):
        mean = _mean(x)[:, None]
        centred = x - mean.astype(x.dtype)
        std = np.sqrt(_mean(centred * centred))[:, None]
        return centred / std.astype(x.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = normalised(o) - normalised(g)
        return np.sqrt(_mean(diff * diff))


def gradient_metrics(output, gt):
    """test_grad's two metrics per map: {"RMSE": (N,), "MVN": (N,)} (docs/specification.md section 4)."""
    return {"RMSE": rmse(output, gt), "MVN": mvn_error(output, gt)}


def standard_metrics(output_m, gt_m, min_depth=STANDARD_MIN_DEPTH_M, max_depth=STANDARD_MAX_DEPTH_M):
    """The standard NYU metrics per image over valid GT pixels (min_depth <= g <= max_depth, finite), with
    predictions clipped to [min_depth, max_depth]; p = prediction, g = GT, e = ln p - ln g:
    abs_rel mean(|p - g| / g); sq_rel mean((p - g)^2 / g); rmse sqrt(mean((p - g)^2));
    rmse_log sqrt(mean(e^2)); log10 mean(|log10 p - log10 g|); silog 100 sqrt(mean(e^2) - mean(e)^2);
    delta_k the fraction with max(p/g, g/p) < 1.25^k. An image without valid pixels gives NaN."""
    p, g = _work(output_m, gt_m)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(g) & (g >= min_depth) & (g <= max_depth)
    count = valid.sum(axis=1).astype(np.float64)
    one = g.dtype.type(1)
    # masked pixels become p = g = 1: zero error in every term but the delta counts, which are masked
    g = np.where(valid, g, one)
    p = np.where(valid, np.clip(p, g.dtype.type(min_depth), g.dtype.type(max_depth)), one)

    def mean(values):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sum(values, axis=1, dtype=np.float64) / count

    diff = p - g
    log_error = np.log(p) - np.log(g)
    ratio = np.maximum(p / g, g / p)
    mean_log, mean_square_log = mean(log_error), mean(log_error * log_error)
    result = {
        "abs_rel": mean(np.abs(diff) / g),
        "sq_rel": mean(diff * diff / g),
        "rmse": np.sqrt(mean(diff * diff)),
        "rmse_log": np.sqrt(mean_square_log),
        "log10": mean(np.abs(log_error)) / _LN10,
        "silog": 100.0 * np.sqrt(np.maximum(mean_square_log - mean_log * mean_log, 0.0)),
    }
    for k, threshold in enumerate(THRESHOLDS, start=1):
        result[f"delta{k}"] = mean((ratio < threshold) & valid)
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
