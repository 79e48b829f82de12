"""CaffeNet: the graph rules of Caffe's Net (phases, in-place tops, shared blobs, loss weights, which layers
need gradients), weight copying by layer name and saving, checked against hand-computed numbers and
OpenCV's reader."""
import cv2
import numpy as np
import pytest
import torch

from eigen_depth.caffe import array_to_blob, parse_text, read_caffemodel, schema, write_caffemodel
from eigen_depth.errors import LayerError, ShapeError
from eigen_depth.net import CaffeNet

TRAIN, TEST = schema.TRAIN, schema.TEST


def net_from(text, phase=TEST, **kwargs):
    return CaffeNet(parse_text(schema.NetParameter, text), phase, **kwargs)


TWO_PHASE = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 2 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "drop" type: "Dropout" bottom: "ip" top: "ip" include { phase: TRAIN } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" exclude { phase: TEST } }
layer { name: "deep" type: "ReLU" bottom: "ip" top: "deep" include { min_level: 2 } }
layer { name: "staged" type: "ReLU" bottom: "ip" top: "staged" include { stage: "extra" } }
"""


def test_phase_rules_choose_the_layers():
    assert net_from(TWO_PHASE, TRAIN).layer_names == ["x", "y", "ip", "drop", "loss"]
    assert net_from(TWO_PHASE, TEST).layer_names == ["x", "y", "ip"]


def test_level_and_stage_rules_choose_the_layers():
    assert "deep" in net_from(TWO_PHASE, TEST, level=2).layer_names
    assert "deep" not in net_from(TWO_PHASE, TEST, level=1).layer_names
    assert "staged" in net_from(TWO_PHASE, TEST, stages=("extra",)).layer_names


def test_outputs_are_blobs_no_layer_consumes():
    assert net_from(TWO_PHASE, TEST).output_names == ["y", "ip"]
    assert net_from(TWO_PHASE, TRAIN).output_names == ["loss"]


IN_PLACE = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 4 } } }
layer { name: "scale" type: "Power" bottom: "x" top: "a" power_param { scale: -2 } }
layer { name: "relu" type: "ReLU" bottom: "a" top: "a" }
layer { name: "after" type: "Power" bottom: "a" top: "b" power_param { shift: 1 } }
"""


def test_in_place_top_replaces_the_blob_for_later_layers():
    net = net_from(IN_PLACE)
    out = net({"x": np.array([[1.0, -1.0, 2.0, -3.0]], np.float32)}, keep_blobs=True)
    np.testing.assert_array_equal(out["a"].numpy(), [[0.0, 2.0, 0.0, 6.0]])
    np.testing.assert_array_equal(out["b"].numpy(), [[1.0, 3.0, 1.0, 7.0]])


LOSSES = """
layer { name: "a" type: "Input" top: "a" input_param { shape { dim: 2 dim: 2 } } }
layer { name: "b" type: "Input" top: "b" input_param { shape { dim: 2 dim: 2 } } }
layer { name: "l1" type: "EuclideanLoss" bottom: "a" bottom: "b" top: "l1" loss_weight: 0.5 }
layer { name: "l2" type: "EuclideanLoss" bottom: "a" bottom: "b" top: "l2" }
"""


def test_loss_weights_scale_each_loss_in_the_total():
    a = np.array([[1, 2], [3, 4]], np.float32)
    b = np.array([[0, 2], [3, 1]], np.float32)
    net = net_from(LOSSES, TRAIN)
    out = net({"a": a, "b": b})
    # sum of squares = 1 + 9 = 10; Euclidean = 10 / (2 * N) = 2.5
    assert out["l1"].item() == pytest.approx(2.5)
    assert net.total_loss(out).item() == pytest.approx(0.5 * 2.5 + 2.5)


SHARED_INPUT = """force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "p1" type: "Power" bottom: "x" top: "p1" power_param { scale: 3 } }
layer { name: "p2" type: "Power" bottom: "x" top: "p2" power_param { power: 2 } }
layer { name: "sum" type: "Eltwise" bottom: "p1" bottom: "p2" top: "sum" }
"""


def test_blob_read_by_two_layers_sums_their_gradients():
    net = net_from(SHARED_INPUT, TRAIN)
    x = torch.tensor([[1.0, -2.0]], requires_grad=True)
    net({"x": x})["sum"].sum().backward()
    # d/dx (3x + x^2) = 3 + 2x
    np.testing.assert_allclose(x.grad.numpy(), [[5.0, -1.0]])


FROZEN = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 2 dim: 2 } } }
layer { name: "frozen" type: "InnerProduct" bottom: "x" top: "f"
        param { lr_mult: 0 } param { lr_mult: 0 } inner_product_param { num_output: 3 } }
layer { name: "trained" type: "InnerProduct" bottom: "f" top: "t"
        param { lr_mult: 2 decay_mult: 0.5 } inner_product_param { num_output: 2 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "t" bottom: "y" top: "loss" }
"""


def test_frozen_layers_run_without_autograd():
    net = net_from(FROZEN, TRAIN)
    assert net.layer_needs_grad == [False, False, False, True, True]
    blobs = net({"x": np.ones((2, 3), np.float32), "y": np.zeros((2, 2), np.float32)}, keep_blobs=True)
    assert not blobs["f"].requires_grad and blobs["t"].requires_grad
    assert [p.requires_grad for p in net.layer_by_name("frozen").blobs] == [False, False]


def test_param_specs_give_multipliers_and_default_to_one():
    infos = {(i.layer, i.index): i for i in net_from(FROZEN, TRAIN).param_infos}
    assert (infos["frozen", 0].lr_mult, infos["frozen", 1].lr_mult) == (0.0, 0.0)
    assert (infos["trained", 0].lr_mult, infos["trained", 0].decay_mult) == (2.0, 0.5)
    assert (infos["trained", 1].lr_mult, infos["trained", 1].decay_mult) == (1.0, 1.0)


def test_euclidean_gradient_of_a_trained_layer_matches_the_formula():
    net = net_from(FROZEN, TRAIN)
    x = np.array([[1, 2, 3], [0, -1, 2]], np.float32)
    y = np.array([[1, 0], [0, 2]], np.float32)
    blobs = net({"x": x, "y": y}, keep_blobs=True)
    blobs["loss"].backward()
    f, t = blobs["f"].detach().numpy(), blobs["t"].detach().numpy()
    # loss = sum((t - y)^2) / (2N): dL/dW = (t - y)^T f / N, dL/db = sum over the batch of (t - y) / N
    weight, bias = net.layer_by_name("trained").blobs
    np.testing.assert_allclose(weight.grad.numpy(), (t - y).T @ f / 2, rtol=1e-5)
    np.testing.assert_allclose(bias.grad.numpy(), (t - y).sum(0) / 2, rtol=1e-5)


def test_propagate_down_false_stops_the_gradient_at_that_bottom():
    text = """force_backward: true
layer { name: "a" type: "Input" top: "a" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "b" type: "Input" top: "b" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "a" bottom: "b" top: "loss" propagate_down: true propagate_down: false }
"""
    net = net_from(text, TRAIN)
    a = torch.tensor([[1.0, 2.0]], requires_grad=True)
    b = torch.tensor([[0.0, 0.0]], requires_grad=True)
    net({"a": a, "b": b})["loss"].backward()
    np.testing.assert_allclose(a.grad.numpy(), [[1.0, 2.0]])  # (a - b) / N
    assert b.grad is None


def test_shared_param_names_tie_blobs():
    text = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" } inner_product_param { num_output: 2 bias_term: false } }
layer { name: "ip2" type: "InnerProduct" bottom: "a" top: "b" param { name: "w" } inner_product_param { num_output: 2 bias_term: false } }
"""
    net = net_from(text)
    assert net.layer_by_name("ip1").blobs[0] is net.layer_by_name("ip2").blobs[0]
    assert len(net.learnable_params()) == 1


SHARED = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" FIRST } inner_product_param { num_output: 2 bias_term: false } }
layer { name: "ip2" type: "InnerProduct" bottom: "a" top: "b" param { name: "w" SECOND } inner_product_param { num_output: 2 bias_term: false } }
"""


@pytest.mark.parametrize("first, second", [("lr_mult: 1", "lr_mult: 2"), ("decay_mult: 0", "decay_mult: 1")])
def test_shared_params_with_mismatched_multipliers_are_refused_as_caffe_does(first, second):
    field = first.split(":")[0]
    with pytest.raises(LayerError, match=rf"layer 'ip2' shares param 'w' with {field} .*another layer .*set"):
        net_from(SHARED.replace("FIRST", first).replace("SECOND", second))


def test_a_shared_param_takes_the_multiplier_that_one_of_its_specs_sets():
    # Caffe: a spec without lr_mult leaves the shared blob's rate to the spec that sets it (here 0: frozen)
    net = net_from(SHARED.replace("FIRST", "").replace("SECOND", "lr_mult: 0 decay_mult: 3"), TRAIN)
    (info,) = net.learnable_params()
    assert (info.layer, info.lr_mult, info.decay_mult) == ("ip1", 0.0, 3.0)
    assert not net.layer_by_name("ip1").blobs[0].requires_grad
    same = net_from(SHARED.replace("FIRST", "lr_mult: 2").replace("SECOND", "lr_mult: 2"), TRAIN)
    assert [info.lr_mult for info in same.param_infos] == [2.0, 2.0]


CONV = """
name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 group: 1 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" inner_product_param { num_output: 5 } }
"""


def weights_for_conv_net(seed=0):
    rng = np.random.default_rng(seed)
    return {"conv": [rng.standard_normal((4, 3, 3, 3), dtype=np.float32), rng.standard_normal(4, dtype=np.float32)],
            "fc": [rng.standard_normal((5, 144), dtype=np.float32), rng.standard_normal(5, dtype=np.float32)]}


def test_copy_from_reports_copied_missing_and_ignored_layers():
    weights = weights_for_conv_net()
    weights["elsewhere"] = [np.zeros(3, np.float32)]
    del weights["fc"]
    report = net_from(CONV).copy_from(weights)
    assert (report.copied, report.missing, report.ignored) == (["conv"], ["fc"], ["elsewhere"])


def test_copy_from_shape_mismatch_names_layer_and_shapes():
    weights = weights_for_conv_net()
    weights["fc"][0] = np.zeros((5, 100), np.float32)
    with pytest.raises(ShapeError, match=r"layer 'fc' blob 0.*\(5, 144\).*\(5, 100\)"):
        net_from(CONV).copy_from(weights)


def test_copy_from_blob_count_mismatch_is_an_error():
    weights = weights_for_conv_net()
    weights["fc"] = weights["fc"][:1]
    with pytest.raises(ShapeError, match="another network"):
        net_from(CONV).copy_from(weights)


def test_legacy_four_axis_blobs_load_into_two_axis_weights(tmp_path):
    weights = weights_for_conv_net()
    model = schema.NetParameter()
    for name, arrays in weights.items():
        layer = model.layer.add(name=name)
        for array in arrays:
            layer.blobs.append(array_to_blob(array, legacy=True))
    net = net_from(CONV)
    net.copy_from(model)
    np.testing.assert_array_equal(net.layer_by_name("fc").blobs[0].detach().numpy(), weights["fc"][0])


def saved_conv_net(tmp_path):
    """(path, the file read back) of the conv net saved with known weights."""
    path = str(tmp_path / "w.caffemodel")
    net = net_from(CONV)
    net.copy_from(weights_for_conv_net())
    net.save(path)
    return path, read_caffemodel(path)


def test_copy_from_a_caffemodel_shares_its_memory(tmp_path):
    _, model = saved_conv_net(tmp_path)
    fresh = net_from(CONV)
    fresh.copy_from(model)
    stored = model.layer[3].blobs[0].data
    assert fresh.layer_by_name("fc").blobs[0].data_ptr() == stored.__array_interface__["data"][0]


def test_copy_from_without_sharing_copies_into_the_nets_own_aligned_blobs(tmp_path):
    path, model = saved_conv_net(tmp_path)
    fresh = net_from(CONV)
    own = [blob.data_ptr() for layer in fresh.layers for blob in layer.blobs]
    fresh.copy_from(path, share=False)
    assert [blob.data_ptr() for layer in fresh.layers for blob in layer.blobs] == own
    assert all(address % 64 == 0 for address in own)
    for index, name in ((1, "conv"), (3, "fc")):
        stored = model.layer[index].blobs[0].data
        np.testing.assert_array_equal(fresh.layer_by_name(name).blobs[0].detach().numpy(),
                                      stored.reshape(fresh.layer_by_name(name).blobs[0].shape))


def _memory_kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def test_copy_from_a_file_without_sharing_never_holds_its_weights_twice(tmp_path):
    # 4.2 million weights (16.8 MB): several of the copy's chunks, the last one partial
    text = """layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2100 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2000 } }"""
    weights = np.random.default_rng(0).standard_normal((2000, 2100)).astype(np.float32)
    bias = np.arange(2000, dtype=np.float32)
    path = str(tmp_path / "big.caffemodel")
    saved = net_from(text)
    saved.copy_from({"fc": [weights, bias]})
    saved.save(path)
    del saved
    fresh = net_from(text)  # its own (zero-filled) blobs already take their memory
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak resident set starts again from now
    before = _memory_kib("VmRSS")
    fresh.copy_from(path, share=False)
    held_twice_kib = _memory_kib("VmHWM") - before
    assert held_twice_kib < 8 << 10, f"loading took {held_twice_kib} KiB beyond the net's blobs (the file: 16.4 MiB)"
    np.testing.assert_array_equal(fresh.layer_by_name("fc").blobs[0].detach().numpy(), weights)
    np.testing.assert_array_equal(fresh.layer_by_name("fc").blobs[1].detach().numpy(), bias)


def test_saved_caffemodel_reads_back_in_opencv_with_identical_weights(tmp_path):
    prototxt, weights_path = tmp_path / "net.prototxt", str(tmp_path / "w.caffemodel")
    prototxt.write_text(CONV)
    net = net_from(CONV)
    weights = weights_for_conv_net(3)
    net.copy_from(weights)
    net.save(weights_path)
    opencv = cv2.dnn.readNetFromCaffe(str(prototxt), weights_path)
    for name, arrays in weights.items():
        layer_id = opencv.getLayerId(name)
        for index, array in enumerate(arrays):
            np.testing.assert_array_equal(opencv.getParam(layer_id, index).reshape(array.shape), array)


def test_forward_matches_opencv_for_any_batch_size(tmp_path):
    prototxt, weights_path = tmp_path / "net.prototxt", str(tmp_path / "w.caffemodel")
    prototxt.write_text(CONV)
    net = net_from(CONV)
    net.copy_from(weights_for_conv_net(5))
    net.save(weights_path)
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32)
    opencv = cv2.dnn.readNetFromCaffe(str(prototxt), weights_path)
    opencv.setInput(x)
    with torch.no_grad():
        np.testing.assert_allclose(net({"data": x})["fc"].numpy(), opencv.forward("fc"), rtol=1e-5, atol=1e-5)


def test_reshape_rebuilds_for_a_new_input_size_keeping_weights():
    text = CONV.replace('layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" inner_product_param { num_output: 5 } }\n', "")
    net = net_from(text)
    before = net.layer_by_name("conv").blobs[0].detach().clone()
    net.reshape({"data": (2, 3, 10, 12)})
    with torch.no_grad():
        assert net({"data": torch.zeros(2, 3, 10, 12)})["conv"].shape == (2, 4, 8, 10)
    torch.testing.assert_close(net.layer_by_name("conv").blobs[0].detach(), before)


def test_reshape_keeps_the_same_parameter_objects():
    net = net_from(CONV.split('layer { name: "fc"')[0])
    held = list(net.layer_by_name("conv").blobs)
    net.reshape({"data": (4, 3, 8, 8)})
    assert all(a is b for a, b in zip(held, net.layer_by_name("conv").blobs))
    with torch.no_grad():
        held[1].fill_(2.0)
        held[0].zero_()
        # conv = 2 everywhere after the write; the same objects feed the rebuilt layers
        assert torch.all(net({"data": torch.ones(4, 3, 8, 8)})["conv"] == 2.0)


def test_reshape_that_would_change_a_weight_shape_is_refused():
    # 4 x 6 x 6 conv outputs feed fc's 144 inputs; a 10 x 10 input would need 256 (Caffe: "Input size
    # incompatible with inner product parameters").
    net = net_from(CONV)
    with pytest.raises(ShapeError, match=r"layer 'fc' would need blob 0 of shape \(5, 256\).*\(5, 144\)"):
        net.reshape({"data": (1, 3, 10, 10)})


def test_input_of_the_wrong_size_names_the_input_and_what_to_do():
    with pytest.raises(ShapeError, match=r"input 'data' has shape \(1, 3, 9, 9\).*reshape"):
        net_from(CONV)({"data": np.zeros((1, 3, 9, 9), np.float32)})


def test_unknown_layer_type_lists_supported_types():
    text = 'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n' \
           'layer { name: "odd" type: "Frobnicate" bottom: "x" top: "y" }'
    with pytest.raises(LayerError, match=r"layer 'odd'.*'Frobnicate'.*Convolution.*InnerProduct"):
        net_from(text)


def test_missing_bottom_names_the_layer_and_blob():
    text = 'layer { name: "relu" type: "ReLU" bottom: "nothing" top: "y" }'
    with pytest.raises(LayerError, match=r"layer 'relu'.*'nothing'"):
        net_from(text)


def test_impossible_shape_names_the_layer():
    text = CONV.replace("kernel_size: 3", "kernel_size: 11")
    with pytest.raises(ShapeError, match="conv"):
        net_from(text)


def test_fresh_nets_are_filled_from_the_prototxt_fillers():
    text = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }
layer { name: "up" type: "Deconvolution" bottom: "x" top: "up"
        convolution_param { num_output: 2 group: 2 kernel_size: 2 stride: 2 bias_term: false weight_filler { type: "bilinear" } } }
"""
    # 2016 bilinear formula for k = 2: f = 1, c = 0.5 -> weight [[1, 0], [0, 0]] (docs/specification.md section 2)
    np.testing.assert_array_equal(net_from(text).layer_by_name("up").blobs[0].detach().numpy(),
                                  np.tile(np.array([[1, 0], [0, 0]], np.float32), (2, 1, 1, 1)))
    np.testing.assert_array_equal(net_from(text, bilinear="2017").layer_by_name("up").blobs[0].detach().numpy(),
                                  np.full((2, 1, 2, 2), 0.25, np.float32))


def test_weights_given_at_construction_skip_those_layers_fillers(tmp_path):
    path = str(tmp_path / "w.caffemodel")
    model = schema.NetParameter()
    layer = model.layer.add(name="conv", type="Convolution")
    weights = weights_for_conv_net()["conv"]
    for array in weights:
        layer.blobs.append(array_to_blob(array))
    write_caffemodel(model, path)
    net = net_from(CONV, weights=path)
    assert net.copy_report.copied == ["conv"] and net.copy_report.missing == ["fc"]
    np.testing.assert_array_equal(net.layer_by_name("conv").blobs[0].detach().numpy(), weights[0])


def test_one_net_used_from_several_threads_gives_opencvs_numbers(tmp_path):
    # Layers cache per-shape geometry (Pooling, Reshape): threads running batches of different sizes at
    # once must each get exactly the result of OpenCV's reader on the same batch.
    import threading
    text = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 11 dim: 13 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "ave" type: "Pooling" bottom: "conv" top: "ave" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "max" type: "Pooling" bottom: "ave" top: "max" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "flat" type: "Reshape" bottom: "max" top: "flat" reshape_param { shape { dim: 0 dim: -1 } } }
layer { name: "fc" type: "InnerProduct" bottom: "flat" top: "fc"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
"""
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(text)
    net = net_from(text, seed=3)
    weights = str(tmp_path / "net.caffemodel")
    net.save(weights)
    opencv = cv2.dnn.readNetFromCaffe(str(prototxt), weights)
    rng = np.random.default_rng(7)
    batches = [rng.standard_normal((1 + i % 4, 3, 11, 13)).astype(np.float32) for i in range(16)]
    expected = []
    for x in batches:
        opencv.setInput(x)
        expected.append(opencv.forward("fc").copy())
    results, start = {}, threading.Barrier(8)

    def work(worker):
        start.wait()
        for repeat in range(5):
            for index in range(worker, len(batches), 8):
                with torch.no_grad():
                    results[(worker, repeat, index)] = net({"data": batches[index]})["fc"].numpy()

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 5 * len(batches)
    for (_, _, index), out in results.items():
        np.testing.assert_allclose(out, expected[index], rtol=1e-5, atol=1e-5)


def test_a_deploy_net_does_not_load_the_data_package_and_a_train_net_closes_its_sources(tmp_path):
    import subprocess
    import sys
    code = ("import sys; from eigen_depth.net import CaffeNet; from eigen_depth.caffe import parse_text, schema; "
            "CaffeNet(parse_text(schema.NetParameter, 'layer { name: \"x\" type: \"Input\" top: \"x\" "
            "input_param { shape { dim: 1 dim: 2 } } }')); print('eigen_depth.data' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
    import h5py
    with h5py.File(tmp_path / "rows.h5", "w") as handle:
        handle["x"] = np.arange(12, dtype=np.float32).reshape(6, 2)
    (tmp_path / "list.txt").write_text(str(tmp_path / "rows.h5") + "\n")
    text = f'layer {{ name: "d" type: "HDF5Data" top: "x" hdf5_data_param {{ source: "{tmp_path / "list.txt"}" batch_size: 2 }} }}'
    with net_from(text, TRAIN) as net:
        (source,) = net.source_layers()
        net.seek(2)  # two batches of two rows consumed: the next batch starts at row 4
        np.testing.assert_array_equal(net({})["x"].numpy(), [[8, 9], [10, 11]])
    assert not net_from(CONV).source_layers()
