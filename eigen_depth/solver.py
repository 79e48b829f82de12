"""Caffe's solvers on CaffeNet: SolverParameter semantics, the update rules, snapshots and resuming.

The update follows sgd_solver.cpp and its siblings exactly, per learnable blob:
    clip (global L2 norm, clip_gradients) -> normalise (diff / iter_size) -> regularise
    (diff += weight_decay * decay_mult * w, L2; or * sign(w), L1) -> the solver's rule with
    local_lr = lr(iter) * lr_mult -> w -= diff
SGD: v = momentum * v + local_lr * diff; w -= v. Nesterov, AdaGrad, RMSProp, AdaDelta and Adam use Caffe's
formulas and history layouts (AdaDelta and Adam keep two history blobs per parameter: all the first
ones, then all the second ones), so .solverstate files interchange with Caffe's.

Snapshots are written after the update when iter % snapshot == 0 and at the end, as
`<prefix>_iter_<N>.caffemodel` + `.solverstate` (+ the deploy prototxt as `<prefix>_iter_<N>.prototxt`
when one is known), atomically; a fresh solve() stops first when its prefix already holds another run's
snapshots, which it would overwrite (a resumed one continues its own run). Data comes from the train net's own Data layers, or from a `feeder`:
a callable returning {top name: batch} for the net's source tops, with `state()`/`restore(state)` so a
resumed run sees the same batches as an uninterrupted one.
"""
import math
import os
import re
import time
from collections import deque

import numpy as np
import torch

from .atomic import atomic_copy, make_folder
from .caffe import array_to_blob, blob_to_array, read_solverstate, read_solver, schema, write_solverstate
from .caffe.io import read_prototxt
from .errors import CaffemodelError, EigenDepthError, OutputError, PrototxtError
from .net import CaffeNet

SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
TIMING_ITERATIONS = 3  # timed after one warm-up iteration to fit a run into a time budget
TWO_HISTORIES = ("AdaDelta", "Adam")


def learning_rate(param, iteration, current_step=0):
    """Caffe's GetLearningRate for `iteration`; returns (rate, current_step) since multistep is stateful.
    PrototxtError where the policy's parameters give no number there (a power of 0 or of a negative base, an
    overflow)."""
    try:
        return _learning_rate(param, iteration, current_step)
    except (ArithmeticError, ValueError) as error:
        raise PrototxtError(f"lr_policy '{param.lr_policy}' with gamma {param.gamma:g}, power {param.power:g} and "
                            f"stepsize {param.stepsize} gives no rate at iteration {iteration} ({error}): change "
                            f"them") from None


def check_learning_rates(param):
    """PrototxtError unless the policy gives a finite rate at every iteration up to max_iter (Caffe finds out at
    the iteration that fails, after the training before it)."""
    current_step = 0
    for iteration in range(max(param.max_iter, 0) + 1):
        rate, current_step = learning_rate(param, iteration, current_step)
        if not math.isfinite(rate):
            raise PrototxtError(f"lr_policy '{param.lr_policy}' gives the rate {rate} at iteration {iteration}: "
                                f"change its gamma, power or stepsize")


def _learning_rate(param, iteration, current_step=0):
    policy, base = param.lr_policy, param.base_lr
    if policy == "fixed":
        return base, current_step
    if policy == "step":
        if param.stepsize <= 0:
            raise PrototxtError("lr_policy 'step' needs a positive stepsize")
        current_step = iteration // param.stepsize
        return base * param.gamma ** current_step, current_step
    if policy == "exp":
        return base * param.gamma ** iteration, current_step
    if policy == "inv":
        return base * (1 + param.gamma * iteration) ** (-param.power), current_step
    if policy == "multistep":
        values = list(param.stepvalue)
        if current_step < len(values) and iteration >= values[current_step]:
            current_step += 1
        return base * param.gamma ** current_step, current_step
    if policy == "poly":
        if param.max_iter <= 0:
            raise PrototxtError(f"lr_policy 'poly' needs a positive max_iter (got {param.max_iter})")
        # Caffe never asks past max_iter (its loop ends there); a resumed run that does gets rate 0, not
        # the complex (or, in C, NaN) power of a negative number.
        return base * max(0.0, 1 - iteration / param.max_iter) ** param.power, current_step
    if policy == "sigmoid":
        try:
            return base * (1 / (1 + math.exp(-param.gamma * (iteration - param.stepsize)))), current_step
        except OverflowError:  # exp beyond a double: C's inf, and the rate 0
            return 0.0, current_step
    raise PrototxtError(f"unknown lr_policy '{policy}': use fixed, step, exp, inv, multistep, poly or sigmoid")


def resolve(path, folder):
    """A path from a solver file: as given when it exists from the working directory (Caffe's rule),
    else relative to the solver's folder."""
    if not path or os.path.isabs(path) or os.path.exists(path) or folder is None:
        return path
    return os.path.join(folder, path)


def snapshot_after(prefix, iteration=-1, kinds=("caffemodel", "solverstate")):
    """The first `<prefix>_iter_N.<kind>` with N > iteration (by default any), or None."""
    folder, stem = os.path.split(prefix)
    folder = folder or "."
    if not os.path.isdir(folder):
        return None
    pattern = re.compile(re.escape(stem) + r"_iter_(\d+)\.(" + "|".join(kinds) + r")$")
    found = sorted((int(match.group(1)), name) for name in os.listdir(folder)
                   for match in [pattern.match(name)] if match and int(match.group(1)) > iteration)
    return os.path.join(folder, found[0][1]) if found else None


class Solver:
    """A Caffe solver: `Solver(solver_prototxt_or_param, device=..., feeder=..., deploy=...)`.

    The train net is built in the TRAIN phase, test nets in the TEST phase sharing the train net's blobs
    by layer name (float32, or `dtype`: float64 runs the same update in double precision). `step(n)`, `solve()`, `snapshot()`, `restore(solverstate)`, `test()`, `iter`.
    winograd: the train net's frozen convolutions of enough channels run by Winograd's algorithm on the CPU in
    float32 (eigen_depth.layout.winograd_where_frozen; their names in `winograd_layers`); False: all directly.
    Their transformed filters are made again when torch sees the weights change (copy_from, restore, an
    in-place torch operation); a caller that writes frozen weights through numpy or `.data` gives False.
    """

    def __init__(self, solver, device="cpu", feeder=None, test_feeders=None, deploy=None, callbacks=(),
                 distributed=None, solver_type=None, folder=None, dtype=None, data=None, path=None, winograd=True):
        if isinstance(solver, schema.SolverParameter):
            self.param, self.folder = solver, folder  # folder: where relative net paths resolve
            self.path = path or "<solver>"  # path: the file it came from, for error messages
        else:
            self.param, self.folder = read_solver(solver), os.path.dirname(os.path.abspath(solver))
            self.path = solver
        self.type = solver_type or self.param.type
        if self.type not in SOLVER_TYPES:
            raise PrototxtError(f"{self.path}: unknown solver type '{self.type}': use one of "
                                f"{', '.join(SOLVER_TYPES)}")
        if self.param.regularization_type not in ("L1", "L2"):
            raise PrototxtError(f"{self.path}: unknown regularization_type '{self.param.regularization_type}': use "
                                f"L1 or L2")
        if self.type == "Adam":  # its bias correction divides by 1 - momentum^t and takes sqrt(1 - momentum2^t)
            for name in ("momentum", "momentum2"):
                if not 0 <= getattr(self.param, name) < 1:
                    raise PrototxtError(f"{self.path}: Adam's {name} must be in [0, 1) (got "
                                        f"{getattr(self.param, name):g})")
        self.device = torch.device(device)
        self.distributed = distributed  # (rank, world_size) when torch.distributed is initialised
        self.data = data  # DataSettings for the nets' Data layers (None: the current ones)
        self.net = self._build_net(schema.TRAIN, self.param.train_state).to(self.device, dtype)
        self.winograd_layers = []
        if winograd and self.device.type == "cpu" and dtype in (None, torch.float32):
            from .layout import winograd_where_frozen
            self.winograd_layers = winograd_where_frozen(self.net)
        # Dropout's own generator: torch's and NumPy's global ones are left to the caller
        self.generator = torch.Generator(device=self.device)
        if self.param.random_seed < 0:
            self.generator.seed()
        self.net.use_generator(self.generator)
        self.test_nets = [self._share(self._build_net(schema.TEST, state)).to(self.device, dtype)
                          for state in self._test_states()]
        self.feeder, self.test_feeders = feeder, list(test_feeders or [])
        self.deploy = deploy if deploy is not None else self._sibling_deploy()
        self.iter, self.current_step = 0, 0
        self.params = self.net.learnable_params()
        count = 2 if self.type in TWO_HISTORIES else 1
        self.history = [torch.zeros_like(info.parameter) for _ in range(count) for info in self.params]
        self.losses = deque(maxlen=max(1, self.param.average_loss))
        self.smoothed_loss = None
        self.callbacks = list(callbacks)

    # Nets -------------------------------------------------------------------------------------
    def _net_source(self):
        p = self.param
        if p.HasField("net_param") or p.HasField("train_net_param"):
            return p.train_net_param if p.HasField("train_net_param") else p.net_param, "<inline net>"
        path = p.train_net or p.net
        if not path:
            raise PrototxtError(f"{self.path}: the solver names no net: set `net: \"net_train.prototxt\"`")
        given, path = path, resolve(path, self.folder)
        if not os.path.exists(path):
            raise PrototxtError(f"{self.path}: names the net '{given}', which does not exist ({path}); correct its "
                                f"`net:` (a relative path is read from the working folder, else from the solver's)")
        return read_prototxt(path, schema.NetParameter), path

    def _build_net(self, phase, state):
        net_param, source = self._net_source()
        stages = tuple(state.stage) if state is not None else ()
        level = state.level if state is not None else 0
        seed = self.param.random_seed if self.param.random_seed >= 0 else None
        return CaffeNet(net_param, phase, level=level, stages=stages, source=source, seed=seed, data=self.data)

    def _test_states(self):
        if not len(self.param.test_iter):
            return []
        states = list(self.param.test_state)
        return [states[i] if i < len(states) else None for i in range(len(self.param.test_iter))]

    def _share(self, test_net):
        """Caffe's ShareTrainedLayersWith: the test net uses the train net's blobs, by layer name."""
        train = {layer.name: layer for layer in self.net.layers}
        for layer in test_net.layers:
            source = train.get(layer.name)
            if source is None or not len(layer.blobs):
                continue
            for index, blob in enumerate(source.blobs):
                if index < len(layer.blobs):
                    if layer.blobs[index].shape != blob.shape:
                        raise EigenDepthError(f"test net layer '{layer.name}' blob {index} has shape "
                                              f"{tuple(layer.blobs[index].shape)}, the train net's "
                                              f"{tuple(blob.shape)}")
                    layer.blobs[index] = blob
        return test_net

    def _sibling_deploy(self):
        _, source = self._net_source()
        if source and source.endswith("net_train.prototxt"):
            candidate = source[: -len("net_train.prototxt")] + "net_deploy.prototxt"
            if os.path.exists(candidate):
                return candidate
        return None

    # Learning rate and update ------------------------------------------------------------------
    def learning_rate(self):
        """Caffe's rate at the current iteration; a bad lr_policy is found here, at the first update, as in
        Caffe (a solver built only for its nets needs none), and named with the solver's file."""
        try:
            rate, self.current_step = learning_rate(self.param, self.iter, self.current_step)
        except PrototxtError as error:
            raise PrototxtError(f"{self.path}: {error}") from None
        return rate

    def _clip_gradients(self):
        clip = self.param.clip_gradients
        if clip < 0:
            return
        grads = [info.parameter.grad for info in self.params if info.parameter.grad is not None]
        norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
        if norm > clip:
            for grad in grads:
                grad.mul_(clip / norm)

    def apply_update(self):
        """One Caffe ApplyUpdate on the gradients accumulated in .grad."""
        rate = self.learning_rate()
        self._clip_gradients()
        p = self.param
        count = len(self.params)
        with torch.no_grad():
            for index, info in enumerate(self.params):
                weight = info.parameter
                if weight.grad is None:
                    if info.lr_mult == 0:
                        continue
                    weight.grad = torch.zeros_like(weight)
                diff = weight.grad
                if p.iter_size > 1:
                    diff.div_(p.iter_size)
                decay = p.weight_decay * info.decay_mult
                if decay:
                    if p.regularization_type == "L2":
                        diff.add_(weight, alpha=decay)
                    elif p.regularization_type == "L1":
                        diff.add_(torch.sign(weight), alpha=decay)
                    else:
                        raise PrototxtError(f"unknown regularization_type '{p.regularization_type}': use L1 or L2")
                self._rule(index, count, diff, rate * info.lr_mult, weight)
        return rate

    def _rule(self, index, count, diff, local_rate, weight):
        """Applies the solver type's update of parameter `index` to `weight` (in place)."""
        p, history = self.param, self.history
        h = history[index]
        if self.type == "SGD":
            h.mul_(p.momentum).add_(diff, alpha=local_rate)
            weight.sub_(h)
            return
        if self.type == "Adam":
            # m in history[index], v in history[count + index]; t = iter + 1. In place, without temporaries:
            # for the global net's 64M parameters the update is a large part of a training step.
            m, v = h, history[count + index]
            beta1, beta2 = p.momentum, p.momentum2
            m.mul_(beta1).add_(diff, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(diff, diff, value=1 - beta2)
            t = self.iter + 1
            correction = math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
            # the update goes into diff, as in Caffe (diff holds the update after a step)
            update = torch.sqrt(v, out=diff).add_(p.delta)
            torch.div(m, update, out=update).mul_(local_rate * correction)
            weight.sub_(update)
            return
        weight.sub_(self._adaptive_update(index, count, diff, local_rate, h))

    def _adaptive_update(self, index, count, diff, local_rate, h):
        p, history = self.param, self.history
        if self.type == "Nesterov":
            previous = h.clone()
            h.mul_(p.momentum).add_(diff, alpha=local_rate)
            return h * (1 + p.momentum) - previous * p.momentum
        if self.type == "AdaGrad":
            h.add_(diff * diff)
            return local_rate * diff / (h.sqrt() + p.delta)
        if self.type == "RMSProp":
            h.mul_(p.rms_decay).add_(diff * diff, alpha=1 - p.rms_decay)
            return local_rate * diff / (h.sqrt() + p.delta)
        if self.type == "AdaDelta":
            update_history = history[count + index]
            h.mul_(p.momentum).add_(diff * diff, alpha=1 - p.momentum)
            update = ((update_history + p.delta) / (h + p.delta)).sqrt_() * diff
            update_history.mul_(p.momentum).add_(update * update, alpha=1 - p.momentum)
            return local_rate * update
        raise PrototxtError(f"unknown solver type '{self.type}': use one of {', '.join(SOLVER_TYPES)}")

    # Iterations --------------------------------------------------------------------------------
    def _batch(self, feeder):
        if feeder is None:
            return {}
        return {name: torch.as_tensor(value).to(self.device, non_blocking=True) for name, value in feeder().items()}

    def forward_backward(self):
        """One forward and backward pass of the train net; returns the loss (a float)."""
        blobs = self.net(self._batch(self.feeder))
        loss = self.net.total_loss(blobs)
        if loss is None:
            raise EigenDepthError(f"{self.net.source}: the train net has no loss layer (no loss_weight)")
        if loss.requires_grad:
            loss.backward()
        return loss.item()

    def _all_reduce_gradients(self):
        if not self.distributed:
            return
        import torch.distributed as dist
        world = self.distributed[1]
        grads = [info.parameter.grad for info in self.params if info.parameter.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat.div_(world)  # Caffe's multi-GPU averages the per-device gradients
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
            offset += grad.numel()

    def step(self, iterations):
        """Caffe's Solver::Step: test at test_interval, iter_size forward/backward passes, the update,
        snapshots at `snapshot` iterations."""
        p = self.param
        for _ in range(iterations):
            if p.test_interval and self.iter % p.test_interval == 0 and (self.iter > 0 or p.test_initialization):
                self._notify("test", self.iter, self.test())
            if p.random_seed >= 0:
                # seeding Dropout's generator from (random_seed, iter) makes every iteration's masks
                # independent of where a run started, so resumed runs match exactly.
                self.generator.manual_seed((p.random_seed * 1_000_003 + self.iter) % 2**63)
            for info in self.params:
                info.parameter.grad = None
            loss = sum(self.forward_backward() for _ in range(max(1, p.iter_size))) / max(1, p.iter_size)
            self._all_reduce_gradients()
            self.losses.append(loss)
            self.smoothed_loss = sum(self.losses) / len(self.losses)
            rate = self.apply_update()
            self.iter += 1
            self._notify("iteration", self.iter, {"loss": loss, "smoothed_loss": self.smoothed_loss, "lr": rate})
            if p.snapshot and self.iter % p.snapshot == 0:
                self.snapshot()

    def solve(self, resume=None, seconds=None, snapshots=None):
        """Runs to max_iter (from a .solverstate when given), then the final snapshot and test. With
        `seconds`, max_iter is first chosen so that the run takes about that long (fit_to_time)."""
        if resume:
            self.restore(resume)
        p = self.param
        self._refuse_earlier_snapshots()
        if seconds is not None:
            self.fit_to_time(seconds, snapshots)
        self.step(max(0, p.max_iter - self.iter))
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if p.test_interval and self.iter % p.test_interval == 0:
            self._notify("test", self.iter, self.test())

    def fit_to_time(self, seconds, snapshots=None):
        """Sets max_iter so that training from here takes about `seconds`: runs one warm-up iteration and
        TIMING_ITERATIONS timed ones (they count as training), then divides the time left by the time per
        iteration. With `snapshots`, the snapshot interval becomes max_iter // snapshots. Announces the
        plan to the callbacks as the event "plan" with {"max_iter": N}. The learning-rate policy sees the
        final max_iter from then on (only "poly" depends on it)."""
        p = self.param
        started, snapshot = time.perf_counter(), p.snapshot
        p.snapshot = 0  # no snapshot during the timing
        self.step(1)
        timed = time.perf_counter()
        self.step(TIMING_ITERATIONS)
        now = time.perf_counter()
        per_iteration = (now - timed) / TIMING_ITERATIONS
        p.max_iter = self.iter + max(0, int((seconds - (now - started)) / per_iteration))
        if self.distributed:  # every process must stop at the same iteration: the slowest one's plan
            import torch.distributed as dist
            plan = torch.tensor([p.max_iter], dtype=torch.int64, device=self.device)
            dist.all_reduce(plan, op=dist.ReduceOp.MIN)
            p.max_iter = int(plan.item())
        p.snapshot = max(1, p.max_iter // snapshots) if snapshots else snapshot
        self._notify("plan", self.iter, {"max_iter": p.max_iter, "seconds_per_iteration": per_iteration})
        return p.max_iter

    def test(self):
        """Runs every test net test_iter[i] times; returns {'net i/blob': mean value} (Caffe's TestAll).
        Loss outputs are reported times their loss weight, as Caffe prints them."""
        results = {}
        for index, net in enumerate(self.test_nets):
            feeder = self.test_feeders[index] if index < len(self.test_feeders) else None
            sums = {}
            with torch.no_grad():
                for _ in range(self.param.test_iter[index]):
                    blobs = net(self._batch(feeder))
                    for name, value in blobs.items():
                        sums[name] = sums.get(name, 0.0) + value.double().mean().item() * (net.loss_weight(name) or 1.0)
            for name, total in sums.items():
                results[f"test{index}/{name}"] = total / self.param.test_iter[index]
        return results

    def _notify(self, event, iteration, values):
        for callback in self.callbacks:
            callback(event, iteration, values)

    # Snapshots -------------------------------------------------------------------------------
    def _earlier_snapshot(self):
        """The first snapshot under this run's prefix that it would overwrite or mix with its own: for a fresh
        run (iteration 0) any; for a resumed one a complete snapshot (its .solverstate) after the iteration it
        resumes from, of a run that went further (a later .caffemodel alone is what a run stopped while
        writing that snapshot left, which resuming writes again); None when there is none or the run writes no
        snapshots."""
        p = self.param
        if not (p.snapshot or p.snapshot_after_train):
            return None
        if self.iter > 0:
            return snapshot_after(self.snapshot_prefix(), self.iter, ("solverstate",))
        return snapshot_after(self.snapshot_prefix())

    def _refuse_earlier_snapshots(self):
        """OutputError before the first iteration when this run would overwrite another run's snapshot
        (rank 0 looks: it is the one that writes; every rank stops)."""
        rank = self.distributed[0] if self.distributed else 0
        found = self._earlier_snapshot() if rank == 0 else None
        if self.distributed:
            import torch.distributed as dist
            flag = torch.tensor([1.0 if found else 0.0], device=self.device)
            dist.all_reduce(flag)
            if flag.item() and not found:
                raise OutputError(f"{self.snapshot_prefix()}_iter_*: rank 0 found an earlier run's snapshots there")
        if found and self.iter > 0:
            raise OutputError(f"{found}: a later snapshot than iteration {self.iter}, which this run resumes from, "
                              f"so it would be overwritten; resume from the last one, or move the later ones away")
        if found:
            raise OutputError(f"{found}: a snapshot of an earlier run under this run's snapshot prefix, which a "
                              f"fresh run would overwrite or mix with its own; move that run's snapshots away, "
                              f"choose another snapshot_prefix (or --out), or resume it with --snapshot")

    def snapshot_prefix(self):
        prefix = self.param.snapshot_prefix
        if not prefix:
            _, source = self._net_source()
            prefix = os.path.splitext(source)[0] if source and not source.startswith("<") else "snapshot"
        return resolve(prefix, None)

    def snapshot(self):
        """Writes <prefix>_iter_<N>.caffemodel, .solverstate and (when known) .prototxt; returns the
        caffemodel path. Only rank 0 writes under torch.distributed."""
        base = f"{self.snapshot_prefix()}_iter_{self.iter}"
        if self.distributed and self.distributed[0] != 0:
            import torch.distributed as dist
            dist.barrier()  # rank 0 is writing; afterwards every rank may read the files
            self._notify("snapshot", self.iter, {"caffemodel": base + ".caffemodel"})
            return base + ".caffemodel"
        folder = os.path.dirname(base)
        if folder:
            make_folder(folder)
        model_path = base + ".caffemodel"
        self.net.save(model_path)
        state = schema.SolverState(iter=self.iter, learned_net=model_path, current_step=self.current_step)
        for history in self.history:
            state.history.append(array_to_blob(history.detach().cpu().numpy()))
        write_solverstate(state, base + ".solverstate")
        if self.deploy:
            atomic_copy(self.deploy, base + ".prototxt")
        if self.distributed:
            import torch.distributed as dist
            dist.barrier()
        self._notify("snapshot", self.iter, {"caffemodel": model_path})
        return model_path

    def restore(self, path):
        """Resumes from a .solverstate: iteration, lr step, momentum history, weights (learned_net)."""
        state = read_solverstate(path)
        if len(state.history) != len(self.history):
            raise CaffemodelError(f"{path}: holds {len(state.history)} history blobs but this {self.type} "
                                  f"solver has {len(self.history)}: is it from another net or solver type?")
        with torch.no_grad():
            for index, (blob, history) in enumerate(zip(state.history, self.history)):
                array = blob_to_array(blob, f"{path}: history {index}")
                if array.size != history.numel():
                    raise CaffemodelError(f"{path}: history {index} holds {array.size} values, the net's blob "
                                          f"{tuple(history.shape)} needs {history.numel()}")
                history.copy_(torch.from_numpy(np.ascontiguousarray(array)).reshape(history.shape))
        learned = state.learned_net
        if learned and not os.path.exists(learned):
            learned = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.basename(learned))
        if learned and not os.path.exists(learned):
            raise CaffemodelError(f"{path}: its weights {state.learned_net} are missing (not beside it either): put "
                                  f"that snapshot's .caffemodel back to resume from it")
        if learned:
            self.net.copy_from(learned)
        self.iter, self.current_step = state.iter, state.current_step
        self._seek_data()

    def _tests_before(self, iteration):
        """How many TestAll runs Step made before `iteration` (each reads test_iter batches per test net)."""
        p = self.param
        if not p.test_interval:
            return 0
        return sum(1 for i in range(0, iteration, p.test_interval) if i > 0 or p.test_initialization)

    def _seek_data(self):
        """Positions every data source where an uninterrupted run would be at this iteration. Feeders
        count batches; source layers count records over all processes."""
        world = self.distributed[1] if self.distributed else 1
        train_batches = self.iter * max(1, self.param.iter_size)
        tests = self._tests_before(self.iter)
        plan = [(self.net, self.feeder, train_batches)]
        for index, net in enumerate(self.test_nets):
            feeder = self.test_feeders[index] if index < len(self.test_feeders) else None
            plan.append((net, feeder, tests * self.param.test_iter[index]))
        for net, feeder, batches in plan:
            if feeder is not None and hasattr(feeder, "seek"):
                feeder.seek(batches)
            net.seek(batches, world)

    def close(self):
        """Stops the data layers' background threads."""
        for net in [self.net] + self.test_nets:
            net.close()
