"""Forward speed of a deploy net (default: the thesis's refining net, docs/specification.md section 3.4; --model
any other, at its own input size) on random weights: eigen_depth
against OpenCV's Caffe runtime (cv2.dnn) and, when it is installed, onnxruntime on our ONNX export,
side by side in one run, at batch 1 and batch 16.

    python benchmarks/forward.py [--iterations 10] [--device cpu|cuda] [--model P]
                                 [--layout auto|nhwc|nchw|winograd] [--no-winograd] [--bf16]

Ours runs with the evaluator's default layout (--layout auto: the convolutions' layouts tuned over the first
calls, Winograd's algorithm among them unless --no-winograd, eigen_depth.layout); with auto it is also timed
all-NHWC, all-NCHW and all-Winograd in the same run, and its output is compared with the all-NCHW direct one's.
With --bf16 the same net in bfloat16 (the commands' --bf16; its layouts tuned without Winograd's algorithm) is
timed too, and its output compared with the float32 all-NCHW direct one's and with OpenCV's.

Goals on CPU: batch-1 forward <= 0.7x OpenCV's time; batch-16 per image <= 0.6x OpenCV's.
"""
import argparse
import os
import tempfile
import time

import numpy as np

from eigen_depth.prototxt import ROOT as PROTOTXT_ROOT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(PROTOTXT_ROOT, "refining", "norm_abs", "net_deploy.prototxt")


def per_image(function, batch, iterations):
    function()  # warm-up
    start = time.perf_counter()
    for _ in range(iterations):
        function()
    return (time.perf_counter() - start) / iterations / batch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--layout", choices=("auto", "nhwc", "nchw", "winograd"), default="auto",
                        help="our convolutions' memory layout (default auto, as the evaluator and predict)")
    parser.add_argument("--no-winograd", dest="winograd", action="store_false",
                        help="auto leaves Winograd's algorithm out, as the evaluator's --no-winograd")
    parser.add_argument("--bf16", action="store_true",
                        help="also time the net in bfloat16 (the commands' --bf16) and give its difference")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eigen_depth_forward_") as folder:  # a caffemodel and its export
        compare(args, folder)


def compare(args, folder):
    """Times the three forwards side by side, with the random weights and the ONNX export written in folder."""
    import cv2
    import torch
    from eigen_depth import layout as layouts
    from eigen_depth.inference import build_deploy_net
    from eigen_depth.testing import write_random_caffemodel

    weights = os.path.join(folder, "random.caffemodel")
    write_random_caffemodel(args.model, weights, seed=3)
    net = build_deploy_net(args.model)     # as the evaluator and predict load a snapshot (eigen_depth.inference)
    net.copy_from(weights, strict=True, share=False)
    net.to(args.device)
    input_name = net.input_names[0]
    output = net.output_names[0]
    opencv = cv2.dnn.readNetFromCaffe(args.model, weights)
    net16 = None
    if args.bf16:  # loaded as eigen_depth.inference loads it with --bf16: bfloat16 blobs, then the weights
        net16 = build_deploy_net(args.model).to(args.device, torch.bfloat16)
        net16.copy_from(weights, strict=True, share=False)
    session, onnx_note = None, ""
    try:
        import onnxruntime
        from eigen_depth.export import to_onnx
        onnx_path = os.path.join(folder, "net.onnx")
        to_onnx(args.model, weights, onnx_path, dynamic_batch=True)
        quiet = onnxruntime.SessionOptions()
        quiet.log_severity_level = 3  # errors only: not a warning per unused BatchNorm initializer
        session = onnxruntime.InferenceSession(onnx_path, quiet, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime or the exporter may be absent; the benchmark goes on
        onnx_note = f"n/a ({type(error).__name__}: {str(error).splitlines()[0][:60]})"

    print(f"model: {os.path.relpath(args.model, ROOT)}; torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, device {args.device}, layout {args.layout}; "
          f"OpenCV {cv2.__version__}")
    print(f"{'batch':>5}  {'eigen_depth s/img':>18}  {'cv2.dnn s/img':>14}  {'ratio':>6}  {'onnxruntime s/img':>18}")
    for batch in [int(b) for b in args.batches.split(",")]:
        x = np.random.default_rng(batch).uniform(-127, 128, (batch,) + tuple(net.blob_shapes[input_name][1:]))
        x = x.astype(np.float32)
        x_device = torch.from_numpy(x).to(args.device)

        def ours():
            with torch.no_grad():
                result = net({input_name: x_device})[output]
            if result.is_cuda:
                torch.cuda.synchronize()
            return result

        layout_text = ""
        direct = None
        if args.layout == "auto":  # the fixed layouts first, then the tuned one (its tuning calls timed apart)
            fixed = {}
            for name in ("nhwc", "nchw", "winograd") if args.winograd else ("nhwc", "nchw"):
                layouts.apply(net, name)
                fixed[name] = per_image(ours, batch, args.iterations)
                if name == "nchw":
                    direct = ours().cpu().numpy()
            tuner = layouts.LayoutTuner(net, winograd=args.winograd)
            start, calls = time.perf_counter(), 0
            while tuner.choice is None:
                tuner.run(ours, batch)
                calls += 1
            tuning = time.perf_counter() - start
            chosen = list(tuner.choice.values())
            from_direct = np.abs(ours().cpu().numpy() - direct).max() / np.abs(direct).max()
            layout_text = (f"; tuned {chosen.count('nchw')} NCHW, {chosen.count('winograd')} Winograd of "
                           f"{len(chosen)} convolutions in {calls} calls, {tuning:.2f} s, {from_direct:.1e} from "
                           f"the all-NCHW direct output; "
                           + ", ".join(f"all-{name.upper() if name != 'winograd' else 'Winograd'} {s:.4f} s/img"
                                       for name, s in fixed.items()))
        else:
            layouts.apply(net, args.layout)

        def theirs():
            opencv.setInput(x)
            return opencv.forward()

        ours_s = per_image(ours, batch, args.iterations)
        unfused_text = ""
        if net.fusible:  # the same net with every layer run by itself (--no-fuse), in the same run
            net.fuse = False
            unfused_s = per_image(ours, batch, args.iterations)
            net.fuse = True
            unfused_text = f"; unfused {unfused_s:.4f} s/img, {ours_s / unfused_s:.2f}x"
        cv2_s = per_image(theirs, batch, max(1, args.iterations // 2))
        difference = np.abs(ours().cpu().numpy() - theirs()).max() / np.abs(theirs()).max()
        onnx_text, onnx_s = onnx_note, None
        if session is not None:
            onnx_s = per_image(lambda: session.run(None, {input_name: x}), batch, args.iterations)
            onnx_text = f"{onnx_s:.4f}"
        print(f"{batch:>5}  {ours_s:>18.4f}  {cv2_s:>14.4f}  {ours_s / cv2_s:>6.2f}  {onnx_text:>18}"
              f"   (max difference {difference:.1e} of the output's magnitude{unfused_text}{layout_text})")
        if net16 is not None:
            if direct is None:
                layouts.apply(net, "nchw")
                direct = ours().cpu().numpy()
                layouts.apply(net, args.layout if args.layout != "auto" else tuner.choice)
            time_bf16(net16, x, args, batch, direct, theirs(), ours_s, onnx_s)


def time_bf16(net, x, args, batch, direct, opencv_output, ours_s, onnx_s):
    """The batch's row for the bfloat16 net: its layouts tuned (no Winograd), then timed like the others."""
    import torch
    from eigen_depth import layout as layouts
    from eigen_depth.devices import native_bfloat16
    x16 = torch.from_numpy(x).to(args.device, torch.bfloat16)
    input_name, output = net.input_names[0], net.output_names[0]

    def ours16():
        with torch.no_grad():
            result = net({input_name: x16})[output]
        if result.is_cuda:
            torch.cuda.synchronize()
        return result

    tuner = layouts.LayoutTuner(net, winograd=False)
    while tuner.choice is None:
        tuner.run(ours16, batch)
    bf16_s = per_image(ours16, batch, args.iterations)
    got = ours16().float().cpu().numpy()
    versus_onnx = f", {bf16_s / onnx_s:.2f}x onnxruntime's" if onnx_s else ""
    print(f"{'':>5}  {bf16_s:>18.4f}  bf16 ({'native' if native_bfloat16(args.device) else 'EMULATED'}): "
          f"{bf16_s / ours_s:.2f}x float32's time{versus_onnx}; max difference "
          f"{np.abs(got - direct).max() / np.abs(direct).max():.1e} of the output's magnitude from float32's "
          f"all-NCHW direct output, {np.abs(got - opencv_output).max() / np.abs(opencv_output).max():.1e} "
          f"from OpenCV's")


if __name__ == "__main__":
    main()
