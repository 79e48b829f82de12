"""The CPU recipe's batch normalisation (eigen_depth.batch_norm): which layers it normalises in the thesis's nets,
the fold into the layer before it against numbers worked by hand, and a staged run whose folded snapshots OpenCV
runs in the thesis's deploy prototxt exactly as it runs the training snapshots with their BatchNorm layers."""
import os

import cv2
import numpy as np
import pytest

from eigen_depth import batch_norm
from eigen_depth.caffe import array_to_blob, load_weights, parse_text, schema
from eigen_depth.data.paired_lmdb import make_lmdb
from eigen_depth.data.synthetic import make_synthetic
from eigen_depth.errors import EigenDepthError, OutputError
from eigen_depth.train import stage_files, stage_solver, staged_main, train_stage


def _weights(layer_type, weight, bias, mean_sum, var_sum, factor, gamma, beta, eps=0.0, **extra):
    """A net's weights: layer `a` (weight, bias), its BatchNorm a-bn (eps) and Scale a-bn-scale, and a ReLU."""
    net = schema.NetParameter(name="n")
    layer = net.layer.add(name="a", type=layer_type, bottom=["x"], top=["a"])
    for key, value in extra.items():
        setattr(getattr(layer, key.split("__")[0]), key.split("__")[1], value)
    layer.blobs.extend([array_to_blob(np.asarray(weight, np.float32)), array_to_blob(np.asarray(bias, np.float32))])
    norm = net.layer.add(name="a-bn", type="BatchNorm", bottom=["a"], top=["a"])
    norm.batch_norm_param.eps = eps
    norm.blobs.extend(array_to_blob(np.asarray(v, np.float32)) for v in (mean_sum, var_sum, [factor]))
    scale = net.layer.add(name="a-bn-scale", type="Scale", bottom=["a"], top=["a"])
    scale.blobs.extend(array_to_blob(np.asarray(v, np.float32)) for v in (gamma, beta))
    net.layer.add(name="a-relu", type="ReLU", bottom=["a"], top=["a"])
    return net


def _blobs(net, name):
    layer = next(layer for layer in net.layer if layer.name == name)
    return [np.asarray(blob.data).reshape(tuple(blob.shape.dim)) for blob in layer.blobs]


def test_fold_of_a_convolution_by_hand():
    # stored statistics: mean = (4, 2) / 2 = (2, 1), variance = (8, 18) / 2 = (4, 9): divisors sqrt = (2, 3)
    # multipliers g / sqrt(v) = (1 / 2, 6 / 3) = (0.5, 2); weights (2, 3) -> (1, 6)
    # biases: (1 - 2) * 0.5 + 0.5 = 0 and (-1 - 1) * 2 + 0 = -4
    net = _weights("Convolution", [[[[2.0]]], [[[3.0]]]], [1.0, -1.0], [4.0, 2.0], [8.0, 18.0], 2.0,
                   [1.0, 6.0], [0.5, 0.0])
    folded = batch_norm.fold(net)
    assert [layer.name for layer in folded.layer] == ["a", "a-relu"]
    weight, bias = _blobs(folded, "a")
    np.testing.assert_array_equal(weight, np.array([1.0, 6.0], np.float32).reshape(2, 1, 1, 1))
    np.testing.assert_array_equal(bias, np.array([0.0, -4.0], np.float32))


def test_fold_of_an_inner_product_with_eps_and_a_transposed_one():
    # eps 1: divisors sqrt(3 + 1) = 2 and sqrt(0 + 1) = 1; gamma (4, -1): multipliers (2, -1)
    # rows (1, 2) and (3, 4) -> (2, 4) and (-3, -4); biases (0 - 1) * 2 + 1 = -1 and (5 - 0) * -1 + 0 = -5
    args = ([[1.0, 2.0], [3.0, 4.0]], [0.0, 5.0], [1.0, 0.0], [3.0, 0.0], 1.0, [4.0, -1.0], [1.0, 0.0])
    weight, bias = _blobs(batch_norm.fold(_weights("InnerProduct", *args, eps=1.0)), "a")
    np.testing.assert_array_equal(weight, [[2.0, 4.0], [-3.0, -4.0]])
    np.testing.assert_array_equal(bias, [-1.0, -5.0])
    # transposed, the weight is (inputs, outputs): the columns scale
    weight, _ = _blobs(batch_norm.fold(_weights("InnerProduct", *args, eps=1.0, inner_product_param__transpose=True)),
                       "a")
    np.testing.assert_array_equal(weight, [[2.0, -2.0], [6.0, -4.0]])


def test_fold_with_no_statistics_yet_uses_a_mean_and_variance_of_zero():
    # a scale factor of 0 (no batch seen) gives zero statistics, as Caffe's BatchNorm: divisor sqrt(0 + 0.25) = 0.5
    weight, bias = _blobs(batch_norm.fold(_weights("Convolution", [[[[1.0]]]], [3.0], [7.0], [7.0], 0.0, [1.0], [0.0],
                                                   eps=0.25)), "a")
    np.testing.assert_array_equal(weight.ravel(), [2.0])
    np.testing.assert_array_equal(bias, [6.0])


# the thesis's training nets under the CPU recipe: the trainable layers that a ReLU follows in place (read from
# the prototxts; the refining net's frozen branches and every output layer stay as they are)
NORMALISED = {
    "global": ["conv1", "conv2", "conv3", "conv4", "conv5", "fc-main"],
    "gradient": ["conv1", "conv2-grad", "conv3-grad", "conv4-grad"],
    "refine": ["conv1-refine", "conv2-refine", "conv3-refine", "conv4-refine"],
}


@pytest.mark.parametrize("stage", sorted(NORMALISED))
def test_the_recipe_normalises_the_trainable_layers_before_each_relu(tmp_path, stage):
    param, _ = stage_solver(stage, out=str(tmp_path), recipe="cpu")
    assert batch_norm.targets(param.net_param) == NORMALISED[stage]
    batch_norm.insert(param.net_param, NORMALISED[stage])
    assert batch_norm.normalised(param.net_param) == NORMALISED[stage]
    names = [layer.name for layer in param.net_param.layer]
    for name in NORMALISED[stage]:
        at = names.index(name)
        assert names[at + 1:at + 4] == [name + "-bn", name + "-bn-scale", name + "-relu"]


def test_a_layer_to_normalise_must_exist():
    net = parse_text(schema.NetParameter, 'name: "n" layer { name: "a" type: "ReLU" bottom: "x" top: "x" }')
    with pytest.raises(EigenDepthError, match="no layer b to normalise"):
        batch_norm.insert(net, ["b"])


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bn_rooms")
    quiet = dict(workers=1, progress=False, log=lambda *_: None)
    make_synthetic(5, str(folder / "pairs"), seed=5, test_fraction=0.2, **quiet)
    make_lmdb(str(folder / "pairs"), str(folder / "lmdb"), **quiet)
    return str(folder / "lmdb")


def _train(stage, rooms, out, **options):
    return train_stage(stage, data_root=rooms, iters=3, batch=2, out=out, device="cpu", recipe="cpu", test_interval=0,
                       progress=False, echo=lambda *_: None, **options)


def test_folded_snapshots_run_in_the_thesis_deploy_net_as_opencv_runs_the_training_ones(tmp_path, rooms):
    out = str(tmp_path / "run")
    last = _train("gradient", rooms, out)  # the smallest of the thesis's nets: four normalised convolutions
    snaps, training = os.path.join(out, "gradient", "snaps"), os.path.join(out, "gradient", "training")
    assert last == os.path.join(snaps, "_iter_3.caffemodel")
    assert sorted(os.listdir(snaps)) == ["_iter_3.caffemodel", "_iter_3.prototxt"]
    assert {"_iter_3.caffemodel", "_iter_3.prototxt", "_iter_3.solverstate"} <= set(os.listdir(training))
    with open(os.path.join(snaps, "_iter_3.prototxt"), "rb") as ours, open(stage_files("gradient")[1], "rb") as thesis:
        assert ours.read() == thesis.read()  # the thesis's deploy net, unchanged
    assert not any(name.endswith(("-bn", "-bn-scale")) for name in load_weights(last))
    trained = load_weights(os.path.join(training, "_iter_3.caffemodel"))
    assert trained["conv3-grad-bn"][2][0] > 0  # statistics were gathered

    image = np.random.default_rng(4).uniform(-127, 128, (2, 3, 218, 298)).astype(np.float32)

    def opencv(base):
        net = cv2.dnn.readNetFromCaffe(base + ".prototxt", base + ".caffemodel")
        net.setInput(image)
        return net.forward()

    with_norm, folded = opencv(os.path.join(training, "_iter_3")), opencv(last[:-len(".caffemodel")])
    assert with_norm.shape[0] == 2 and with_norm.std() > 0
    np.testing.assert_allclose(folded, with_norm, rtol=0, atol=1e-5 * np.abs(with_norm).max())


def test_a_run_refuses_to_overwrite_an_earlier_runs_folded_snapshot(tmp_path, rooms):
    snaps = tmp_path / "run" / "global" / "snaps"
    snaps.mkdir(parents=True)
    (snaps / "_iter_9.caffemodel").write_bytes(b"earlier")
    with pytest.raises(OutputError, match="_iter_9.caffemodel: a snapshot of an earlier run"):
        _train("global", rooms, str(tmp_path / "run"))
    assert (snaps / "_iter_9.caffemodel").read_bytes() == b"earlier"
    assert sorted(os.listdir(tmp_path / "run" / "global")) == ["snaps"]  # nothing written


def test_no_batch_norm_trains_the_thesis_net_as_written(tmp_path, rooms):
    out = tmp_path / "run"
    assert staged_main(["--stage", "gradient", "--recipe", "cpu", "--no-batch-norm", "--iters", "1", "--batch", "2",
                        "--data-root", rooms, "--out", str(out), "--test-interval", "0", "--no-progress"]) == 0
    assert not (out / "gradient" / "training").exists()
    assert {"_iter_1.caffemodel", "_iter_1.solverstate"} <= set(os.listdir(out / "gradient" / "snaps"))
    assert "BatchNorm" not in (out / "gradient" / "solver.prototxt").read_text()


def test_fold_batch_norm_command_folds_a_training_snapshot(tmp_path, capsys):
    from eigen_depth.caffe import write_caffemodel
    from eigen_depth.cli import main
    source, target = str(tmp_path / "training.caffemodel"), str(tmp_path / "folded.caffemodel")
    write_caffemodel(_weights("Convolution", [[[[2.0]]], [[[3.0]]]], [1.0, -1.0], [4.0, 2.0], [8.0, 18.0], 2.0,
                              [1.0, 6.0], [0.5, 0.0]), source)
    assert main(["fold-batch-norm", source, target]) == 0
    folded = load_weights(target)
    assert sorted(folded) == ["a"]
    np.testing.assert_array_equal(folded["a"][0].ravel(), [1.0, 6.0])  # the numbers of the first test
    np.testing.assert_array_equal(folded["a"][1], [0.0, -4.0])
    assert "folded the normalisation of a" in capsys.readouterr().out

    plain = schema.NetParameter(name="plain")
    plain.layer.add(name="c", type="Convolution").blobs.append(array_to_blob(np.ones((1, 1, 1, 1), np.float32)))
    write_caffemodel(plain, str(tmp_path / "plain.caffemodel"))
    assert main(["fold-batch-norm", str(tmp_path / "plain.caffemodel"), str(tmp_path / "out.caffemodel")]) == 2
    assert "nothing to fold" in capsys.readouterr().err
    assert not (tmp_path / "out.caffemodel").exists()
    assert main(["fold-batch-norm", source, source]) == 2  # never over its input
    assert load_weights(source)["a-bn"][2][0] == 2.0
