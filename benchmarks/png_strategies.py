"""Times the evaluator's PNG writing under each of zlib's strategies at one level, and the files' sizes.

    python benchmarks/png_strategies.py [--level 8] [--repeat 3]

Pictures of the kinds test_depth writes for every image, from the real photographs in scikit-image:
- input: each photograph at the net's input size (298x218, RGB);
- GT: V(d) of the Middlebury motorcycle's depth (tools/make_examples.py's conversion), 420x320 windows;
- output: the same depth as a net gives it (reduced to the refining net's 74x54, then zoomed back with the
  evaluator's cubic zoom), V(d), 420x320.
Each picture is encoded as images.encode_png does (OpenCV, the same zlib level, every strategy; all but zlib's
default with Paeth-filtered rows where OpenCV allows it, as the evaluator writes); the decoded pixels must equal
the picture (the script stops otherwise). Prints, per kind and strategy, milliseconds of one core per picture
(best of --repeat) and the mean file size, each against zlib's default strategy (the original's).
"""
import argparse
import importlib.util
import os
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _examples():
    spec = importlib.util.spec_from_file_location("make_examples", os.path.join(ROOT, "tools", "make_examples.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pictures():
    """{kind: [uint8 pixels]} as described above."""
    import cv2
    import skimage.data

    from eigen_depth import images
    from eigen_depth.constants import DEPTH_UNIT_M
    examples = _examples()
    left, _, disparity = skimage.data.stereo_motorcycle()
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket(), left]
    inputs = [cv2.resize(np.ascontiguousarray(p), (298, 218), interpolation=cv2.INTER_AREA) for p in photos]
    depth_m = examples.disparity_to_depth_m(disparity)
    tenth = np.nan_to_num(depth_m, nan=0.0) / DEPTH_UNIT_M
    windows = [tenth[y:y + 320, x:x + 420] for y, x in ((0, 0), (90, 160), (180, 321), (60, 300), (150, 60))]
    gts = [images.to_uint8(images.depth_to_unit(w)) for w in windows]
    small = [cv2.resize(w.astype(np.float32), (74, 54), interpolation=cv2.INTER_AREA) for w in windows]
    outputs = [images.to_uint8(images.depth_to_unit(images.zoom_cubic(s[None], 320, 420)[0])) for s in small]
    return {"input (298x218 RGB)": inputs, "GT V(d) (420x320)": gts, "output V(d) (420x320)": outputs}


def measure(pixels, level, strategy, repeat):
    """(best seconds per picture, mean bytes) of encoding `pixels` at `level` with `strategy`."""
    import cv2

    from eigen_depth.images import encode_png
    best, sizes = float("inf"), []
    for _ in range(repeat):
        start = time.perf_counter()
        encoded = [encode_png(p, level, strategy) for p in pixels]
        best = min(best, (time.perf_counter() - start) / len(pixels))
        sizes = [len(e) for e in encoded]
    for picture, data in zip(pixels, encoded):
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if decoded.ndim == 3:
            decoded = decoded[:, :, ::-1]
        if not np.array_equal(decoded, picture):
            raise SystemExit(f"strategy {strategy}: the decoded pixels differ from the picture")
    return best, float(np.mean(sizes))


def main(argv=None):
    from eigen_depth.constants import PNG_STRATEGIES, PNG_STRATEGY
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", type=int, choices=range(10), default=8, metavar="0-9")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    import cv2
    print(f"OpenCV {cv2.__version__}, zlib level {args.level}; the evaluator's default strategy: {PNG_STRATEGY}")
    print(f"{'pictures':<24}{'strategy':<10}{'ms':>8}{'x default':>11}{'KiB':>9}{'x default':>11}")
    for kind, pixels in pictures().items():
        baseline = measure(pixels, args.level, "default", args.repeat)
        for strategy in PNG_STRATEGIES:
            seconds, size = baseline if strategy == "default" else measure(pixels, args.level, strategy, args.repeat)
            print(f"{kind:<24}{strategy:<10}{seconds * 1000:>8.1f}{seconds / baseline[0]:>11.2f}"
                  f"{size / 1024:>9.1f}{size / baseline[1]:>11.2f}")
    print("decoded pixels equal to the pictures under every strategy")


if __name__ == "__main__":
    main()
