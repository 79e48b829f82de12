"""The solver against Caffe's formulas: learning-rate policies by hand, and 10 iterations of every update
rule from one caffemodel on fixed data against a NumPy re-implementation of Caffe's solver written here
(forward, backward and update of a two-layer net), snapshots and exact resuming."""
import math
import os

import numpy as np
import pytest
import torch

from eigen_depth.caffe import (array_to_blob, blob_to_array, load_weights, parse_text, read_solverstate, schema,
                               write_caffemodel)
from eigen_depth.errors import PrototxtError
from eigen_depth.solver import Solver, learning_rate

NET = """
name: "mlp"
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 } } }
layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 4 dim: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        inner_product_param { num_output: 5 } }
layer { name: "relu" type: "ReLU" bottom: "h" top: "h" }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "p"
        param { lr_mult: 0.5 decay_mult: 2 } param { lr_mult: 0.5 decay_mult: 0 }
        inner_product_param { num_output: 2 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "loss" loss_weight: 1.5 }
"""


def solver_param(**fields):
    text = f'net_param {{ {NET} }} base_lr: 0.05 momentum: 0.9 weight_decay: 0.01 lr_policy: "step" ' \
           f'gamma: 0.5 stepsize: 4 max_iter: 10 display: 0 random_seed: 1 snapshot_after_train: false'
    param = parse_text(schema.SolverParameter, text)
    for name, value in fields.items():
        setattr(param, name, value)
    return param


def initial_weights(seed=0):
    rng = np.random.default_rng(seed)
    return {"ip1": [rng.standard_normal((5, 3)).astype(np.float32) * 0.5, rng.standard_normal(5).astype(np.float32) * 0.1],
            "ip2": [rng.standard_normal((2, 5)).astype(np.float32) * 0.5, rng.standard_normal(2).astype(np.float32) * 0.1]}


class Batches:
    """A deterministic, resumable feeder: batch k is drawn from seed k."""

    def __init__(self, batch=4):
        self.position, self.batch = 0, batch

    def __call__(self):
        rng = np.random.default_rng(1000 + self.position)
        self.position += 1
        x = rng.standard_normal((self.batch, 3)).astype(np.float32)
        return {"x": x, "y": np.tanh(x[:, :2] * 2).astype(np.float32)}

    def seek(self, position):
        self.position = position


# ---------------------------------------------------------------------------- NumPy reference of Caffe
def numpy_gradients(w, x, y, loss_weight=1.5):
    """Forward/backward of ip1 -> ReLU -> ip2 -> EuclideanLoss (sum of squares / 2N) * loss_weight."""
    n = x.shape[0]
    h_pre = x @ w["ip1"][0].T + w["ip1"][1]
    h = np.maximum(h_pre, 0)
    p = h @ w["ip2"][0].T + w["ip2"][1]
    d_p = loss_weight * (p - y) / n
    d_h = (d_p @ w["ip2"][0]) * (h_pre > 0)
    return {"ip1": [d_h.T @ x, d_h.sum(0)], "ip2": [d_p.T @ h, d_p.sum(0)]}


MULTS = {("ip1", 0): (1, 1), ("ip1", 1): (2, 0), ("ip2", 0): (0.5, 2), ("ip2", 1): (0.5, 0)}
ORDER = [("ip1", 0), ("ip1", 1), ("ip2", 0), ("ip2", 1)]


def numpy_solver(kind, iterations, iter_size=1, clip=-1.0, lr=0.05, momentum=0.9, decay=0.01, gamma=0.5,
                 stepsize=4, delta=1e-8, rms_decay=0.99, momentum2=0.999, regularization="L2"):
    # SolverParameter stores these as float32, so Caffe computes with the float32 values
    lr, momentum, decay, gamma, delta, rms_decay, momentum2, clip = (
        float(np.float32(v)) for v in (lr, momentum, decay, gamma, delta, rms_decay, momentum2, clip))
    w = {k: [a.astype(np.float64) for a in v] for k, v in initial_weights().items()}
    h1 = {key: np.zeros_like(w[key[0]][key[1]]) for key in ORDER}
    h2 = {key: np.zeros_like(w[key[0]][key[1]]) for key in ORDER}
    feed = Batches()
    for it in range(iterations):
        grads = {key: np.zeros_like(w[key[0]][key[1]]) for key in ORDER}
        for _ in range(iter_size):
            batch = feed()
            g = numpy_gradients(w, batch["x"].astype(np.float64), batch["y"].astype(np.float64))
            for key in ORDER:
                grads[key] += g[key[0]][key[1]]
        rate = lr * gamma ** (it // stepsize)
        if clip >= 0:
            norm = math.sqrt(sum((grads[k] ** 2).sum() for k in ORDER))
            if norm > clip:
                grads = {k: v * clip / norm for k, v in grads.items()}
        for key in ORDER:
            lr_mult, decay_mult = MULTS[key]
            weight = w[key[0]][key[1]]
            diff = grads[key] / iter_size
            diff = diff + decay * decay_mult * (weight if regularization == "L2" else np.sign(weight))
            local = rate * lr_mult
            if kind == "SGD":
                h1[key] = momentum * h1[key] + local * diff
                update = h1[key]
            elif kind == "Nesterov":
                previous = h1[key].copy()
                h1[key] = momentum * h1[key] + local * diff
                update = (1 + momentum) * h1[key] - momentum * previous
            elif kind == "AdaGrad":
                h1[key] = h1[key] + diff ** 2
                update = local * diff / (np.sqrt(h1[key]) + delta)
            elif kind == "RMSProp":
                h1[key] = rms_decay * h1[key] + (1 - rms_decay) * diff ** 2
                update = local * diff / (np.sqrt(h1[key]) + delta)
            elif kind == "AdaDelta":
                h1[key] = momentum * h1[key] + (1 - momentum) * diff ** 2
                step = np.sqrt((h2[key] + delta) / (h1[key] + delta)) * diff
                h2[key] = momentum * h2[key] + (1 - momentum) * step ** 2
                update = local * step
            elif kind == "Adam":
                h1[key] = momentum * h1[key] + (1 - momentum) * diff
                h2[key] = momentum2 * h2[key] + (1 - momentum2) * diff ** 2
                t = it + 1
                correction = math.sqrt(1 - momentum2 ** t) / (1 - momentum ** t)
                update = local * correction * h1[key] / (np.sqrt(h2[key]) + delta)
            w[key[0]][key[1]] = weight - update
    return w


def run_solver(tmp_path, iterations=10, dtype=None, **fields):
    tmp_path.mkdir(parents=True, exist_ok=True)
    weights = tmp_path / "init.caffemodel"
    model = schema.NetParameter()
    for name, arrays in initial_weights().items():
        layer = model.layer.add(name=name)
        for array in arrays:
            layer.blobs.append(array_to_blob(array))
    write_caffemodel(model, weights)
    param = solver_param(**fields)
    param.snapshot_prefix = str(tmp_path / "snaps") + "/"  # Caffe's "snaps/" gives snaps/_iter_N
    solver = Solver(param, feeder=Batches(), test_feeders=[Batches()], dtype=dtype)
    solver.net.copy_from(str(weights))
    solver.step(iterations)
    return solver


def assert_matches_reference(solver, reference, rtol=1e-5, atol=1e-6):
    for name in ("ip1", "ip2"):
        for index in range(2):
            ours = solver.net.layer_by_name(name).blobs[index].detach().numpy()
            np.testing.assert_allclose(ours, reference[name][index], rtol=rtol, atol=atol)


def test_sgd_with_momentum_decay_multipliers_step_policy_and_iter_size_matches_caffe(tmp_path):
    # float32, as Caffe trains: equal up to float32 rounding accumulated over 10 iterations
    solver = run_solver(tmp_path, iter_size=2)
    assert_matches_reference(solver, numpy_solver("SGD", 10, iter_size=2))


def test_sgd_update_in_double_precision_matches_caffes_formula_to_1e_6(tmp_path):
    solver = run_solver(tmp_path, iter_size=2, dtype=torch.float64)
    assert_matches_reference(solver, numpy_solver("SGD", 10, iter_size=2), rtol=1e-6, atol=0)


@pytest.mark.parametrize("kind", ["Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam"])
def test_other_solver_types_match_caffes_formulas(tmp_path, kind):
    fields = {"type": kind}
    if kind == "AdaDelta":
        fields.update(momentum=0.95, base_lr=1.0)
    solver = run_solver(tmp_path, **fields)
    options = {"momentum": 0.95, "lr": 1.0} if kind == "AdaDelta" else {}
    assert_matches_reference(solver, numpy_solver(kind, 10, **options))


def test_gradient_clipping_and_l1_regularisation_match_caffe(tmp_path):
    solver = run_solver(tmp_path, clip_gradients=0.05, regularization_type="L1")
    assert_matches_reference(solver, numpy_solver("SGD", 10, clip=0.05, regularization="L1"))


def test_loss_is_euclidean_over_2n_times_loss_weight(tmp_path):
    solver = run_solver(tmp_path, iterations=0)
    batch = Batches()()
    w = initial_weights()
    h = np.maximum(batch["x"] @ w["ip1"][0].T + w["ip1"][1], 0)
    p = h @ w["ip2"][0].T + w["ip2"][1]
    expected = 1.5 * ((p - batch["y"]) ** 2).sum() / (2 * 4)
    assert solver.forward_backward() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("policy, fields, iteration, expected", [
    ("fixed", {}, 7, 0.1),
    ("step", {"gamma": 0.5, "stepsize": 3}, 7, 0.1 * 0.5 ** 2),
    ("exp", {"gamma": 0.9}, 7, 0.1 * 0.9 ** 7),
    ("inv", {"gamma": 0.01, "power": 0.75}, 7, 0.1 * (1 + 0.07) ** -0.75),
    ("poly", {"power": 2.0, "max_iter": 10}, 7, 0.1 * (1 - 0.7) ** 2),
    ("sigmoid", {"gamma": 0.5, "stepsize": 5}, 7, 0.1 / (1 + math.exp(-0.5 * 2))),
])
def test_learning_rate_policies(policy, fields, iteration, expected):
    param = schema.SolverParameter(base_lr=0.1, lr_policy=policy, **fields)
    assert learning_rate(param, iteration)[0] == pytest.approx(expected, rel=1e-6)


def test_poly_policy_past_max_iter_is_zero_and_needs_a_positive_max_iter():
    param = schema.SolverParameter(base_lr=0.1, lr_policy="poly", power=0.5, max_iter=10)
    rate, _ = learning_rate(param, 12)
    assert isinstance(rate, float) and rate == 0.0
    assert learning_rate(param, 10)[0] == 0.0
    with pytest.raises(PrototxtError, match=r"'poly' needs a positive max_iter \(got 0\)"):
        learning_rate(schema.SolverParameter(base_lr=0.1, lr_policy="poly", power=1, max_iter=0), 0)


def test_random_seed_seeds_the_fillers():
    # Caffe seeds its RNG with random_seed before building the nets, so the fillers follow the seed.
    net = NET.replace("inner_product_param { num_output: 5 }",
                      'inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 1 } }')

    def first_weights(seed):
        param = parse_text(schema.SolverParameter, f"net_param {{ {net} }} base_lr: 0.1 random_seed: {seed}")
        return Solver(param).net.layer_by_name("ip1").blobs[0].detach().clone()

    one, again, two = first_weights(1), first_weights(1), first_weights(2)
    assert torch.equal(one, again)
    assert not torch.allclose(one, two)
    assert one.std() > 0.3  # really drawn from the gaussian filler, not left at zero


def test_multistep_policy_steps_at_each_stepvalue():
    param = schema.SolverParameter(base_lr=1.0, lr_policy="multistep", gamma=0.1, stepvalue=[2, 5])
    step, rates = 0, []
    for iteration in range(7):
        rate, step = learning_rate(param, iteration, step)
        rates.append(rate)
    np.testing.assert_allclose(rates, [1, 1, 0.1, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)


def test_snapshots_are_named_like_caffes_and_hold_the_momentum_history(tmp_path):
    solver = run_solver(tmp_path, iterations=4, snapshot=2)
    names = sorted(os.listdir(tmp_path / "snaps"))
    assert names == ["_iter_2.caffemodel", "_iter_2.solverstate", "_iter_4.caffemodel", "_iter_4.solverstate"]
    state = read_solverstate(tmp_path / "snaps" / "_iter_4.solverstate")
    assert state.iter == 4 and state.learned_net.endswith("_iter_4.caffemodel")
    assert [blob_to_array(b).shape for b in state.history] == [(5, 3), (5,), (2, 5), (2,)]
    np.testing.assert_array_equal(blob_to_array(state.history[0]), solver.history[0].numpy())
    saved = load_weights(tmp_path / "snaps" / "_iter_4.caffemodel")
    np.testing.assert_array_equal(saved["ip2"][0], solver.net.layer_by_name("ip2").blobs[0].detach().numpy())


def test_resuming_from_a_solverstate_continues_exactly(tmp_path):
    straight = run_solver(tmp_path / "a", iterations=8)
    first = run_solver(tmp_path / "b", iterations=4, snapshot=4)
    resumed = Solver(first.param, feeder=Batches())
    resumed.restore(str(tmp_path / "b" / "snaps" / "_iter_4.solverstate"))
    resumed.step(4)
    for name in ("ip1", "ip2"):
        for index in range(2):
            np.testing.assert_array_equal(resumed.net.layer_by_name(name).blobs[index].detach().numpy(),
                                          straight.net.layer_by_name(name).blobs[index].detach().numpy())


def test_restoring_a_solverstate_of_another_net_is_an_error(tmp_path):
    solver = run_solver(tmp_path, iterations=0)
    state = schema.SolverState(iter=3)
    state.history.append(array_to_blob(np.zeros(3, np.float32)))
    from eigen_depth.caffe import write_solverstate
    from eigen_depth.errors import CaffemodelError
    write_solverstate(state, tmp_path / "other.solverstate")
    with pytest.raises(CaffemodelError, match="1 history blobs but this SGD solver has 4"):
        solver.restore(str(tmp_path / "other.solverstate"))


def test_test_nets_share_the_train_nets_weights(tmp_path):
    solver = run_solver(tmp_path, iterations=1, test_iter=[1], test_interval=100)
    assert solver.test_nets[0].layer_by_name("ip1").blobs[0] is solver.net.layer_by_name("ip1").blobs[0]
    torch.testing.assert_close(solver.test_nets[0].layer_by_name("ip2").blobs[1],
                               solver.net.layer_by_name("ip2").blobs[1])


def test_the_solver_leaves_torchs_and_numpys_global_generators_alone():
    # Dropout draws from the solver's own generator, seeded from (random_seed, iteration)
    net = NET.replace('layer { name: "relu" type: "ReLU" bottom: "h" top: "h" }',
                      'layer { name: "relu" type: "ReLU" bottom: "h" top: "h" }\n'
                      'layer { name: "drop" type: "Dropout" bottom: "h" top: "h" dropout_param { dropout_ratio: 0.5 } }')
    net = net.replace("inner_product_param { num_output: 5 }",
                      'inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 1 } }')

    def run():
        param = parse_text(schema.SolverParameter, f"net_param {{ {net} }} base_lr: 0.1 random_seed: 3 "
                                                   f'lr_policy: "fixed" max_iter: 3 snapshot_after_train: false display: 0')
        solver = Solver(param, feeder=Batches())
        solver.step(3)
        return [p.detach().clone() for p in solver.net.parameters()]

    torch.manual_seed(123)
    np.random.seed(123)
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    first = run()
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state()[1:3], numpy_state[1:3]))
    torch.manual_seed(999)  # another global state gives the same run
    for a, b in zip(first, run()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_sigmoid_rate_past_a_doubles_range_is_zero_and_a_policy_without_a_rate_is_refused():
    from eigen_depth.errors import PrototxtError
    from eigen_depth.solver import check_learning_rates, learning_rate
    # 0.01 / (1 + exp(1000 * 1000)): exp overflows a double, C gives inf and the rate 0
    sigmoid = schema.SolverParameter(base_lr=0.01, lr_policy="sigmoid", gamma=1000, stepsize=1000, max_iter=3)
    assert learning_rate(sigmoid, 0) == (0.0, 0)
    assert learning_rate(sigmoid, 1000)[0] == pytest.approx(0.005)      # 0.01 / (1 + e^0)
    check_learning_rates(sigmoid)
    # inv: 0.01 * (1 - iteration) ^ -0.5 is 0 ^ -0.5 at iteration 1 and a negative base's root after it
    inv = schema.SolverParameter(base_lr=0.01, lr_policy="inv", gamma=-1, power=0.5, max_iter=3)
    assert learning_rate(inv, 0)[0] == pytest.approx(0.01)
    with pytest.raises(PrototxtError, match="lr_policy 'inv' with gamma -1, power 0.5 .* at iteration 1"):
        check_learning_rates(inv)
