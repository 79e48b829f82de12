"""Training end to end: the staged weight transfers of docs/specification.md section 3 (from a V1 AlexNet caffemodel
written here), frozen stages, the gradient filter, `caffe train`/`caffe test` commands with Data layers,
exact resume with the data order, and two processes equal to one with the doubled batch."""
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from eigen_depth.caffe import array_to_blob, load_weights, parse_text, read_solverstate, schema, write_caffemodel
from eigen_depth.cli import main
from eigen_depth.data.paired_lmdb import make_lmdb
from eigen_depth.data.synthetic import make_synthetic
from eigen_depth.solver import Solver
from eigen_depth.errors import EigenDepthError
from eigen_depth.net import CaffeNet
from eigen_depth.train import PROTOTXT_ROOT, run_training, train_stage, transfer

ALEXNET_SHAPES = {"conv1": (96, 3, 11, 11), "conv2": (256, 48, 5, 5), "conv3": (384, 256, 3, 3),
                  "conv4": (384, 192, 3, 3), "conv5": (256, 192, 3, 3), "fc8": (10, 20)}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    make_synthetic(8, str(folder / "pairs"), seed=3, workers=1, progress=False, log=lambda *_: None)
    make_lmdb(str(folder / "pairs"), str(folder / "lmdb"), workers=1, progress=False, log=lambda *_: None)
    return str(folder / "lmdb")


@pytest.fixture(scope="module")
def alexnet(tmp_path_factory):
    """An ImageNet-AlexNet look-alike in the legacy V1 format (enum types, 4-D legacy blob shapes)."""
    rng = np.random.default_rng(5)
    model = schema.NetParameter(name="CaffeNet")
    weights = {}
    for name, shape in ALEXNET_SHAPES.items():
        layer = model.layers.add(name=name, type="INNER_PRODUCT" if name.startswith("fc") else "CONVOLUTION")
        weight = (rng.standard_normal(shape) * 0.01).astype(np.float32)
        bias = (rng.standard_normal(shape[0]) * 0.01).astype(np.float32)
        layer.blobs.append(array_to_blob(weight, legacy=True))
        layer.blobs.append(array_to_blob(bias, legacy=True))
        weights[name] = (weight, bias)
    path = str(tmp_path_factory.mktemp("alexnet") / "bvlc_alexnet.caffemodel")
    write_caffemodel(model, path)
    return path, weights


def stage(stage_name, tmp_path, data_root, iters, **options):
    return train_stage(stage_name, data_root=data_root, iters=iters, batch=2, out=str(tmp_path), device="cpu",
                       test_interval=0, progress=False, echo=lambda *_: None, **options)


def test_global_stage_starts_from_alexnets_conv_layers_by_name(tmp_path, data_root, alexnet):
    path, weights = alexnet
    snapshot = stage("global", tmp_path, data_root, 0, alexnet=path)
    assert snapshot.endswith(os.path.join("global", "snaps", "_iter_0.caffemodel"))
    saved = load_weights(snapshot)
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        np.testing.assert_array_equal(saved[name][0], weights[name][0])
        np.testing.assert_array_equal(saved[name][1], weights[name][1])
    assert os.path.exists(snapshot[: -len(".caffemodel")] + ".prototxt")  # the deploy net, for test_depth


def test_gradient_stage_takes_alexnets_conv1_and_the_fixed_gradient_filter(tmp_path, data_root, alexnet):
    path, weights = alexnet
    saved = load_weights(stage("gradient", tmp_path, data_root, 0, alexnet=path))
    np.testing.assert_array_equal(saved["conv1"][0], weights["conv1"][0])
    # docs/specification.md 3.2: channel 0 rows (-1,-1,-1), (0,0,0), (1,1,1); channel 1 rows (-1,0,1) three times
    np.testing.assert_array_equal(saved["gradientFilter"][0][0, 0], [[-1, -1, -1], [0, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(saved["gradientFilter"][0][1, 0], [[-1, 0, 1]] * 3)
    np.testing.assert_array_equal(saved["gradientFilter"][1], [0, 0])


def test_refine_stage_copies_both_stages_keeps_them_frozen_and_trains_the_rest(tmp_path, data_root, alexnet):
    path, weights = alexnet
    global_snapshot = stage("global", tmp_path, data_root, 1, alexnet=path)
    gradient_snapshot = stage("gradient", tmp_path, data_root, 1, alexnet=path)
    snapshots = dict(alexnet=path, global_snapshot=global_snapshot, gradient_snapshot=gradient_snapshot)
    initial = load_weights(stage("refine", tmp_path / "start", data_root, 0, **snapshots))
    refined = load_weights(stage("refine", tmp_path, data_root, 2, **snapshots))
    first, second = load_weights(global_snapshot), load_weights(gradient_snapshot)
    for name in ("conv1", "conv5", "fc-main", "fc-depth"):
        np.testing.assert_array_equal(refined[name][0], first[name][0])        # stage 1, frozen
    np.testing.assert_array_equal(refined["conv1-grad"][0], second["conv1"][0])  # stage 2's conv1, renamed
    np.testing.assert_array_equal(refined["conv4-grad"][0], second["conv4-grad"][0])
    assert not np.array_equal(refined["conv2-refine"][0], initial["conv2-refine"][0])  # trained


def test_refine_stage_starts_conv1_refine_from_alexnets_conv1(tmp_path, data_root, alexnet):
    path, weights = alexnet
    refined = load_weights(stage("refine", tmp_path, data_root, 0, alexnet=path))
    np.testing.assert_array_equal(refined["conv1-refine"][0], weights["conv1"][0])


def test_transfer_into_a_layer_the_net_lacks_is_an_error_not_a_report(tmp_path):
    net = CaffeNet(parse_text(schema.NetParameter, """
        layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }
        layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } }"""))
    source = tmp_path / "source.caffemodel"
    model = schema.NetParameter(name="source")
    layer = model.layer.add(name="fc", type="InnerProduct")
    layer.blobs.add().CopyFrom(array_to_blob(np.ones((2, 3), np.float32)))
    layer.blobs.add().CopyFrom(array_to_blob(np.zeros(2, np.float32)))
    write_caffemodel(model, str(source))
    with pytest.raises(EigenDepthError, match=r"has no layer fc-renamed to copy .*source.caffemodel into"):
        transfer(net, str(source), {"fc": "fc-renamed"})
    assert transfer(net, str(source), {"fc": "ip"}) == [("fc", "ip")]
    np.testing.assert_array_equal(net.layer_by_name("ip").blobs[0].detach().numpy(), np.ones((2, 3)))


def solver_file(tmp_path, iters=4, snapshot=2):
    net = os.path.join(PROTOTXT_ROOT, "global_context", "norm", "net_train.prototxt")
    text = open(net).read().replace("batch_size: 32", "batch_size: 2")
    (tmp_path / "net_train.prototxt").write_text(text)
    (tmp_path / "solver.prototxt").write_text(
        f'net: "net_train.prototxt" base_lr: 0.01 momentum: 0.9 weight_decay: 0.005 lr_policy: "fixed" '
        f'max_iter: {iters} snapshot: {snapshot} snapshot_prefix: "{tmp_path}/snaps/" random_seed: 4 '
        f'test_iter: 1 test_interval: 2')
    return str(tmp_path / "solver.prototxt")


def test_caffe_train_and_test_commands_run_a_net_with_data_layers(tmp_path, data_root, capsys):
    solver = solver_file(tmp_path)
    assert main(["train", "--solver", solver, "--data-root", data_root, "--device", "cpu", "--no-progress"]) == 0
    names = sorted(os.listdir(tmp_path / "snaps"))
    assert "_iter_4.caffemodel" in names and "_iter_4.solverstate" in names and "_iter_2.caffemodel" in names
    assert (tmp_path / "snaps" / "train_log.csv").exists() and (tmp_path / "snaps" / "loss_curve.png").exists()
    capsys.readouterr()
    assert main(["test", "--model", str(tmp_path / "net_train.prototxt"), "--weights",
                 str(tmp_path / "snaps" / "_iter_4.caffemodel"), "--iterations", "2", "--data-root", data_root,
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "Batch 1, loss =" in out and "(* 1 = " in out


def test_resumed_training_with_data_layers_matches_an_uninterrupted_run(tmp_path, data_root):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = run_training(solver_file(tmp_path / "a", iters=4), data_root=data_root, progress=False,
                            echo=lambda *_: None)
    halfway = solver_file(tmp_path / "b", iters=4)
    run_training(halfway, data_root=data_root, progress=False, echo=lambda *_: None, max_iter=2)
    assert read_solverstate(tmp_path / "b" / "snaps" / "_iter_2.solverstate").iter == 2
    resumed = run_training(halfway, snapshot=str(tmp_path / "b" / "snaps" / "_iter_2.solverstate"),
                           data_root=data_root, progress=False, echo=lambda *_: None)
    for a, b in zip(straight.net.parameters(), resumed.net.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# Two processes ------------------------------------------------------------------------------------------
MLP = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 4 dim: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h" inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "h" top: "h" }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "p" inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "loss" }
"""


def mlp_solver():
    return parse_text(schema.SolverParameter, f'net_param {{ {MLP} }} base_lr: 0.1 momentum: 0.9 '
                                              f'weight_decay: 0.01 lr_policy: "fixed" max_iter: 5')


def batch(iteration, rows):
    rng = np.random.default_rng(iteration)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    return {"x": x[rows], "y": np.sin(x[rows, :2])}


def train_shard(rank, world, port, results, folder):
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)
    param = mlp_solver()
    param.snapshot_prefix = folder + "/snaps/"
    solver = Solver(param, distributed=(rank, world))
    step = iter(range(100))
    solver.feeder = lambda: batch(next(step), slice(rank * 4, rank * 4 + 4))
    solver.step(5)
    seen = []
    solver.callbacks.append(lambda event, it, values: seen.append((values["caffemodel"],
                                                                   os.path.exists(values["caffemodel"]))))
    solver.snapshot()
    results[rank] = ([p.detach().clone() for p in solver.net.parameters()], seen)
    dist.destroy_process_group()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_train_like_one_with_the_doubled_batch(tmp_path):
    torch.manual_seed(0)
    single = Solver(mlp_solver())
    step = iter(range(100))
    single.feeder = lambda: batch(next(step), slice(0, 8))
    single.step(5)
    manager = mp.get_context("spawn").Manager()
    results = manager.dict()
    mp.start_processes(train_shard, args=(2, free_port(), results, str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    for rank in (0, 1):
        for ours, theirs in zip(results[rank][0], single.net.parameters()):
            torch.testing.assert_close(ours, theirs.detach(), rtol=1e-5, atol=1e-6)
    # every rank learns of the snapshot, after rank 0 (the only writer) has written it
    snapshot = str(tmp_path / "snaps" / "_iter_5.caffemodel")
    assert results[0][1] == results[1][1] == [(snapshot, True)]


HDF5_NET = """
layer { name: "data" type: "HDF5Data" top: "x" top: "y" hdf5_data_param { source: "LIST" batch_size: BATCH } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h" inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "h" top: "h" }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "p" inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "loss" }
"""


def test_torchrun_with_two_processes_trains_like_one_with_the_doubled_batch(tmp_path):
    import subprocess
    import sys

    import h5py
    rng = np.random.default_rng(9)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    with h5py.File(tmp_path / "data.h5", "w") as handle:
        handle["x"], handle["y"] = x, np.sin(x[:, :2])
    (tmp_path / "list.txt").write_text(str(tmp_path / "data.h5") + "\n")
    for name, batch in (("two", 4), ("one", 8)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "net.prototxt").write_text(HDF5_NET.replace("LIST", str(tmp_path / "list.txt"))
                                             .replace("BATCH", str(batch)))
        (folder / "solver.prototxt").write_text(
            f'net: "net.prototxt" base_lr: 0.1 momentum: 0.9 weight_decay: 0.01 lr_policy: "fixed" max_iter: 3 '
            f'snapshot_prefix: "{folder}/snaps/"')
    train = ["-m", "eigen_depth", "train", "--device", "cpu", "--no-progress", "--solver"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                    str(free_port()), *train, str(tmp_path / "two" / "solver.prototxt")], check=True, env=env,
                   capture_output=True)
    subprocess.run([sys.executable, *train, str(tmp_path / "one" / "solver.prototxt")], check=True, env=env,
                   capture_output=True)
    two = load_weights(tmp_path / "two" / "snaps" / "_iter_3.caffemodel")
    one = load_weights(tmp_path / "one" / "snaps" / "_iter_3.caffemodel")
    for name in ("ip1", "ip2"):
        for ours, theirs in zip(two[name], one[name]):
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_fcrn_family_trains_from_resnet50_weights_by_name_from_the_command_line(tmp_path, capsys):
    """`train --family fcrn --weights resnet50.caffemodel`: the ImageNet layers the file has (conv1,
    res5c_branch2c, by their public names) start from it, the others from the fillers (the copy is reported);
    after one Adam step (the CPU recipe, rate 1e-4: every weight moves by at most about the rate) they are still
    within 2e-4 of the file's values, drawn with std 1, where the fillers are far from them; the snapshot carries
    FCRN's deploy net, which the evaluator reads in metres."""
    rng = np.random.default_rng(8)
    model = schema.NetParameter(name="ResNet-50")
    given = {"conv1": rng.standard_normal((64, 3, 7, 7)), "res5c_branch2c": rng.standard_normal((2048, 512, 1, 1))}
    for name, weight in given.items():
        model.layer.add(name=name, type="Convolution").blobs.append(array_to_blob(weight.astype(np.float32)))
    weights = str(tmp_path / "resnet50.caffemodel")
    write_caffemodel(model, weights)
    status = main(["train", "--family", "fcrn", "--recipe", "cpu", "--weights", weights, "--data", "synthetic",
                   "--iters", "1", "--batch", "1", "--test-interval", "0", "--out", str(tmp_path), "--no-progress"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert f"weights from {weights}: copied 2 layers" in out
    snapshot = tmp_path / "fcrn" / "snaps" / "_iter_1.caffemodel"
    saved = load_weights(str(snapshot))
    for name, weight in given.items():
        assert np.abs(saved[name][0] - weight).max() <= 2e-4
    with open(tmp_path / "fcrn" / "solver.prototxt") as handle:
        assert 'type: "Adam"' in handle.read()  # the family's CPU recipe
    with open(str(snapshot)[: -len(".caffemodel")] + ".prototxt") as handle:
        assert 'name: "fcrn_deploy"' in handle.read()
    status = main(["train", "--family", "fcrn", "--variant", "norm", "--out", str(tmp_path / "x")])
    assert status == 2 and "no loss variants" in capsys.readouterr().err


def test_a_refused_second_run_of_a_stage_leaves_the_first_runs_files_as_they_were(tmp_path, data_root):
    stage("gradient", tmp_path, data_root, 0)
    folder = tmp_path / "gradient"
    before = {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    assert folder / "solver.prototxt" in before and folder / "snaps" / "_iter_0.caffemodel" in before
    with pytest.raises(EigenDepthError, match="_iter_0.caffemodel: a snapshot of an earlier run"):
        train_stage("gradient", data_root=data_root, iters=1, batch=1, out=str(tmp_path), device="cpu",
                    test_interval=0, progress=False, echo=lambda *_: None)
    assert {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()} == before
