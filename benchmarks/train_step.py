"""Time of one refining-stage training iteration (docs/specification.md section 3.4, norm_abs, batch 16) on this machine:
forward + backward + SGD update, frozen global/gradient branches under no_grad, data prefetched by the
Data layers from LMDBs of synthetic scenes. `--stage global|gradient` times another stage's iteration;
`--recipe cpu` the CPU recipe's (tools/train.py --recipe cpu: its nets, with batch normalisation while training
unless --no-batch-norm). The frozen convolutions of the refining stage run by Winograd's algorithm unless
--no-winograd, as in training (eigen_depth.layout.winograd_where_frozen); the arithmetic floor still counts
their multiply-adds as a direct convolution's.

    python benchmarks/train_step.py [--stage refine] [--iterations 5] [--batch 16] [--device cpu] [--recipe cpu]
                                    [--no-winograd]
    python benchmarks/train_step.py --family fcrn|densedepth [--iterations 2]   # a successor (docs/successors.md)

Caffe itself cannot be installed here; its time on these 2 cores was 5.8 s per iteration (goal: <= 2.9 s).
As a measured peer, the script also times OpenCV's Caffe runtime (cv2.dnn) on the deploy net's forward
pass alone at the same batch: a lower bound for any Caffe-style iteration, which also needs the backward.
It also prints the iteration's arithmetic floor on this CPU: the multiply-adds of its convolutions and inner
products (each layer's forward; for a layer that learns, its weight gradient and, unless its bottom is the
data, its input gradient) at the rate of a large float32 matrix product measured in the same run.
"""
import argparse
import os
import tempfile
import time

CAFFE_ITERATION_S = 5.8  # Caffe's refining-stage iteration at batch 16 on these 2 cores (reported)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--batch", type=int, help="batch size (default 16 for the refining net; a family's own)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stage", choices=("global", "gradient", "refine"), default="refine",
                        help="the thesis's stage to time (the thesis's default variant; default refine)")
    parser.add_argument("--family", choices=("fcrn", "densedepth"),
                        help="time a successor's iteration instead (its training net's batch unless --batch)")
    parser.add_argument("--recipe", choices=("thesis", "cpu"), default="thesis",
                        help="the thesis's training nets (default) or the CPU recipe's")
    parser.add_argument("--no-batch-norm", action="store_true", help="the CPU recipe without batch normalisation")
    parser.add_argument("--no-winograd", dest="winograd", action="store_false",
                        help="every convolution directly (default: frozen ones of 64 channels or more by Winograd's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eigen_depth_train_step_") as folder:  # rooms, LMDBs, random weights
        if args.family:
            successor(args, folder)
        else:
            stage(args, folder)


def stage(args, folder):
    """One iteration of a thesis stage's training net on rendered rooms in LMDBs, against OpenCV's forward alone."""
    args.batch = args.batch or 16

    import numpy as np
    import torch
    from eigen_depth.data.paired_lmdb import make_lmdb
    from eigen_depth.data.synthetic import make_synthetic
    from eigen_depth.train import (DEFAULT_VARIANTS, data_settings, normalise_for_training, set_gradient_filter,
                                   stage_solver)
    from eigen_depth.solver import Solver

    quiet = dict(progress=False, log=lambda *_: None)
    make_synthetic(2 * args.batch, os.path.join(folder, "pairs"), seed=1, test_fraction=0.2, **quiet)
    make_lmdb(os.path.join(folder, "pairs"), os.path.join(folder, "lmdb"), **quiet)
    param, deploy = stage_solver(args.stage, out=folder, iters=1000, batch=args.batch, test_interval=0, snapshot=0,
                                 recipe=args.recipe)
    folded = None
    if args.recipe == "cpu" and not args.no_batch_norm:
        folded = normalise_for_training(param, deploy, os.path.join(folder, args.stage))
    solver = Solver(param, device=args.device, deploy=folded.training_deploy if folded else deploy,
                    data=data_settings(os.path.join(folder, "lmdb")), winograd=args.winograd)
    set_gradient_filter(solver.net)
    frozen = sum(not needs for needs in solver.net.layer_needs_grad)
    multiply_adds = learning_multiply_adds(solver.net)
    ours, training_peak = time_iterations(solver, args.iterations)
    x = np.random.default_rng(0).uniform(-127, 128, (args.batch, 3, 218, 298)).astype(np.float32)
    cv2_forward = time_opencv_forward(deploy, os.path.join(folder, "random.caffemodel"), x, repeats=2)
    matmul_rate = matrix_product_rate()

    recipe = "thesis's nets" if args.recipe == "thesis" else \
        f"CPU recipe{', batch normalisation after ' + ', '.join(folded.layers) if folded else ''}"
    print(f"{args.stage} stage ({DEFAULT_VARIANTS[args.stage]}, {recipe}), batch {args.batch}, device {args.device}, "
          f"torch {torch.get_num_threads()} threads; {frozen} of {len(solver.net.layers)} layers run without autograd; "
          f"by Winograd's algorithm: {', '.join(solver.winograd_layers) or 'none'}")
    print_rows(ours, cv2_forward)
    floor = 2 * multiply_adds / matmul_rate
    print(f"{'arithmetic floor on this CPU (see above)':<46}{floor:>12.3f}{ours / floor:>11.2f}")
    print(f"  ({2 * multiply_adds / 1e9:.0f} GFLOP at {matmul_rate / 1e9:.0f} GFLOP/s, a 4096x4096 float32 product)")
    if args.stage == "refine":
        print(f"{'Caffe full iteration (reported, 2 cores)':<46}{CAFFE_ITERATION_S:>12.3f}"
              f"{ours / CAFFE_ITERATION_S:>11.2f}")
        print(f"goal <= 2.9 s per iteration: {'met' if ours <= 2.9 else 'NOT met'}")
    if training_peak is not None:
        print(f"peak memory of the training process (data, nets, solver history, {args.iterations + 1} iterations): "
              f"{training_peak:.0f} MiB")


def learning_multiply_adds(net):
    """Multiply-adds of one training iteration's convolutions and inner products: every layer's forward, and
    for a layer that learns its weight gradient plus its input gradient unless the bottom comes straight from
    a data layer (which needs none)."""
    import numpy as np
    data = {top for layer, bottoms, tops in zip(net.layers, net.layer_bottoms, net.layer_tops) if not bottoms
            for top in tops}
    total = 0
    for layer, bottoms, tops, learns in zip(net.layers, net.layer_bottoms, net.layer_tops, net.layer_needs_grad):
        kind = layer.param.type
        if kind not in ("Convolution", "Deconvolution", "InnerProduct"):
            continue
        weights = layer.blobs[0].numel()
        batch, *_ = net.blob_shapes[tops[0]]
        if kind == "InnerProduct":
            forward = batch * weights
        else:  # each weight meets every output position (Deconvolution: every input position)
            spatial = net.blob_shapes[tops[0] if kind == "Convolution" else bottoms[0]][2:]
            forward = batch * weights * int(np.prod(spatial))
        total += forward
        if learns:
            total += forward + (forward if bottoms[0] not in data else 0)
    return total


def matrix_product_rate(size=4096, repeats=5):
    """FLOP/s of the best of `repeats` float32 size x size matrix products with torch on this machine."""
    import torch
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


def time_iterations(solver, iterations):
    """(seconds per iteration after one warm-up iteration, the process's peak memory in MiB then); closes the
    solver."""
    import torch
    from memory import peak_rss_mb
    solver.step(1)  # warm-up: allocations, kernel choice, the data threads' first batches
    start = time.perf_counter()
    solver.step(iterations)
    if solver.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / iterations
    solver.close()
    return seconds, peak_rss_mb()  # before OpenCV's peer run


def time_opencv_forward(deploy, weights, x, repeats):
    """Seconds of one OpenCV forward of the deploy net (random weights written to `weights`) on x."""
    import cv2
    from eigen_depth.testing import write_random_caffemodel
    write_random_caffemodel(deploy, weights, seed=2)
    opencv = cv2.dnn.readNetFromCaffe(deploy, weights)
    opencv.setInput(x)
    opencv.forward()
    start = time.perf_counter()
    for _ in range(repeats):
        opencv.setInput(x)
        opencv.forward()
    return (time.perf_counter() - start) / repeats


def print_rows(ours, cv2_forward):
    print(f"{'':<46}{'s/iteration':>12}{'ours / it':>11}")
    print(f"{'eigen_depth (forward + backward + update)':<46}{ours:>12.3f}{1.0:>11.2f}")
    print(f"{'cv2.dnn forward only (measured, same batch)':<46}{cv2_forward:>12.3f}{ours / cv2_forward:>11.2f}")


def successor(args, folder):
    """One iteration of a successor's training net (its paper's solver, rendered rooms made on the fly at the
    net's sizes), against OpenCV's forward alone of its deploy net at the same batch."""
    import numpy as np
    import torch
    from eigen_depth.solver import Solver
    from eigen_depth.train import data_settings, stage_solver

    param, deploy = stage_solver(args.family, out=folder, iters=1000, batch=args.batch, test_interval=0, snapshot=0)
    solver = Solver(param, device=args.device, deploy=deploy, data=data_settings(kind="synthetic"))
    shape = tuple(solver.net.blob_shapes["X"])
    ours, training_peak = time_iterations(solver, args.iterations)
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    cv2_forward = time_opencv_forward(deploy, os.path.join(folder, "random.caffemodel"), x, repeats=1)
    print(f"{args.family} training net, batch {shape[0]}, device {args.device}, torch {torch.get_num_threads()} "
          f"threads, input {shape[2]}x{shape[3]}")
    print_rows(ours, cv2_forward)
    if training_peak is not None:
        print(f"peak memory of the training process: {training_peak:.0f} MiB")


if __name__ == "__main__":
    main()
