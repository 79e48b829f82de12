"""The convolutions' memory layout chosen layer by layer (eigen_depth.layout): the choice follows hand-set
layer times (a clock that only the layers move), with or without Winograd's algorithm among the candidates, a
net in mixed layouts gives OpenCV's Caffe numbers, and the loader and test_depth keep or tune the layouts as
their options say."""
import os

import numpy as np
import pytest
import torch

from eigen_depth import layout
from eigen_depth.caffe import parse_text, schema
from eigen_depth.net import CaffeNet

DEPLOY = """name: "layouts"
layer { name: "x" type: "Input" top: "X" input_param { shape { dim: 2 dim: 3 dim: 23 dim: 29 } } }
layer { name: "c1" type: "Convolution" bottom: "X" top: "c1"
        convolution_param { num_output: 8 kernel_size: 5 stride: 2 } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "p1" type: "Pooling" bottom: "c1" top: "p1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "c2" type: "Convolution" bottom: "p1" top: "c2"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 group: 2 } }
layer { name: "r2" type: "ReLU" bottom: "c2" top: "c2" }
layer { name: "c3" type: "Convolution" bottom: "c2" top: "c3" convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "up" type: "Deconvolution" bottom: "c3" top: "up"
        convolution_param { num_output: 4 kernel_size: 4 stride: 2 pad: 1 group: 4 } }
layer { name: "c4" type: "Convolution" bottom: "up" top: "depth" convolution_param { num_output: 1 kernel_size: 1 } }
"""
CONVOLUTIONS = ["c1", "c2", "c3", "up", "c4"]


def make_net():
    from eigen_depth.testing import random_weights
    return random_weights(CaffeNet(parse_text(schema.NetParameter, DEPLOY), phase="TEST"), seed=3).eval()


def inputs(batch=2):
    return np.random.default_rng(4).uniform(-100, 100, (batch, 3, 23, 29)).astype(np.float32)


def layouts_of(net):
    """{convolution: layout} as its weights, the layout it puts its input in and its Winograd flag say."""
    found = {}
    for layer in layout.convolutions(net):
        assert layer.blobs[0].is_contiguous(memory_format=layer.memory_format)
        found[layer.name] = "nhwc" if layer.memory_format == torch.channels_last else "nchw"
        if getattr(layer, "winograd", False):
            assert found[layer.name] == "nchw"
            found[layer.name] = "winograd"
    return found


class CostClock:
    """A clock that only layers move: each layer's forward takes cost[(layer, layout of the net's last
    convolution to run)] seconds, the layout a segment runs in, and a convolution in another layout than the
    one before it `switch` more (converting its input). Added as the layer ends, before the tuner reads the
    clock: these hooks come first."""

    def __init__(self, net, cost, switch=0.0):
        self.now, self.current = 0.0, None

        def tick(layer, inputs, outputs):
            if layer.name in CONVOLUTIONS:
                previous = None if layer.name == CONVOLUTIONS[0] else self.current
                self.current = "nhwc" if layer.memory_format == torch.channels_last else "nchw"
                self.current = "winograd" if getattr(layer, "winograd", False) else self.current
                self.now += switch if previous not in (None, self.current) else 0.0
            self.now += cost.get((layer.name, self.current), 0.0)
        for layer in net.layers:
            layer.register_forward_hook(tick)

    def __call__(self):
        return self.now


# c1 alone is faster in NCHW but its pooling is much slower there: its segment is faster in NHWC (6 against 7);
# c2 with its ReLU is faster in NCHW (3.5 against 7); c3, the deconvolution and c4 cost the same in both.
# Whole runs: all-NHWC 14, all-NCHW 11.5, mixed 10.5 + two switches (c1 -> c2 -> c3).
COST = {("c1", "nhwc"): 5.0, ("c1", "nchw"): 4.0, ("p1", "nhwc"): 1.0, ("p1", "nchw"): 3.0,
        ("c2", "nhwc"): 6.0, ("c2", "nchw"): 2.0, ("r2", "nhwc"): 1.0, ("r2", "nchw"): 1.5,
        ("c3", "nhwc"): 1.0, ("c3", "nchw"): 1.0}
MIXED = {"c1": "nhwc", "c2": "nchw", "c3": "nhwc", "up": "nhwc", "c4": "nhwc"}


def layouts_seen(net, tuner, calls):
    """The layouts after each of `calls` forwards of one batch through the tuner."""
    x = torch.from_numpy(inputs())
    seen = []
    with torch.no_grad():
        for _ in range(calls):
            tuner.run(lambda: net({"X": x}), 2)
            seen.append(layouts_of(net))
    return seen


def tune(net, clock, batches, winograd=False):
    tuner = layout.LayoutTuner(net, clock=clock, winograd=winograd)
    with torch.no_grad():
        for batch in batches:
            tuner.run(lambda: net({"X": torch.from_numpy(inputs(batch))}), batch)
    return tuner


def test_choose_keeps_the_faster_layout_of_each_segment_and_the_first_on_a_tie():
    seconds = {"nhwc": {"a": 2.0, "b": 1.0, "c": 3.0}, "nchw": {"a": 1.0, "b": 1.5, "c": 3.0}}
    assert layout.choose(seconds) == {"a": "nchw", "b": "nhwc", "c": "nhwc"}


def test_the_tuner_times_both_layouts_then_the_mixed_net_and_keeps_the_mixed_one_when_it_is_fastest():
    net = make_net()
    tuner = layout.LayoutTuner(net, clock=CostClock(net, COST, switch=0.25), winograd=False)
    assert set(layouts_of(net).values()) == {"nhwc"}
    seen = layouts_seen(net, tuner, 5)
    assert [set(s.values()) for s in seen[:4]] == [{"nhwc"}, {"nchw"}, {"nhwc"}, {"nchw"}]
    assert seen[4] == MIXED
    assert tuner.segments == {"nhwc": {"c1": 6.0, "c2": 7.0, "c3": 1.0, "up": 0.0, "c4": 0.0},
                              "nchw": {"c1": 7.0, "c2": 3.5, "c3": 1.0, "up": 0.0, "c4": 0.0}}
    assert tuner.totals == {"nhwc": 14.0, "nchw": 11.5, "mixed": 11.0}
    assert tuner.choice == MIXED and layouts_of(net) == MIXED


def test_a_mixed_net_whose_conversions_cost_more_than_they_save_is_not_kept():
    net = make_net()
    tuner = tune(net, CostClock(net, COST, switch=2.0), [2] * 6)
    assert tuner.totals == {"nhwc": 14.0, "nchw": 11.5, "mixed": 14.5}
    assert tuner.choice == dict.fromkeys(CONVOLUTIONS, "nchw") and layouts_of(net) == tuner.choice


def test_a_smaller_batch_ends_the_tuning_with_the_best_so_far():
    net = make_net()
    ticks = []
    tuner = layout.LayoutTuner(net, clock=lambda: ticks.append(1) or 0.0, winograd=False)
    with torch.no_grad():
        tuner.run(lambda: net({"X": torch.from_numpy(inputs(2))}), 2)
        timed = len(ticks)
        tuner.run(lambda: net({"X": torch.from_numpy(inputs(1))}), 1)
    assert len(ticks) == timed           # the smaller batch is not timed
    assert tuner.choice == dict.fromkeys(CONVOLUTIONS, "nhwc") and layouts_of(net) == tuner.choice
    net = make_net()
    tuner = tune(net, CostClock(net, COST), [2, 2, 1])
    assert tuner.choice == dict.fromkeys(CONVOLUTIONS, "nchw") and layouts_of(net) == tuner.choice


# Winograd's algorithm computes c2 (3x3, pad 1, group 2) and c3 (3x3): c2 and its ReLU take 1.5 there, c3 0.5.
# Whole runs: all-NHWC 14, all-NCHW 11.5, all-Winograd (c1, up and c4 in NCHW) 7 + 1.5 + 0.5 = 9; mixed: c1's
# segment in NHWC (6), c2 and c3 by Winograd, the rest in NHWC (the first layout wins a tie): 8.
COST_WINOGRAD = {**COST, ("c2", "winograd"): 1.0, ("r2", "winograd"): 0.5, ("c3", "winograd"): 0.5}
MIXED_WINOGRAD = {"c1": "nhwc", "c2": "winograd", "c3": "winograd", "up": "nhwc", "c4": "nhwc"}


def test_the_tuner_times_winograd_where_it_applies_and_keeps_it_where_it_is_fastest():
    net = make_net()
    tuner = layout.LayoutTuner(net, clock=CostClock(net, COST_WINOGRAD))
    seen = layouts_seen(net, tuner, 10)
    all_winograd = {"c1": "nchw", "c2": "winograd", "c3": "winograd", "up": "nchw", "c4": "nchw"}
    assert seen[:9] == [dict.fromkeys(CONVOLUTIONS, "nhwc"), dict.fromkeys(CONVOLUTIONS, "nchw"), all_winograd] * 3
    assert tuner.segments["winograd"] == {"c2": 1.5, "c3": 0.5}  # only the layers it computes
    assert tuner.totals == {"nhwc": 14.0, "nchw": 11.5, "winograd": 9.0, "mixed": 8.0}
    assert seen[9] == MIXED_WINOGRAD
    assert tuner.choice == MIXED_WINOGRAD and layouts_of(net) == MIXED_WINOGRAD


def test_without_winograd_the_tuner_runs_the_two_layouts_only():
    net = make_net()
    tuner = tune(net, CostClock(net, COST_WINOGRAD, switch=2.0), [2] * 6, winograd=False)
    assert set(tuner.segments) == {"nhwc", "nchw"} and tuner.choice == dict.fromkeys(CONVOLUTIONS, "nchw")
    assert not any(layer.winograd for layer in layout.convolutions(net) if hasattr(layer, "winograd"))


def test_a_net_in_mixed_layouts_gives_opencvs_numbers(tmp_path):
    import cv2
    from eigen_depth.testing import write_random_caffemodel
    prototxt, caffemodel = tmp_path / "l.prototxt", tmp_path / "l.caffemodel"
    prototxt.write_text(DEPLOY)
    net = write_random_caffemodel(str(prototxt), str(caffemodel), seed=5).eval()
    reference = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    x = inputs()
    reference.setInput(x)
    expected = reference.forward()
    for mixed in ({"c1": "nchw", "c2": "nhwc", "c3": "nchw", "up": "nhwc", "c4": "nchw"},
                  {"c1": "nhwc", "c2": "nchw", "c3": "nhwc", "up": "nchw", "c4": "nhwc"}, "nhwc", "nchw",
                  MIXED_WINOGRAD, "winograd"):
        layout.apply(net, mixed)
        with torch.no_grad():
            got = net({"X": torch.from_numpy(x.copy())})["depth"].numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def snapshot(tmp_path, name="s_iter_1"):
    from eigen_depth.inference import Snapshot
    from eigen_depth.testing import write_random_caffemodel
    prototxt, caffemodel = tmp_path / f"{name}.prototxt", tmp_path / f"{name}.caffemodel"
    prototxt.write_text(DEPLOY)
    write_random_caffemodel(str(prototxt), str(caffemodel), seed=6)
    return Snapshot(name, str(caffemodel), str(prototxt))


@pytest.mark.parametrize("name", ["nhwc", "nchw", "winograd"])
def test_a_fixed_layout_is_applied_and_not_tuned(tmp_path, name):
    from eigen_depth.inference import load_model
    model = load_model(snapshot(tmp_path), torch.device("cpu"), layout=name)
    assert model.tuner is None
    for _ in range(3):
        model.predict(inputs())
    expected = {c: name for c in CONVOLUTIONS}
    if name == "winograd":  # where it cannot compute: NCHW
        expected.update(c1="nchw", up="nchw", c4="nchw")
    assert layouts_of(model.net) == expected


def test_the_loader_keeps_the_choice_for_the_next_snapshot_of_the_same_net(tmp_path):
    from eigen_depth.inference import ModelLoader
    loader = ModelLoader()
    first = loader(snapshot(tmp_path, "s_iter_1"), torch.device("cpu"))
    for _ in range(10):
        first.predict(inputs())
    chosen = dict(first.tuner.choice)
    second = loader(snapshot(tmp_path, "s_iter_2"), torch.device("cpu"))
    assert second.net is first.net and second.tuner is first.tuner
    assert layouts_of(second.net) == chosen


def test_the_tuning_goes_on_over_snapshots_of_one_batch_each(tmp_path):
    from eigen_depth.inference import ModelLoader
    loader = ModelLoader()
    tuner = None
    for index in range(1, 11):
        model = loader(snapshot(tmp_path, f"s_iter_{index}"), torch.device("cpu"))
        assert tuner is None or model.tuner is tuner
        tuner = model.tuner
        model.predict(inputs())
    assert tuner.TRIALS == layout.LayoutTuner.TRIALS_WINOGRAD  # c2 and c3 are Winograd's: nine trials
    assert tuner.calls == 9 and tuner.choice is not None and layouts_of(model.net) == tuner.choice


def test_an_unknown_layout_is_refused(tmp_path):
    from eigen_depth.inference import load_model
    with pytest.raises(ValueError, match="layout"):
        load_model(snapshot(tmp_path), torch.device("cpu"), layout="nhcw")


@pytest.mark.parametrize("option", [[], ["--layout", "nchw"], ["--no-winograd"]])
def test_test_depth_passes_its_layout_to_the_loader(tmp_path, monkeypatch, option):
    import cv2

    from eigen_depth import cli, inference
    snaps, images = tmp_path / "snaps", tmp_path / "in"
    os.makedirs(images)
    os.makedirs(snaps)
    snapshot(snaps)
    for i in range(3):
        cv2.imwrite(str(images / f"{i:05d}_colors.png"), np.full((30, 40, 3), 90 + i, np.uint8))
        cv2.imwrite(str(images / f"{i:05d}_depth.png"), np.full((30, 40), 100, np.uint8))
    seen = []
    original = inference.load_model
    monkeypatch.setattr(inference, "load_model",
                        lambda *a, **k: seen.append((k["layout"], k["winograd"])) or original(*a, **k))
    argv = ["test-depth", images, images, tmp_path / "out", snaps, "--no-progress", "--batch-size", "1"]
    assert cli.main([str(arg) for arg in argv] + option) == 0
    assert seen == [(option[1] if option[:1] == ["--layout"] else "auto", option != ["--no-winograd"])]


def test_winograd_asked_for_and_turned_off_is_one_line(tmp_path, capsys):
    from eigen_depth import cli
    snaps, images = tmp_path / "snaps", tmp_path / "in"
    os.makedirs(images)
    os.makedirs(snaps)
    snapshot(snaps)
    cv2 = pytest.importorskip("cv2")
    cv2.imwrite(str(images / "00000_colors.png"), np.full((30, 40, 3), 90, np.uint8))
    cv2.imwrite(str(images / "00000_depth.png"), np.full((30, 40), 100, np.uint8))
    argv = ["test-depth", images, images, tmp_path / "out", snaps, "--no-progress", "--layout", "winograd",
            "--no-winograd"]
    assert cli.main([str(arg) for arg in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--no-winograd" in err and "--layout winograd" in err


def test_a_loaded_snapshot_holds_its_weights_in_aligned_memory_of_its_own(tmp_path):
    from eigen_depth.inference import load_model
    model = load_model(snapshot(tmp_path), torch.device("cpu"), layout="nchw")
    for layer in model.net.layers:
        for blob in layer.blobs:
            assert blob.data_ptr() % 64 == 0, layer.name


def test_the_tuner_transforms_each_winograd_filter_once_per_snapshot(tmp_path, monkeypatch):
    """Its trials switch layouts (the weights change memory format, not values): c2 and c3 are transformed at
    the first all-Winograd trial and reused to the end; the next snapshot's weights are transformed anew."""
    from eigen_depth import winograd
    from eigen_depth.inference import ModelLoader
    made = []
    original = winograd.Filters.__init__
    monkeypatch.setattr(winograd.Filters, "__init__", lambda self, weight, groups: made.append(tuple(weight.shape))
                        or original(self, weight, groups))
    loader = ModelLoader()
    model = loader(snapshot(tmp_path, "s_iter_1"), torch.device("cpu"))
    for _ in range(10):
        model.predict(inputs())
    assert model.tuner.choice is not None and sorted(made) == [(4, 6, 3, 3), (6, 4, 3, 3)]
    assert model.tuner.filters == {}
    made.clear()
    second = loader(snapshot(tmp_path, "s_iter_2"), torch.device("cpu"))
    second.predict(inputs())
    expected = [shape for name, shape in (("c2", (6, 4, 3, 3)), ("c3", (4, 6, 3, 3)))
                if second.tuner.choice[name] == "winograd"]
    assert sorted(made) == sorted(expected)
