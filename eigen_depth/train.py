"""Training as Caffe did it: `caffe train` / `caffe test` (run_training, run_test) and the thesis's staged
procedure (train_stage, train_all: docs/specification.md section 3).

Stages: (1) global context net from AlexNet's conv1-conv5 (by layer name); (2) gradient net from AlexNet's
conv1; (3) the refining net with stage 1's weights by name, stage 2's with conv1 -> conv1-grad, AlexNet's
conv1 -> conv1-refine, stages 1-2 frozen (their lr_mult 0 in the prototxt: no autograd through them).
The joint nets (3.3) start from AlexNet by name, plus conv1 -> conv1_g for variant A.

Multi-process: under torchrun (WORLD_SIZE > 1) each process joins a process group (gloo on CPU, nccl on
CUDA), reads its own shard of the data and trains with its prototxt batch size; gradients are averaged
over the processes after every iteration (one all_reduce), as Caffe's multi-GPU training did, so K
processes with batch B train like one process with batch K*B. Only rank 0 writes snapshots and logs.
"""
import os

import torch

from . import batch_norm
from .atomic import make_folder
from .caffe import read_prototxt, read_solver, schema
from .constants import GRADIENT_KERNELS
from .errors import EigenDepthError, PrototxtError, exit_status
from .net import CaffeNet, layer_included
from .prototxt import ROOT as PROTOTXT_ROOT
from .prototxt import SUCCESSORS
from .solver import Solver, check_learning_rates

STAGES = {"global": "global_context", "gradient": "gradient", "joint": "joint", "refine": "refining"}
DEFAULT_VARIANTS = {"global": "norm", "gradient": "norm", "joint": "A", "refine": "norm_abs"}
RECIPES = ("thesis", "cpu")
CPU_RECIPE_BATCH = 16
PRETRAINED_FILLER_STD = 0.01  # AlexNet's own gaussian filler, for layers the thesis fills from AlexNet
OUTPUT_STARTS = {"refine": "conv5-refine"}  # the CPU recipe starts this layer's output at its target's mean
TARGET_MEAN_BATCHES = 8  # training batches read for that mean
OUTPUT_LR_MULT = 10  # ... and trains it at this lr_mult, since a Power layer scales it by 0.01 before the loss
# the refining layers that can start by passing stage 1's normalised depth (the last channel of the first one's
# input) on to the output (start_from_global_depth)
REFINING_HEAD = ("conv2-refine", "conv3-refine", "conv4-refine", "conv5-refine")
CARRIED_OFFSET = 8.0  # the carried channel: the depth in standard deviations from its mean, plus this (ReLUs pass it)


# Process group ------------------------------------------------------------------------------------
def init_distributed(device):
    """(rank, world_size) when started by torchrun with WORLD_SIZE > 1 (joining the group), else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank()
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    return rank, dist.get_world_size()


def data_settings(data_root=None, kind=None, seed=None, distributed=None):
    """The DataSettings of a run: the current ones with the command's options applied (nothing global changes)."""
    import dataclasses

    from .data import current
    changes = {}
    if data_root:
        changes["root"] = os.path.abspath(os.fspath(data_root))
    if kind:
        changes["kind"] = kind
    if seed is not None:
        changes["seed"] = seed
    if distributed:
        changes.update(rank=distributed[0], world_size=distributed[1])
    return dataclasses.replace(current(), **changes)


# caffe train / caffe test ----------------------------------------------------------------------
def copy_weights(net, sources):
    """Copies comma-separated caffemodels by layer name (Caffe's --weights); returns the reports."""
    reports = []
    for path in [p for p in (sources or "").split(",") if p]:
        reports.append((path, net.copy_from(path)))
    return reports


def set_gradient_filter(net):
    """Writes the fixed GT-gradient kernels (docs/specification.md 3.2) into every `gradientFilter` layer."""
    for layer in net.layers:
        if layer.name == "gradientFilter":
            weight, *bias = layer.blobs
            kernels = torch.tensor(GRADIENT_KERNELS, dtype=weight.dtype).reshape(weight.shape)
            with torch.no_grad():
                weight.copy_(kernels)
                for blob in bias:
                    blob.zero_()


def run_training(solver, weights=None, snapshot=None, device="cpu", data_root=None, data=None, log_dir=None,
                 progress=True, transfers=(), deploy=None, max_iter=None, minutes=None, snapshots=None, echo=print,
                 folded=None, start=None, winograd=True):
    """`caffe train`: builds the solver, copies --weights (or resumes from --snapshot), trains to max_iter.
    transfers: (caffemodel, {source layer: target layer}) pairs copied after --weights. minutes: instead of
    max_iter, train for about that long (Solver.fit_to_time), with `snapshots` evenly spaced snapshots.
    folded: a FoldedSnapshots that also writes each snapshot with its batch normalisation folded away.
    start: called with the net once the weights are copied (not when resuming), before the first iteration.
    winograd: the Solver's (frozen convolutions by Winograd's algorithm on the CPU). Returns the Solver (its
    last snapshot is `solver.last_snapshot`: the folded one when folded is given)."""
    from .training_log import TrainingLog
    if snapshot and weights:  # as Caffe's `train`
        raise EigenDepthError(f"give --snapshot ({snapshot}) to resume a run or --weights ({weights}) to start one "
                              f"from them, not both")
    device = torch.device(device)
    distributed = init_distributed(device)
    param = solver if isinstance(solver, schema.SolverParameter) else read_solver(solver)
    settings = data_settings(data_root, data, _data_seed(param), distributed)
    if max_iter is not None:
        param = _with(param, max_iter=max_iter)
    folder = None if isinstance(solver, schema.SolverParameter) else os.path.dirname(os.path.abspath(solver))
    try:  # the lr_policy checked before anything is built or written (Caffe finds it at the first update)
        check_learning_rates(param)
    except PrototxtError as error:
        raise PrototxtError(f"{solver if folder else '<solver>'}: {error}") from None
    runner = Solver(param, device=device, deploy=deploy, distributed=distributed, folder=folder, data=settings,
                    path=None if isinstance(solver, schema.SolverParameter) else solver, winograd=winograd)
    rank = distributed[0] if distributed else 0
    set_gradient_filter(runner.net)
    if snapshot:
        runner.restore(snapshot)
    else:
        for path, report in copy_weights(runner.net, weights):
            if rank == 0:
                echo(f"weights from {path}: copied {len(report.copied)} layers"
                     + (f", kept fillers for {', '.join(report.missing)}" if report.missing else ""))
        for path, renames in transfers:
            report = transfer(runner.net, path, renames)
            if rank == 0:
                echo(f"weights from {path}: {', '.join(f'{a} -> {b}' for a, b in report)}")
        if start is not None:
            start(runner.net)
    log_dir = log_dir or os.path.dirname(runner.snapshot_prefix()) or "."
    log = TrainingLog(log_dir, runner.param.max_iter, runner.iter, rank=rank, progress=progress,
                      display=runner.param.display)
    runner.callbacks.append(log)
    last = []

    def remember(event, iteration, values):
        if event == "snapshot":
            last.append(values["caffemodel"] if folded is None else
                        folded.write(values["caffemodel"], iteration) if rank == 0 else folded.path(iteration))
    runner.callbacks.append(remember)
    runner.callbacks.append(_planned(log, echo if rank == 0 else None))
    try:
        runner.solve(seconds=None if minutes is None else 60.0 * minutes, snapshots=snapshots)
    finally:
        curve = log.close()
        runner.close()
    runner.last_snapshot = last[-1] if last else None
    if rank == 0 and curve:
        echo(f"log: {log.csv_path}; loss curve: {curve}")
    return runner


def _data_seed(param):
    """The seed the data layers shuffle with: the solver's random_seed, or None (unseeded) when it is negative."""
    return param.random_seed if param.random_seed >= 0 else None


def _planned(log, echo):
    """A callback that reports a time-fitted run's iteration count (and sets the progress bar's total)."""
    def callback(event, iteration, values):
        if event != "plan":
            return
        if log.bar is not None:
            log.bar.total = values["max_iter"]
            log.bar.refresh()
        if echo:
            echo(f"{values['seconds_per_iteration']:.2f} s per iteration: training to iteration {values['max_iter']}")
    return callback


def _with(param, **fields):
    out = schema.SolverParameter()
    out.CopyFrom(param)
    for name, value in fields.items():
        setattr(out, name, value)
    return out


def transfer(net, caffemodel, renames):
    """Copies the blobs of source layers into differently named target layers ({source: target});
    returns the (source, target) pairs copied."""
    from .caffe import load_weights
    weights = load_weights(caffemodel)
    missing = [name for name in renames if name not in weights]
    if missing:
        raise EigenDepthError(f"{caffemodel}: has no layer {', '.join(missing)} to copy from")
    absent = [target for target in renames.values() if target not in net.layer_names]
    if absent:
        raise EigenDepthError(f"{net.source}: has no layer {', '.join(absent)} to copy {caffemodel} into "
                              f"(the stage's net and its transfer table disagree)")
    net.copy_from({target: weights[source] for source, target in renames.items()})
    return list(renames.items())


def run_test(model, weights, iterations, device="cpu", data_root=None, data=None, echo=print):
    """`caffe test`: the TEST-phase net run `iterations` times; prints each batch's outputs and their
    means (losses times their loss weight, as Caffe does); returns {output: mean}."""
    net = CaffeNet(model, schema.TEST, weights=weights, data=data_settings(data_root, data)).to(torch.device(device))
    set_gradient_filter(net)
    sums = {}
    with torch.no_grad():
        for batch in range(iterations):
            outputs = net({})
            for name, value in outputs.items():
                mean = value.double().mean().item()
                sums[name] = sums.get(name, 0.0) + mean
                echo(f"Batch {batch}, {name} = {mean:.6g}")
    means = {name: total / iterations for name, total in sums.items()}
    for name, mean in means.items():
        weight = net.loss_weight(name)
        suffix = f" (* {weight:g} = {mean * weight:.6g} loss)" if weight else ""
        echo(f"{name} = {mean:.6g}{suffix}")
    return means


# The thesis's stages ------------------------------------------------------------------------------
def stage_files(stage, variant=None, root=PROTOTXT_ROOT, recipe="thesis"):
    """(net_train.prototxt, net_deploy.prototxt, solver.prototxt) of a stage and variant, or of a successor
    family (fcrn, densedepth: one stage, no variants); the solver is the family's `solver.prototxt` (the
    paper's) or, for recipe "cpu", its `solver_cpu.prototxt`."""
    if recipe not in RECIPES:
        raise EigenDepthError(f"unknown recipe '{recipe}': use one of {', '.join(RECIPES)}")
    solver = "solver_cpu.prototxt" if recipe == "cpu" else "solver.prototxt"
    if stage in SUCCESSORS:
        if variant:
            raise EigenDepthError(f"{stage} has no loss variants (--variant is for the thesis's stages)")
        folder = os.path.join(root, stage)
        if not os.path.isfile(os.path.join(folder, solver)):
            raise EigenDepthError(f"{stage} has no {solver} in {folder}")
        return (os.path.join(folder, "net_train.prototxt"), os.path.join(folder, "net_deploy.prototxt"),
                os.path.join(folder, solver))
    if stage not in STAGES:
        raise EigenDepthError(f"unknown stage '{stage}': use one of {', '.join(STAGES)} or all")
    variant = variant or DEFAULT_VARIANTS[stage]
    family = os.path.join(root, STAGES[stage])
    folder = os.path.join(family, variant)
    if not os.path.isdir(folder):
        choices = sorted(d for d in os.listdir(family) if os.path.isdir(os.path.join(family, d)))
        raise EigenDepthError(f"no variant '{variant}' for stage {stage}: use one of {', '.join(choices)}")
    return (os.path.join(folder, "net_train.prototxt"), os.path.join(folder, "net_deploy.prototxt"),
            os.path.join(family, solver))


def _override_batch(net_param, batch):
    for layer in net_param.layer:
        for field in ("data_param", "hdf5_data_param"):
            if layer.HasField(field):
                getattr(layer, field).batch_size = batch


def for_cpu_recipe(net):
    """The CPU recipe's changes to a training net (in place), for a start from fillers with Adam:
    every trainable parameter (lr_mult > 0) gets lr_mult 1, since the thesis's small multipliers protect
    ImageNet weights that are not there and Adam scales each parameter's steps itself; a trainable layer
    whose weight filler is constant 0 (a placeholder for AlexNet's conv1) gets AlexNet's gaussian filler,
    since all-zero weights before a ReLU never receive a gradient. Frozen layers (lr_mult 0) stay frozen."""
    for layer in net.layer:
        specs = list(layer.param)
        if not specs or not any(spec.lr_mult > 0 for spec in specs):
            continue
        _set_trainable_lr_mult(layer, 1.0)
        if layer.HasField("convolution_param"):
            filler = layer.convolution_param.weight_filler
            if filler.type == "constant" and filler.value == 0:
                filler.type, filler.std = "gaussian", PRETRAINED_FILLER_STD
    return net


def start_output_at_target_mean(net_param, layer_name, data, batches=TARGET_MEAN_BATCHES):
    """The CPU recipe's start for a net's metric output (net_param changed in place): the bias filler of
    `layer_name`, whose top reaches a EuclideanLoss through Power layers of power 1, becomes the constant at
    which that output, before its zero-mean weights move, equals the mean of the loss's other bottom (the
    target) over the first `batches` training batches. From the thesis's fillers the refining net's output
    starts near 0 m, and under its Power scale of 0.01 an Adam step moves the bias by about 1e-5 of the
    output: hundreds of iterations go to finding the mean depth. Returns (bias, target mean), or None when
    the layer's top reaches no such loss."""
    path = _affine_path_to_loss(net_param, layer_name)
    if path is None:
        return None
    scale, shift, target = path
    mean = _mean_training_blob(net_param, target, data, batches)
    bias = (mean - shift) / scale
    layer = _layer_named(net_param, layer_name)
    field = "convolution_param" if layer.HasField("convolution_param") else "inner_product_param"
    filler = getattr(layer, field).bias_filler
    filler.Clear()
    filler.type, filler.value = "constant", bias
    return bias, mean


def speed_up_output(net_param, layer_name, multiplier=OUTPUT_LR_MULT):
    """The CPU recipe's step size for a metric output (net_param changed in place): when `layer_name`'s top
    reaches a EuclideanLoss through Power layers that scale it (the refining net's `power-refine`: 0.01), its
    trainable parameters get lr_mult `multiplier`. Adam moves every parameter by about the rate whatever its
    gradient, so a scale of 0.01 in front of the loss makes each step move the output 100x less than the same
    step of an unscaled layer: at lr_mult 1 the refining net's raw maps stay nearly flat (on validation rooms,
    after 60 iterations, 0.15x the spread of the true depth). 1 / 0.01 overshoots (3.0x); 10 reaches it
    (0.98x). Returns the lr_mult set, or None when the layer's top reaches no such loss or is not scaled."""
    path = _affine_path_to_loss(net_param, layer_name)
    if path is None or abs(path[0]) == 1.0:
        return None
    _set_trainable_lr_mult(_layer_named(net_param, layer_name), multiplier)
    return multiplier


def _layer_named(net_param, name):
    return next(layer for layer in net_param.layer if layer.name == name)


def _set_trainable_lr_mult(layer, value):
    """Every trainable param spec of the layer (lr_mult > 0) gets lr_mult `value`; frozen ones stay frozen."""
    for spec in layer.param:
        if spec.lr_mult > 0:
            spec.lr_mult = value


def _training_layers(net_param):
    state = net_param.state
    return [layer for layer in net_param.layer if layer_included(layer, schema.TRAIN, state.level, state.stage)]


def _affine_path_to_loss(net_param, layer_name):
    """(scale, shift, target blob): the output of `layer_name` reaches a EuclideanLoss as scale * top +
    shift through Power layers; None if it does not."""
    layers = _training_layers(net_param)
    names = [layer.name for layer in layers]
    if layer_name not in names:
        raise PrototxtError(f"the CPU recipe's output layer '{layer_name}' is not in the training net")
    blob, scale, shift = layers[names.index(layer_name)].top[0], 1.0, 0.0
    for layer in layers[names.index(layer_name) + 1:]:
        if blob not in layer.bottom:
            continue
        if layer.type == "Power" and layer.power_param.power == 1:
            scale, shift = scale * layer.power_param.scale, shift * layer.power_param.scale + layer.power_param.shift
            blob = layer.top[0]
        elif layer.type == "EuclideanLoss":
            return scale, shift, next(bottom for bottom in layer.bottom if bottom != blob)
    return None


def _mean_training_blob(net_param, blob, data, batches):
    """The mean of `blob` over the first `batches` training batches: a net of the data layers and of the
    layers `blob` is computed from, run in the TRAIN phase."""
    total, count = 0.0, 0
    for values in _training_blobs(net_param, [blob], data, batches):
        total, count = total + float(values[blob].sum()), count + values[blob].numel()
    return total / count


def _training_blobs(net_param, blobs, data, batches, weights=None):
    """{blob: float64 tensor} for each of the first `batches` training batches, from a net of the data layers
    and of the layers the blobs are computed from, run in the TRAIN phase with `weights` ({layer: [arrays]},
    by layer name) where given."""
    layers, needed, kept = _training_layers(net_param), set(blobs), []
    for layer in reversed(layers):
        if not layer.bottom or needed.intersection(layer.top):
            kept.append(layer)
            needed.update(layer.bottom)
    sub = schema.NetParameter()
    sub.name = net_param.name
    sub.state.CopyFrom(net_param.state)
    sub.layer.extend(reversed(kept))
    with torch.no_grad(), CaffeNet(sub, schema.TRAIN, data=data) as net:
        if weights is not None:
            net.copy_from(weights, share=False)
        for _ in range(batches):
            values = net.forward(keep_blobs=True)
            yield {blob: values[blob].double() for blob in blobs}


def start_from_global_depth(net, net_param, data, batches=TARGET_MEAN_BATCHES):
    """The CPU recipe's start for the refining net (`net`, built from the training net `net_param`, with stage
    1 and 2's weights in it; changed in place): instead of noise around the mean depth, its output starts as
    the least-squares line a + s * D from stage 1's depth to the loss's target, fitted over the first
    `batches` training batches. The net reads that depth normalised per image (`depthMVN`) and upsampled by
    `upsample-global` into the last input channel of conv2-refine; that Deconvolution (kernel 2, stride 2,
    Caffe's bilinear filler, whose weights at that size are 1 and 0) puts each value at the top-left pixel of
    its 2x2 block and 0 at the other three. D is that channel summed over each pixel's 2x2 neighbourhood up
    and to the left, which holds exactly one of those values: the map upsampled by repetition. Output channel
    0 of each refining convolution carries D on, standardised by its mean m and standard deviation v over
    those batches and raised by K = CARRIED_OFFSET:

        conv2-refine: (D - m) / v + K (1 / v on that 2x2 neighbourhood of its kernel, bias K - m / v);
        conv3-refine, conv4-refine: channel 0 again (a 1 at the centre, bias 0);
        conv5-refine: channel 0 at the centre times s v / scale, its other taps 0, bias (a + s m - s v K - shift)
        / scale

    (scale, shift: the Power layers between conv5-refine and the loss). The ReLUs pass the channel while D is
    less than K standard deviations below its mean. A Scale after a BatchNorm (the recipe's normalisation
    while training, which standardises the channel by its own batch) gets factor 1 and bias K there. The other
    channels keep their fillers: the net starts where stage 1 is and learns the rest from the image and the
    gradients. Returns (a, s), or None when the net has no such head."""
    names = {layer.name for layer in net_param.layer}
    path = _affine_path_to_loss(net_param, REFINING_HEAD[-1]) if set(REFINING_HEAD) <= names else None
    if path is None:
        return None
    scale, shift, target = path
    carried = _layer_named(net_param, REFINING_HEAD[0]).bottom[0]
    n = sd = st = sdd = sdt = 0.0  # the count, and the sums of d, t, d^2 and d t
    for values in _training_blobs(net_param, [carried, target], data, batches, net.weights_dict()):
        d, t = _filled(values[carried][:, -1:]), values[target]
        if d.shape != t.shape:
            raise EigenDepthError(f"{net_param.name}: {carried}'s last channel {tuple(d.shape)} and the target "
                                  f"{target} {tuple(t.shape)} differ in shape: no depth to start from")
        n, sd, st = n + d.numel(), sd + float(d.sum()), st + float(t.sum())
        sdd, sdt = sdd + float((d * d).sum()), sdt + float((d * t).sum())
    mean, variance = sd / n, max(sdd / n - (sd / n) ** 2, 1e-12)
    slope = (sdt / n - mean * st / n) / variance
    intercept = st / n - slope * mean
    _carry_channel(net, mean, variance ** 0.5, (slope, intercept), (scale, shift))
    return intercept, slope


def _filled(sparse):
    """(N, 1, H, W) -> each pixel's sum over itself and its neighbours above, to the left and above-left (zero
    outside the map): start_from_global_depth's D."""
    padded = torch.nn.functional.pad(sparse, (1, 0, 1, 0))
    return padded[..., 1:, 1:] + padded[..., :-1, 1:] + padded[..., 1:, :-1] + padded[..., :-1, :-1]


def _carry_channel(net, mean, std, line, power):
    """Sets channel 0 of the refining head to carry conv2-refine's last input channel (start_from_global_depth)."""
    (slope, intercept), (scale, shift) = line, power
    with torch.no_grad():
        for index, name in enumerate(REFINING_HEAD):
            weight, bias = net.layer_by_name(name).blobs
            centre = (weight.shape[2] // 2, weight.shape[3] // 2)
            if name == REFINING_HEAD[-1]:
                weight[0, 0].zero_()
                weight[0, 0][centre] = slope * std / scale
                bias[0] = (intercept + slope * mean - slope * std * CARRIED_OFFSET - shift) / scale
                continue
            weight[0].zero_()
            if index == 0:  # the 2x2 neighbourhood up and to the left of the centre: _filled
                weight[0, -1, centre[0] - 1:centre[0] + 1, centre[1] - 1:centre[1] + 1] = 1.0 / std
                bias[0] = CARRIED_OFFSET - mean / std
            else:
                weight[0, 0][centre], bias[0] = 1.0, 0.0
            if name + batch_norm.SCALE_SUFFIX in net.layer_names:
                factor, offset = net.layer_by_name(name + batch_norm.SCALE_SUFFIX).blobs
                factor[0], offset[0] = 1.0, CARRIED_OFFSET


def stage_solver(stage, variant=None, out="train_out", iters=None, batch=None, solver_file=None,
                 test_interval=None, test_iter=None, snapshot=None, recipe="thesis"):
    """The SolverParameter of a stage: the family's solver (the thesis's, or with recipe "cpu" the CPU
    recipe's) with the variant's train net inline and the overrides applied; snapshots go to
    OUT/<stage>/snaps/_iter_N.* (with the deploy prototxt)."""
    net_file, deploy, default_solver = stage_files(stage, variant, recipe=recipe)
    param = read_solver(solver_file or default_solver)
    net = read_prototxt(net_file, schema.NetParameter)
    if recipe == "cpu" and stage not in SUCCESSORS:  # the successors' CPU solvers keep their nets as written
        for_cpu_recipe(net)
        batch = batch or CPU_RECIPE_BATCH
    if batch:
        _override_batch(net, batch)
    param.ClearField("net")
    param.ClearField("train_net")
    param.net_param.CopyFrom(net)
    param.snapshot_prefix = os.path.join(out, stage, "snaps") + os.sep
    if iters is not None:
        param.max_iter = iters
        if snapshot is None:
            param.snapshot = iters
    if snapshot is not None:
        param.snapshot = snapshot
    if test_interval is not None:
        param.test_interval = test_interval
    if test_iter is not None:
        del param.test_iter[:]
        param.test_iter.append(test_iter)
    return param, deploy


def stage_transfers(stage, variant, alexnet=None, global_snapshot=None, gradient_snapshot=None):
    """(--weights list, [(caffemodel, {source: target})]) for a stage, from docs/specification.md section 3."""
    weights, transfers = [], []
    if stage in ("global", "joint") and alexnet:
        weights.append(alexnet)  # conv1-conv5 by name; AlexNet's fc layers are not in the net
    if stage == "joint" and alexnet and (variant or DEFAULT_VARIANTS["joint"]) == "A":
        transfers.append((alexnet, {"conv1": "conv1_g"}))
    if stage == "gradient" and alexnet:
        transfers.append((alexnet, {"conv1": "conv1"}))
    if stage == "refine":
        if global_snapshot:
            weights.append(global_snapshot)
        if gradient_snapshot:
            from .caffe import load_weights
            names = [n for n in load_weights(gradient_snapshot) if n != "gradientFilter"]
            transfers.append((gradient_snapshot, {n: ("conv1-grad" if n == "conv1" else n) for n in names}))
        if alexnet:
            transfers.append((alexnet, {"conv1": "conv1-refine"}))
    return weights, transfers


def train_stage(stage, variant=None, alexnet=None, global_snapshot=None, gradient_snapshot=None, data=None,
                data_root=None, iters=None, batch=None, out="train_out", device="cpu", solver_file=None,
                test_interval=None, test_iter=None, snapshot=None, progress=True, recipe="thesis", minutes=None,
                snapshots=None, echo=print, weights=None, batch_norm=True, global_start=True, winograd=True):
    """Trains one stage (or a successor family: stage "fcrn" or "densedepth"); returns the path of its last
    snapshot. weights: comma-separated caffemodels copied by layer name first, as Caffe's --weights (for the
    successors a converted ImageNet ResNet-50 / DenseNet-169 with the public prototxts' layer names).
    batch_norm: with the CPU recipe, train the thesis's nets with batch normalisation (eigen_depth.batch_norm):
    the training snapshots go to OUT/<stage>/training/, and each is also written folded, as the thesis's net, to
    OUT/<stage>/snaps/ (the path returned).
    global_start: with the CPU recipe and a stage-1 snapshot, the refining net starts by passing stage 1's
    depth on (start_from_global_depth); False starts it from its fillers. winograd: run_training's.
    minutes: train for about that long instead of a number of iterations (with `snapshots` evenly spaced
    snapshots). The solver actually used (with its train net inline) is written to OUT/<stage>/solver.prototxt,
    so the run can be repeated with `caffe train`."""
    if stage in SUCCESSORS and (alexnet or global_snapshot or gradient_snapshot):
        raise EigenDepthError(f"{stage} trains in one stage: give its starting weights with --weights")
    param, deploy = stage_solver(stage, variant, out, iters, batch, solver_file, test_interval, test_iter, snapshot,
                                 recipe)
    _refuse_earlier_run(param, os.path.join(out, stage))
    if recipe == "cpu" and stage in OUTPUT_STARTS:
        start = start_output_at_target_mean(param.net_param, OUTPUT_STARTS[stage],
                                            data_settings(data_root, data, _data_seed(param)))
        if start:
            echo(f"stage {stage}: {OUTPUT_STARTS[stage]}'s bias starts at {start[0]:.4g}, its output at the mean "
                 f"training target {start[1]:.4g}")
        multiplier = speed_up_output(param.net_param, OUTPUT_STARTS[stage])
        if multiplier:
            echo(f"stage {stage}: {OUTPUT_STARTS[stage]} learns at lr_mult {multiplier:g}, since a Power layer "
                 f"scales its output before the loss")
    folded = None
    if recipe == "cpu" and stage not in SUCCESSORS and batch_norm:
        folded = normalise_for_training(param, deploy, os.path.join(out, stage))
        if folded:
            deploy = folded.training_deploy
            echo(f"stage {stage}: batch normalisation while training after {', '.join(folded.layers)}; "
                 f"snapshots with it folded away in {folded.folder}")
    _write_effective_solver(param, os.path.join(out, stage, "solver.prototxt"))
    stage_weights, transfers = stage_transfers(stage, variant, alexnet, global_snapshot, gradient_snapshot)
    weights = [w for w in (weights or "").split(",") if w] + stage_weights
    if stage in SUCCESSORS:
        if not weights:
            echo(f"{stage}: no --weights given: starting from the prototxt's fillers")
    elif not alexnet and stage != "refine":
        echo(f"stage {stage}: no AlexNet caffemodel given: starting from the prototxt's fillers")
    if stage == "refine" and not (global_snapshot and gradient_snapshot):
        echo("stage refine: without --global and --gradient snapshots the frozen branches keep their fillers")
    what = stage if stage in SUCCESSORS else f"stage {stage} ({variant or DEFAULT_VARIANTS[stage]})"
    echo(f"{what}: {param.max_iter} iterations, snapshots in {os.path.dirname(param.snapshot_prefix)}")
    start = None
    if recipe == "cpu" and stage == "refine" and global_start and global_snapshot:
        def start(net):
            line = start_from_global_depth(net, param.net_param, data_settings(data_root, data, _data_seed(param)))
            if line:
                echo(f"stage refine: the output starts as {line[0]:.4g} + {line[1]:.4g} x stage 1's normalised "
                     f"depth (least squares over {TARGET_MEAN_BATCHES} training batches)")
    runner = run_training(param, ",".join(weights), device=device, data_root=data_root, data=data,
                          log_dir=os.path.join(out, stage), progress=progress, transfers=transfers, deploy=deploy,
                          minutes=minutes, snapshots=snapshots, echo=echo, folded=folded, start=start,
                          winograd=winograd)
    return runner.last_snapshot


class FoldedSnapshots:
    """Writes a batch-normalised training net's snapshot with the normalisation folded away (eigen_depth.batch_norm):
    FOLDER/_iter_N.caffemodel for the thesis's deploy prototxt, copied beside it as _iter_N.prototxt."""

    def __init__(self, folder, deploy, training_deploy, layers):
        self.folder, self.deploy, self.training_deploy, self.layers = folder, deploy, training_deploy, layers

    def path(self, iteration):
        return os.path.join(self.folder, f"_iter_{iteration}.caffemodel")

    def write(self, training_snapshot, iteration):
        """Folds the training snapshot just written (a .caffemodel); returns the folded one's path."""
        from .atomic import atomic_copy
        make_folder(self.folder)
        path = self.path(iteration)
        batch_norm.fold_caffemodel(training_snapshot, path)
        atomic_copy(self.deploy, path[:-len(".caffemodel")] + ".prototxt")
        return path

    def refuse_earlier(self):
        """OutputError when FOLDER already holds a snapshot, which this run would overwrite or mix with its own."""
        from .errors import OutputError
        from .experiment import last_snapshot
        found = last_snapshot(self.folder)
        if found:
            raise OutputError(f"{found}: a snapshot of an earlier run, which this run would overwrite or mix with its "
                              f"own; move that run's snapshots away or choose another --out")


def normalise_for_training(param, deploy, stage_dir):
    """The CPU recipe's batch normalisation (eigen_depth.batch_norm), applied to a stage's SolverParameter in place:
    BatchNorm and Scale after its trainable layers that a ReLU follows, training snapshots (with their own deploy
    prototxt, written to STAGE_DIR/training/deploy.prototxt) under STAGE_DIR/training/. Returns the
    FoldedSnapshots that writes the folded ones where the snapshots went before, or None when no layer qualifies."""
    from .caffe.io import write_prototxt
    layers = batch_norm.targets(param.net_param)
    if not layers:
        return None
    batch_norm.insert(param.net_param, layers)
    deploy_net = read_prototxt(deploy, schema.NetParameter)
    present = {layer.name for layer in deploy_net.layer}
    batch_norm.insert(deploy_net, [name for name in layers if name in present], learned=False)
    training = os.path.join(stage_dir, "training")
    folded = FoldedSnapshots(os.path.dirname(param.snapshot_prefix), deploy, os.path.join(training, "deploy.prototxt"),
                             layers)
    folded.refuse_earlier()  # before anything is written
    make_folder(training)
    write_prototxt(deploy_net, folded.training_deploy)
    param.snapshot_prefix = training + os.sep
    return folded


def _refuse_earlier_run(param, stage_dir):
    """OutputError before anything of a stage is written (its solver.prototxt, the training deploy) when its
    snapshot folders hold an earlier run's snapshots: the Solver refuses them too, but only once it starts."""
    from .errors import OutputError
    from .solver import snapshot_after
    if not (param.snapshot or param.snapshot_after_train):
        return
    for prefix in (param.snapshot_prefix, os.path.join(stage_dir, "training", "")):
        found = snapshot_after(prefix)
        if found:
            raise OutputError(f"{found}: a snapshot of an earlier run, which this run would overwrite or mix with "
                              f"its own; move that run's snapshots away or choose another --out")


def _write_effective_solver(param, path):
    from .caffe.io import write_prototxt
    make_folder(os.path.dirname(path))
    write_prototxt(param, path)


def train_all(variants=None, **options):
    """Stages 1 -> 2 -> 3, each stage's last snapshot feeding the next; returns the three snapshots."""
    variants = variants or {}
    global_snapshot = train_stage("global", variants.get("global"), **options)
    gradient_snapshot = train_stage("gradient", variants.get("gradient"), **options)
    refine_snapshot = train_stage("refine", variants.get("refine"), global_snapshot=global_snapshot,
                                  gradient_snapshot=gradient_snapshot, **options)
    return {"global": global_snapshot, "gradient": gradient_snapshot, "refine": refine_snapshot}


def staged_main(argv=None, prog=None):
    """tools/train.py's command line (also `eigen-depth train --stage ...`)."""
    import argparse

    from .devices import resolve_device
    from .options import add_device, add_training_winograd, non_negative_int, positive_float, positive_int
    parser = argparse.ArgumentParser(prog=prog, description="The thesis's staged training (global, gradient, refine), "
                                                          "or one of its successors (FCRN, DenseDepth).")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--stage", choices=list(STAGES) + ["all"], help="a stage of the thesis's pipeline")
    which.add_argument("--family", choices=SUCCESSORS,
                       help="one of the thesis's successors instead (docs/successors.md), trained in one stage")
    parser.add_argument("--weights", help="caffemodel(s), comma-separated, copied by layer name first: for --family "
                                          "a converted ImageNet ResNet-50 (fcrn) or DenseNet-169 (densedepth) with "
                                          "the public deploy prototxts' layer names")
    parser.add_argument("--variant", help="loss variant of the stage (default: the thesis's final choice: "
                                          "global norm, gradient norm, joint A, refine norm_abs)")
    parser.add_argument("--alexnet", help="ImageNet AlexNet caffemodel (V1 or V2) to start from")
    parser.add_argument("--global", dest="global_snapshot", help="stage-1 snapshot for --stage refine")
    parser.add_argument("--gradient", dest="gradient_snapshot", help="stage-2 snapshot for --stage refine")
    parser.add_argument("--data", choices=["lmdb", "pairs", "synthetic"], default="lmdb")
    parser.add_argument("--data-root", help="folder holding the LMDBs or the train/ and test/ pair folders")
    parser.add_argument("--iters", type=positive_int, help="iterations per stage (default: the solver's max_iter)")
    parser.add_argument("--minutes", type=positive_float, help="train each stage for about this long instead of --iters: "
                                                      "the solver times its first iterations and sets max_iter")
    parser.add_argument("--batch", type=positive_int, help="batch size (default: the prototxt's)")
    parser.add_argument("--test-interval", type=non_negative_int,
                        help="override the solver's test_interval (0: no tests)")
    parser.add_argument("--test-iter", type=positive_int, help="override the solver's test_iter")
    parser.add_argument("--snapshot-every", type=non_negative_int, help="override the solver's snapshot interval")
    parser.add_argument("--solver", help="a solver.prototxt to use instead of the family's")
    parser.add_argument("--recipe", choices=RECIPES, default="thesis",
                        help="thesis: the thesis's solvers (SGD, 100k iterations, from ImageNet AlexNet); cpu: "
                             "solver_cpu.prototxt (Adam, decaying rate), every trainable lr_mult 1, batch 16, "
                             "for a start from fillers on a CPU")
    parser.add_argument("--no-batch-norm", action="store_true",
                        help="with --recipe cpu, train the thesis's nets without the recipe's batch normalisation "
                             "(which is folded away in every snapshot of OUT/<stage>/snaps/)")
    parser.add_argument("--no-global-start", action="store_true",
                        help="with --recipe cpu, start the refining net from its fillers instead of passing stage "
                             "1's depth on (see eigen_depth/prototxt/README.md, \"The CPU recipe\")")
    parser.add_argument("--out", default="train_out", help="output folder: OUT/<stage>/snaps/_iter_N.*")
    add_device(parser)
    add_training_winograd(parser)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.minutes is not None and args.iters is not None:
        parser.error("--minutes and --iters both set the run's length: give one")
    options = dict(alexnet=args.alexnet, data=args.data, data_root=args.data_root, iters=args.iters,
                   batch=args.batch, out=args.out, device=resolve_device(args.device), solver_file=args.solver,
                   test_interval=args.test_interval, test_iter=args.test_iter, snapshot=args.snapshot_every,
                   progress=not args.no_progress, recipe=args.recipe, minutes=args.minutes,
                   batch_norm=not args.no_batch_norm, global_start=not args.no_global_start,
                   winograd=args.winograd)

    def run():
        if args.family:
            print(f"{args.family}: {train_stage(args.family, args.variant, weights=args.weights, **options)}")
        elif args.stage == "all":
            if args.variant:
                raise EigenDepthError("--variant applies to one stage; for --stage all the thesis's variants are used")
            if args.weights:
                raise EigenDepthError("--weights applies to one stage; for --stage all give --alexnet")
            for stage, path in train_all(**options).items():
                print(f"{stage}: {path}")
        else:
            path = train_stage(args.stage, args.variant, global_snapshot=args.global_snapshot,
                               gradient_snapshot=args.gradient_snapshot, weights=args.weights, **options)
            print(f"{args.stage}: {path}")
    return exit_status(prog or "train.py", run)
