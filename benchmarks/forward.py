"""Forward speed of a deploy net (default: the thesis's refining net, docs/specification.md section 3.4; --model
any other, at its own input size) on random weights: eigen_depth
against OpenCV's Caffe runtime (cv2.dnn) and, when it is installed, onnxruntime on our ONNX export,
side by side in one run, at batch 1 and batch 16.

    python benchmarks/forward.py [--iterations 10] [--device cpu|cuda] [--model P]
                                 [--layout auto|nhwc|nchw|winograd] [--no-winograd]

Ours runs with the evaluator's default layout (--layout auto: the convolutions' layouts tuned over the first
calls, Winograd's algorithm among them unless --no-winograd, eigen_depth.layout); with auto it is also timed
all-NHWC, all-NCHW and all-Winograd in the same run, and its output is compared with the all-NCHW direct one's.

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
        if args.layout == "auto":  # the fixed layouts first, then the tuned one (its tuning calls timed apart)
            fixed = {}
            direct = None
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
        onnx_text = onnx_note
        if session is not None:
            onnx_s = per_image(lambda: session.run(None, {input_name: x}), batch, args.iterations)
            onnx_text = f"{onnx_s:.4f}"
        print(f"{batch:>5}  {ours_s:>18.4f}  {cv2_s:>14.4f}  {ours_s / cv2_s:>6.2f}  {onnx_text:>18}"
              f"   (max difference {difference:.1e} of the output's magnitude{unfused_text}{layout_text})")


if __name__ == "__main__":
    main()
