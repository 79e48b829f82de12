"""The `eigen-depth` command: thin subcommands over the package. Errors a user can cause are printed
as one line on stderr with exit status 2, never as a traceback."""
import argparse
import sys

from .errors import exit_status
from .options import add_device, add_training_winograd, positive_int

COMMANDS = {}


def command(name, help_text):
    """Registers a subcommand: the decorated function gets the parser to fill, returns the runner."""
    def register(build):
        COMMANDS[name] = (help_text, build)
        return build
    return register


def _is_binary(path):
    from .caffe.io import BINARY_EXTENSIONS
    return str(path).lower().endswith(BINARY_EXTENSIONS)


@command("info", "list the layers, blob shapes and parameter count of a prototxt and/or caffemodel")
def _info(parser):
    parser.add_argument("file", help="a .prototxt or .caffemodel")
    parser.add_argument("--weights", help="a .caffemodel whose blobs to show beside the prototxt's layers")

    def run(args):
        from .info import describe
        print(describe(args.file, args.weights))
        return 0
    return run


@command("upgrade", "rewrite a legacy (V1 / old-input) prototxt or caffemodel as V2")
def _upgrade(parser):
    parser.add_argument("input", help="legacy .prototxt or .caffemodel")
    parser.add_argument("output", help="where to write; text or binary chosen by the extension")

    def run(args):
        from .caffe import read_caffemodel, read_prototxt, write_caffemodel, write_prototxt
        from .caffe.io import require_layers
        from .caffe.schema import NetParameter
        from .outputs import refuse_inputs
        refuse_inputs([args.output], [args.input], "name another OUT file (the input stays as it is)")
        net = read_caffemodel(args.input) if _is_binary(args.input) else read_prototxt(args.input, NetParameter)
        require_layers(net, args.input, "nothing to upgrade")
        if _is_binary(args.output):
            write_caffemodel(net, args.output)
        else:
            write_prototxt(net, args.output)
        print(f"wrote {args.output} ({len(net.layer)} layers, V2)")
        return 0
    return run


@command("fold-batch-norm", "write a training snapshot of the CPU recipe (with its BatchNorm and Scale layers) "
                            "as the thesis's net, the normalisation folded into the layers before it")
def _fold_batch_norm(parser):
    parser.add_argument("input", help="a .caffemodel from OUT/<stage>/training/ (or from `caffe train` with the "
                                      "solver that a CPU-recipe run saved)")
    parser.add_argument("output", help="the .caffemodel to write; it loads into the thesis's deploy prototxt")

    def run(args):
        from .batch_norm import fold_caffemodel
        from .outputs import refuse_inputs
        refuse_inputs([args.output], [args.input], "name another OUTPUT file (the input stays as it is)")
        layers = fold_caffemodel(args.input, args.output)
        print(f"wrote {args.output}: folded the normalisation of {', '.join(layers)}")
        return 0
    return run


@command("time", "average forward and forward-backward time per layer and in total (like caffe time)")
def _time(parser):
    parser.add_argument("--model", required=True, help="deploy .prototxt")
    parser.add_argument("--weights", help=".caffemodel (random inputs either way; weights only change values)")
    parser.add_argument("--iterations", type=positive_int, default=10)
    parser.add_argument("--batch", type=positive_int, help="batch size (default: the prototxt's)")
    add_device(parser, default="cpu")
    parser.add_argument("--forward-only", action="store_true", help="skip the backward timings")

    def run(args):
        from .devices import resolve_device
        from .timing import time_model
        print(time_model(args.model, args.weights, args.iterations, args.batch, resolve_device(args.device),
                         backward=not args.forward_only))
        return 0
    return run


@command("train", "train a net with a Caffe solver (like caffe train); torchrun for several processes; "
                  "with --stage, the thesis's staged pipeline, with --family fcrn|densedepth its successors "
                  "(eigen-depth train --stage all -h)")
def _train(parser):
    parser.add_argument("--solver", required=True, help="solver .prototxt")
    parser.add_argument("--weights", help="caffemodel(s) to copy by layer name first, comma-separated")
    parser.add_argument("--snapshot", help=".solverstate to resume from")
    add_device(parser)
    parser.add_argument("--data-root", help="folder the Data layers' sources are relative to")
    parser.add_argument("--data", choices=["lmdb", "pairs", "synthetic"],
                        help="read LMDBs (default), *_colors/*_depth folders, or rendered scenes")
    parser.add_argument("--iters", type=positive_int, help="override the solver's max_iter")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still written)")
    add_training_winograd(parser)

    def run(args):
        from .devices import resolve_device
        from .train import run_training
        run_training(args.solver, args.weights, args.snapshot, resolve_device(args.device), args.data_root,
                     args.data, progress=not args.no_progress, max_iter=args.iters, winograd=args.winograd)
        return 0
    return run


@command("pycaffe", "run an unmodified pycaffe program: eigen-depth pycaffe SCRIPT.py [ARGS] | -m MODULE [ARGS]")
def _pycaffe(parser):
    parser.add_argument("program", nargs=argparse.REMAINDER, help="SCRIPT.py [ARGS] or -m MODULE [ARGS]")

    def run(args):  # reached only through --help listings: main() hands `pycaffe ...` over before parsing
        from .pycaffe.__main__ import main as run_pycaffe
        return run_pycaffe(args.program)
    return run


@command("nets", "list the thesis's networks and solvers shipped with the package (for --model / --solver)")
def _nets(parser):
    def run(args):
        from .prototxt import listing
        print(listing())
        return 0
    return run


@command("test", "run a TEST-phase net for N batches and print its outputs (like caffe test)")
def _test(parser):
    parser.add_argument("--model", required=True, help="train/test .prototxt (its TEST phase runs)")
    parser.add_argument("--weights", required=True, help=".caffemodel")
    parser.add_argument("--iterations", type=positive_int, default=50)
    add_device(parser)
    parser.add_argument("--data-root", help="folder the Data layers' sources are relative to")
    parser.add_argument("--data", choices=["lmdb", "pairs", "synthetic"])

    def run(args):
        from .devices import resolve_device
        from .train import run_test
        run_test(args.model, args.weights, args.iterations, resolve_device(args.device), args.data_root, args.data)
        return 0
    return run


def _evaluator_command(name, tool, help_text):
    """The evaluator's tools as subcommands: the same options as tools/<tool>.py."""
    @command(name, help_text)
    def build(parser):
        from .evaluate import add_arguments
        add_arguments(parser, tool)

        def run(args):
            from .evaluate import run_args
            return run_args(args, tool)
        return run
    return build


_evaluator_command("test-depth", "test_depth",
                   "evaluate every snapshot of a folder on *colors*/*depth* image pairs (tools/test_depth.py)")
_evaluator_command("get-depth", "get_depth", "predict depth for every image of a folder with every snapshot "
                                             "(tools/get_depth.py)")
_evaluator_command("test-grad", "test_grad", "evaluate gradient-network snapshots (tools/test_grad.py)")


@command("export-onnx", "export a deploy prototxt with its caffemodel as an ONNX model (checked by onnx.checker)")
def _export_onnx(parser):
    parser.add_argument("--model", required=True, help="deploy .prototxt (inputs from Input layers)")
    parser.add_argument("--weights", required=True, help=".caffemodel with the weights of every layer that has any")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--dynamic-batch", action="store_true",
                        help="make the batch axis of every input and output symbolic (default: the prototxt's)")
    parser.add_argument("--opset", type=int, help="ONNX opset version (default 17)")
    parser.add_argument("--verify", action="store_true",
                        help="run the written model with onnxruntime on a random input and compare with PyTorch")

    def run(args):
        from .export import ExportError, check_opset, compare_with_onnxruntime, describe_io, load_net, to_onnx
        from .outputs import refuse_inputs
        refuse_inputs([args.out], [args.model, args.weights], "name another --out file")
        opset = check_opset(args.opset)
        net = load_net(args.model, args.weights)
        model = to_onnx(net, None, args.out, dynamic_batch=args.dynamic_batch, opset=opset)
        print(f"wrote {args.out} (opset {opset}; {describe_io(model)})")
        if args.verify:
            errors = compare_with_onnxruntime(args.out, net, batch=2 if args.dynamic_batch else 1)
            print("onnxruntime vs PyTorch, max |difference| / max |output|: " +
                  ", ".join(f"{name} {value:.2e}" for name, value in errors.items()))
            worst = max(errors.values())
            if not worst <= 1e-4:
                raise ExportError(f"{args.out}: onnxruntime's outputs differ from PyTorch's by {worst:.2e} of their "
                                  f"scale (more than 1e-4): please report this network")
        return 0
    return run


@command("predict", "predict depth (meters) for any images: colour-mapped PNG, 16-bit mm PNG, .npy, optional .ply")
def _predict(parser):
    from .predict import add_arguments
    add_arguments(parser)

    def run(args):
        from .predict import run_args
        return run_args(args)
    return run


def build_parser():
    parser = argparse.ArgumentParser(
        prog="eigen-depth", description="Run, evaluate, train and export Caffe depth networks on PyTorch.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners = {}
    for name, (help_text, build) in COMMANDS.items():
        runners[name] = build(sub.add_parser(name, help=help_text, description=help_text))
    return parser, runners


def _is_staged(argv):
    """`eigen-depth train --stage ...` or `--family ...`: the staged pipeline of tools/train.py."""
    return argv[:1] == ["train"] and any(a in ("--stage", "--family") or a.startswith(("--stage=", "--family="))
                                         for a in argv[1:])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["pycaffe"]:  # the rest is the program and its arguments, not options of ours
        from .pycaffe.__main__ import main as run_pycaffe
        return run_pycaffe(argv[1:])
    if _is_staged(argv):
        from .train import staged_main
        return staged_main(argv[1:], prog="eigen-depth train")
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return exit_status(f"eigen-depth {args.command}", lambda: runners[args.command](args))

if __name__ == "__main__":
    sys.exit(main())
