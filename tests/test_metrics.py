"""The metrics of eigen_depth.metrics against values worked out by hand on tiny arrays (docs/specification.md section 4
for the thesis's ten; the usual NYU definitions for the standard ones)."""
import math

import numpy as np
import pytest

from eigen_depth import metrics

K = 10 * 0.179581          # D = 10 L(o/10) - 10 L(g/10) = K ln(o/g) when nothing is clamped
M = 1 / 255

# o against g = 1, 2, 4, 5 m: errors .1, .8, -.5, 5; ratios 1.1, 1.4, 8/7, 2.
G = np.array([[1.0, 2.0], [4.0, 5.0]])
O = np.array([[1.1, 2.8], [3.5, 10.0]])
LN = [math.log(1.1), math.log(1.4), math.log(3.5 / 4), math.log(2.0)]


def single(values):
    return {name: float(v[0]) for name, v in values.items()}


def test_the_ten_metrics_on_a_2x2_map():
    got = single(metrics.thesis_metrics(O, G))
    assert got["AbsRelDiff"] == pytest.approx((0.1 / 1 + 0.8 / 2 + 0.5 / 4 + 5 / 5) / 4, rel=1e-12)   # 0.40625
    assert got["SqrRelDiff"] == pytest.approx((0.01 / 1 + 0.64 / 2 + 0.25 / 4 + 25 / 5) / 4, rel=1e-12)  # 1.348125
    assert got["RMSE"] == pytest.approx(math.sqrt((0.01 + 0.64 + 0.25 + 25) / 4), rel=1e-12)
    mean_square = sum(v * v for v in LN) / 4
    mean = sum(LN) / 4
    assert got["RMSELog"] == pytest.approx(K * math.sqrt(mean_square), rel=1e-12)
    assert got["SIMSE"] == pytest.approx(K * K * (mean_square - mean * mean), rel=1e-10)
    assert got["Log10"] == pytest.approx(sum(abs(v) for v in LN) / 4 / math.log(10), rel=1e-12)
    # MVN: o and g each normalised by their own mean and population std.
    o_n = [(v - 4.35) / math.sqrt(sum((w - 4.35) ** 2 for w in [1.1, 2.8, 3.5, 10.0]) / 4) for v in [1.1, 2.8, 3.5, 10.0]]
    g_n = [(v - 3.0) / math.sqrt(sum((w - 3.0) ** 2 for w in [1, 2, 4, 5]) / 4) for v in [1, 2, 4, 5]]
    assert got["MVN"] == pytest.approx(math.sqrt(sum((a - b) ** 2 for a, b in zip(o_n, g_n)) / 4), rel=1e-12)
    # ratios 1.1, 1.4, 1.142857, 2.0 against 1.25, 1.5625, 1.953125
    assert (got["Threshold 1.25"], got["Threshold 1.25^2"], got["Threshold 1.25^3"]) == (0.5, 0.75, 0.75)


def test_the_ten_metrics_clamp_zeros_at_one_255th_as_the_original():
    # g = 0 and 1 m, o = 0.5 and 0 m: g' = 1/255 and 1, o' = 0.5 and 1/255 (meters); AbsRelDiff and SqrRelDiff
    # take the clamped g' in the difference too: |0.5 - 1/255| / (1/255) = 126.5;
    # for D the clamp is on depth/10: o/10 = .05 and 1/255, g/10 = 1/255 and .1.
    got = single(metrics.thesis_metrics(np.array([[0.5, 0.0]]), np.array([[0.0, 1.0]])))
    assert got["AbsRelDiff"] == pytest.approx((126.5 + 1.0) / 2, rel=1e-12)                          # 63.75
    assert got["SqrRelDiff"] == pytest.approx(((0.5 - 1 / 255) ** 2 * 255 + 1.0) / 2, rel=1e-12)
    assert got["RMSE"] == pytest.approx(math.sqrt((0.25 + 1.0) / 2), rel=1e-12)
    d = [K * math.log(0.05 * 255), K * math.log((1 / 255) / 0.1)]
    assert got["RMSELog"] == pytest.approx(math.sqrt((d[0] ** 2 + d[1] ** 2) / 2), rel=1e-12)
    assert got["SIMSE"] == pytest.approx((d[0] ** 2 + d[1] ** 2) / 2 - (d[0] + d[1]) ** 2 / 4, rel=1e-12)
    assert got["Log10"] == pytest.approx((math.log10(127.5) + math.log10(255)) / 2, rel=1e-12)
    assert got["Threshold 1.25^3"] == 0.0      # ratios 127.5 and 255


def test_a_constant_map_gives_a_nan_mvn_error_like_the_original_division_by_zero():
    got = single(metrics.thesis_metrics(np.full((2, 2), 3.0), G))
    assert math.isnan(got["MVN"])
    assert got["RMSE"] == pytest.approx(math.sqrt((4 + 1 + 1 + 4) / 4), rel=1e-12)


def test_metrics_are_per_image_over_a_batch():
    batch_o, batch_g = np.stack([O, G]), np.stack([G, G])
    got = metrics.thesis_metrics(batch_o, batch_g)
    assert got["RMSE"].shape == (2,)
    assert got["RMSE"][0] == pytest.approx(math.sqrt(6.475), rel=1e-12)
    assert got["RMSE"][1] == 0.0 and got["Threshold 1.25"][1] == 1.0 and got["MVN"][1] == pytest.approx(0.0, abs=1e-12)


def test_thresholds_count_in_float32_like_the_original():
    # 1.25 * 0.8 in float32 is not exactly 1: the ratio is computed in the inputs' float32, as the original.
    o = np.array([[1.0, 1.25]], dtype=np.float32)
    g = np.array([[0.8, 1.0]], dtype=np.float32)
    ratio = np.maximum(o / g, g / o)             # float32 arithmetic
    expected = float(np.count_nonzero(ratio < 1.25)) / 2
    assert single(metrics.thesis_metrics(o, g))["Threshold 1.25"] == expected


def test_standard_metrics_use_only_valid_gt_and_clip_predictions():
    # valid: g = 1 (p 1.5) and g = 2 (p 1); invalid: 0, 20 m (> 10), NaN.
    g = np.array([[0.0, 1.0, 2.0, 20.0, np.nan]])
    p = np.array([[5.0, 1.5, 1.0, 3.0, 3.0]])
    got = single(metrics.standard_metrics(p, g))
    e = [math.log(1.5), math.log(0.5)]
    assert got["abs_rel"] == pytest.approx(0.5, rel=1e-12)
    assert got["sq_rel"] == pytest.approx((0.25 / 1 + 1 / 2) / 2, rel=1e-12)
    assert got["rmse"] == pytest.approx(math.sqrt((0.25 + 1) / 2), rel=1e-12)
    assert got["rmse_log"] == pytest.approx(math.sqrt((e[0] ** 2 + e[1] ** 2) / 2), rel=1e-12)
    assert got["log10"] == pytest.approx((math.log10(1.5) + math.log10(2)) / 2, rel=1e-12)
    assert got["silog"] == pytest.approx(100 * abs(e[0] - e[1]) / 2, rel=1e-12)
    assert (got["delta1"], got["delta2"], got["delta3"]) == (0.0, 0.5, 0.5)


def test_standard_metrics_clip_predictions_to_the_depth_range():
    got = single(metrics.standard_metrics(np.array([[20.0, 0.0]]), np.array([[5.0, 0.5]])))
    # p = 10 (clipped) against 5; p = 0.001 (clipped) against 0.5
    assert got["abs_rel"] == pytest.approx((5 / 5 + 0.499 / 0.5) / 2, rel=1e-12)


def test_standard_metrics_without_valid_pixels_are_nan():
    got = single(metrics.standard_metrics(np.ones((2, 2)), np.zeros((2, 2))))
    assert all(math.isnan(v) for v in got.values())


def test_one_ground_truth_serves_several_predictions_with_each_ones_hand_worked_values():
    # a float32 GT kept once: scored against O (float64: the work is in float64), itself, and O again from the
    # terms it kept; then the standard metrics of two predictions against a GT with invalid pixels
    truth = metrics.GroundTruth(G.astype(np.float32))
    for prediction, rmse, mvn, threshold in ((O, math.sqrt(6.475), None, 0.5), (G, 0.0, 0.0, 1.0),
                                             (O, math.sqrt(6.475), None, 0.5)):
        got = single(metrics.thesis_metrics(prediction, truth))
        assert got["RMSE"] == pytest.approx(rmse, rel=1e-12, abs=1e-12)
        assert got["Log10"] == pytest.approx(sum(abs(v) for v in LN) / 4 / math.log(10) if rmse else 0, rel=1e-12)
        assert got["Threshold 1.25"] == threshold
        if mvn is not None:
            assert got["MVN"] == pytest.approx(mvn, abs=1e-12)
    g = np.array([[0.0, 1.0, 2.0, 20.0, np.nan]])
    truth = metrics.GroundTruth(g)
    first = single(metrics.standard_metrics(np.array([[5.0, 1.5, 1.0, 3.0, 3.0]]), truth))
    assert first["abs_rel"] == pytest.approx(0.5, rel=1e-12)
    assert (first["delta1"], first["delta2"], first["delta3"]) == (0.0, 0.5, 0.5)
    second = single(metrics.standard_metrics(np.array([[0.3, 1.0, 2.4, 0.0, 7.0]]), truth))  # g = 1, 2: p = 1, 2.4
    assert second["abs_rel"] == pytest.approx(0.2 / 2, rel=1e-12)
    assert second["rmse"] == pytest.approx(math.sqrt(0.16 / 2), rel=1e-12)
    assert (second["delta1"], second["delta2"], second["delta3"]) == (1.0, 1.0, 1.0)


def test_mvn_fit_maps_the_output_onto_the_gt_mean_and_std():
    fitted = metrics.mvn_fit(np.array([1, 2, 3, 4], dtype=np.float32), np.array([2, 4, 6, 8], dtype=np.float32))
    assert fitted.dtype == np.float32
    np.testing.assert_allclose(fitted, [2, 4, 6, 8], rtol=1e-6)


def test_mvn_fit_of_a_constant_output_is_the_gt_mean():
    fitted = metrics.mvn_fit(np.full(4, 7, np.float32), np.array([1, 2, 3, 6], np.float32))
    np.testing.assert_array_equal(fitted, np.full(4, 3, np.float32))
    # a constant 320x420 map whose float32 mean is not exactly its value (numpy's std of it is 1.5e-8, not 0):
    # still constant, without a division by zero
    with np.errstate(all="raise"):
        fitted = metrics.mvn_fit(np.full((320, 420), 0.1, np.float32), np.full((320, 420), 0.5, np.float32))
    np.testing.assert_array_equal(fitted, np.full((320, 420), 0.5, np.float32))


def test_gradient_metrics_are_rmse_and_mvn_error():
    got = single(metrics.gradient_metrics(np.array([[0.0, 2.0]]), np.array([[1.0, 2.0]])))
    assert got["RMSE"] == pytest.approx(math.sqrt(0.5), rel=1e-12)
    assert got["MVN"] == pytest.approx(0.0, abs=1e-12)      # both normalise to (-1, 1)


def test_rank_orders_like_the_original_with_nan_last():
    values = {"a": 2.0, "b": 1.0, "c": float("nan"), "d": 1.0}
    assert [n for n, _ in metrics.rank(values, higher_is_better=False)] == ["b", "d", "a", "c"]
    # the original reversed the ascending list for the thresholds: ties come out reversed too
    assert [n for n, _ in metrics.rank(values, higher_is_better=True)] == ["a", "d", "b", "c"]


def test_format_top_is_the_original_printout():
    text = metrics.format_top("RMSE", [("s2", 0.5), ("s1", 0.75)])
    assert text == "\n\nTOP 2 for RMSE\n0. s2: 0.5\n1. s1: 0.75\n\n"
    assert metrics.format_top("MVN", [(f"s{i}", float(i)) for i in range(12)]).count("\n") == 2 + 1 + 10 + 1
