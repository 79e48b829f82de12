"""Depth for any photo: `eigen-depth predict IMAGE_OR_DIR... --model DEPLOY.prototxt --weights W.caffemodel`.

Each image (PNG, JPEG, TIFF, ...; gray, RGB, RGBA, 8 or 16 bits; any size) goes through the evaluator's
steps (docs/specification.md sections 1 and 4): read as float RGB in [0, 1] the pycaffe way, resized to the net's
input bilinearly, x255 - 127; the depth blob (`depth-refine`, else `depth`) mapped back from log depth
with --log; upsampled to the image's own resolution by scipy.ndimage.zoom's cubic spline; times 10 to
meters. Written per image into --out (names as get_depth's: `a_colors.png` -> `a_depth...`):

    <name>_depth.npy        float32 meters, H x W (the input's size)
    <name>_depth_mm.png     uint16 millimetres, round(meters * 1000) clipped to 0..65535
    <name>_depth_color.png  the depth through a colour map (0 .. --max-depth m) with a colour bar in meters
    <name>_points.ply       with --pointcloud: one coloured vertex per pixel of positive, finite depth,
                            x = (u - cx) z / fx, y = (v - cy) z / fy, z = depth (meters; x right, y down,
                            z forward, the camera at the origin), from the NYU v2 colour camera's
                            intrinsics scaled to the image (or --intrinsics)

Every file is written under a temporary name and renamed. Images that cannot be read are reported together
at the end (after the others are done) as one error. Nothing is written when an output would replace one
of the inputs, or a file in --out that this command did not write: it lists the files it writes in
--out/eigen_depth_outputs.json (and does not read them as inputs on a later run); --overwrite replaces
such files, never an input. Two inputs whose outputs would share a name (`a.png` and `a_colors.png`) get
distinct ones (`a_depth...`, `a_colors_depth...`).
"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import images
from .atomic import atomic_write
from .constants import (DEPTH_UNIT_M, LOG_DEPTH_SCALE, LOG_DEPTH_SHIFT, NYU_CX, NYU_CY, NYU_FX, NYU_FY,
                        NYU_IMAGE_HEIGHT, NYU_IMAGE_WIDTH)
from .errors import DatasetError, PartialError
from .inputs import listing
from .outputs import RECORD, OutputRecord, plan_names, recorded_names, refuse_foreign, refuse_inputs

DEFAULT_OUT_DIR = "predictions"
COLOUR_MAP = "viridis"
PLY_FORMATS = ("binary", "ascii")
_BAR_MARGIN, _BAR_TEXT, _MIN_CANVAS_HEIGHT = 10, 56, 120
_MAX_LISTED = 10


# =========================================================================================== camera
@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera intrinsics in pixels of one image: u = fx x / z + cx, v = fy y / z + cy."""
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def nyu(cls, height, width):
        """The NYU Depth v2 colour camera (640x480) scaled to an image of height x width."""
        sx, sy = width / NYU_IMAGE_WIDTH, height / NYU_IMAGE_HEIGHT
        return cls(NYU_FX * sx, NYU_FY * sy, NYU_CX * sx, NYU_CY * sy)


def point_cloud(depth_m, intrinsics):
    """Back-projects a depth map (H, W) in meters: (xyz float32 (K, 3), flat pixel indices (K,)) for the K
    pixels with finite, positive depth, in row-major order."""
    depth = np.asarray(depth_m, dtype=np.float32)
    height, width = depth.shape
    index = np.flatnonzero(np.isfinite(depth) & (depth > 0))
    v, u = np.divmod(index, width)
    z = depth.reshape(-1)[index].astype(np.float64)
    x = (u - intrinsics.cx) * z / intrinsics.fx
    y = (v - intrinsics.cy) * z / intrinsics.fy
    return np.stack([x, y, z], axis=1).astype(np.float32), index


def ply_bytes(xyz, rgb_uint8, binary=True, comments=()):
    """A PLY file with `element vertex` (float x, y, z; uchar red, green, blue): binary little-endian or
    ASCII."""
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    rgb = np.asarray(rgb_uint8, dtype=np.uint8).reshape(-1, 3)
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0"]
    header += [f"comment {' '.join(str(c).split())}" for c in comments]
    header += [f"element vertex {len(xyz)}", "property float x", "property float y", "property float z",
               "property uchar red", "property uchar green", "property uchar blue", "end_header"]
    head = ("\n".join(header) + "\n").encode("ascii", "replace")
    if binary:
        record = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                           ("red", "u1"), ("green", "u1"), ("blue", "u1")])
        table = np.empty(len(xyz), dtype=record)
        table["x"], table["y"], table["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        table["red"], table["green"], table["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        return head + table.tobytes()
    # float32 values printed with 9 significant digits read back exactly
    lines = [f"{a:.9g} {b:.9g} {c:.9g} {r} {g} {bl}" for (a, b, c), (r, g, bl) in zip(xyz.tolist(), rgb.tolist())]
    return head + ("\n".join(lines) + ("\n" if lines else "")).encode("ascii")


# =========================================================================================== pictures
def colour_depth_png(depth_m, max_depth_m=None, compression=3):
    """PNG bytes: the depth map (H x W, meters) through the colour map on [0, max_depth_m] (default: the
    99.5th percentile of the finite positive depths), non-finite pixels black, beside a colour bar with
    ticks in meters. The map occupies the top-left H x W pixels; the canvas is at least 120 pixels high."""
    depth = np.asarray(depth_m, dtype=np.float64)
    height, width = depth.shape
    if max_depth_m is None:
        valid = depth[np.isfinite(depth) & (depth > 0)]
        max_depth_m = float(np.percentile(valid, 99.5)) if valid.size else 1.0
    max_depth_m = max_depth_m if max_depth_m > 0 else 1.0
    canvas_height = max(height, _MIN_CANVAS_HEIGHT)
    bar_x = width + _BAR_MARGIN
    canvas = np.full((canvas_height, bar_x + images.SHEET_BAR + _BAR_TEXT, 3), 255, dtype=np.uint8)
    canvas[:height, :width] = images.colormap(depth, max_depth_m, COLOUR_MAP)
    top = 2 * _BAR_MARGIN + 4
    images.colour_bar(canvas, bar_x, top, canvas_height - top - _BAR_MARGIN, max_depth_m, COLOUR_MAP, "depth m")
    return images.encode_png(canvas, compression)


# =========================================================================================== the network
def from_log_depth(log_depth):
    """The inverse of L(d) = 0.179581 ln(d) + 1 (docs/specification.md section 1), in float32 as the evaluator."""
    return np.exp((np.asarray(log_depth, dtype=np.float32) - LOG_DEPTH_SHIFT) / LOG_DEPTH_SCALE)


class DepthPredictor:
    """A deploy net ready to give depth in meters for RGB images of any size.

    predictor = DepthPredictor("deploy.prototxt", "model.caffemodel")
    depth_m = predictor([rgb])[0]      # rgb: float32 H x W x 3 in [0, 1]; depth_m: float32 H x W
    """

    def __init__(self, prototxt, weights, device="auto", log=False, output_blob=None, channel_order=None,
                 fuse=True, layout="auto", winograd=True, bf16=False):
        from .devices import resolve_device
        from .inference import Snapshot, load_model
        for path, what in ((prototxt, "deploy prototxt (--model)"), (weights, "caffemodel (--weights)")):
            if not os.path.isfile(path):
                raise DatasetError(f"{path}: no such file (the {what})")
        self.device = resolve_device(device) if isinstance(device, str) else device
        name = os.path.splitext(os.path.basename(weights))[0]
        self.model = load_model(Snapshot(name, os.fspath(weights), os.fspath(prototxt)), self.device,
                                output_blob, "depth", fuse=fuse, layout=layout, winograd=winograd, bf16=bf16)
        self.log = log
        # the net's convention (eigen_depth.conventions), with what the caller replaces
        self.convention = self.model.convention.overridden(channel_order=channel_order)

    @property
    def input_size(self):
        """(height, width) of the network's input."""
        return self.model.input_size

    def net_input(self, rgb):
        """float32 RGB in [0, 1] (H x W x 3) -> the net input (3, h, w) as the evaluator makes it."""
        return self.convention.prepare(rgb, *self.input_size)

    def network_depth(self, inputs):
        """(N, 3, h, w) net inputs -> the depth blob in the thesis's unit (meters / 10), (N, oh, ow),
        mapped back from log depth with log=True, then from the net's output unit."""
        raw = self.model.predict(np.asarray(inputs, dtype=np.float32))[:, 0]
        return self.convention.to_tenth_m(from_log_depth(raw) if self.log else raw)

    @staticmethod
    def upsample_m(depth_tenth_m, height, width):
        """One (oh, ow) map in meters / 10 -> float32 meters at height x width (cubic zoom, as the evaluator)."""
        return images.zoom_cubic(depth_tenth_m, height, width) * np.float32(DEPTH_UNIT_M)

    def __call__(self, rgbs):
        """Depth in meters (float32, each image's own H x W) for a list of float32 RGB images in [0, 1]."""
        if not len(rgbs):
            return []
        depth = self.network_depth(np.stack([self.net_input(rgb) for rgb in rgbs]))
        return [self.upsample_m(d, *rgb.shape[:2]) for d, rgb in zip(depth, rgbs)]


# =========================================================================================== files
def find_inputs(paths):
    """[(stem, path)] of the named image files and of every image file in the named folders (sorted; files
    this command wrote there on an earlier run, as its record lists them, are not inputs); a missing path
    or an empty folder is a DatasetError. Inputs whose outputs would clash (same stem) are kept once, with
    a warning."""
    from .inputs import find_images, unique_stems
    if not paths:
        raise DatasetError("no input: name image files or folders")
    found = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            ours = recorded_names(path) | {RECORD}
            found.extend(pair.input_path for pair in find_images(path, exclude=ours))
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise DatasetError(f"{path}: no such file or folder")
    return unique_stems(found)


@dataclass
class Options:
    inputs: list
    model: str
    weights: str
    out_dir: str = DEFAULT_OUT_DIR
    log: bool = False
    pointcloud: bool = False
    ply_format: str = "binary"
    intrinsics: tuple = None          # (fx, fy, cx, cy) in pixels of every input; default: NYU scaled
    max_depth: float = None           # top of the colour scale in meters; default per image
    device: str = "auto"
    batch_size: int = None
    fuse: bool = True
    layout: str = "auto"
    winograd: bool = True             # whether layout "auto" may choose Winograd's algorithm
    bf16: bool = False                # the net computes in bfloat16
    output_blob: str = None
    channel_order: str = None         # None: the net's convention's (eigen_depth.conventions), and so below
    input_mean: tuple = None
    input_scale: float = None
    output_unit_m: float = None
    output_inverse: bool = None
    workers: int = None
    progress: bool = True
    overwrite: bool = False           # replace existing files with the output names that this tool did not write


@dataclass
class _Item:
    stem: str
    path: str
    outputs: dict = None              # {kind: path}
    size: tuple = None                # (H, W) of the input
    net_input: np.ndarray = None
    rgb_uint8: np.ndarray = None      # kept for the point cloud only
    error: str = None


def _prepare(predictor, stem, path, outputs, keep_colours):
    item = _Item(stem, path, outputs)
    try:
        rgb = images.load_rgb(path)
    except DatasetError as error:
        item.error = " ".join(str(error).split())
        return item
    item.size = rgb.shape[:2]
    item.net_input = predictor.net_input(rgb)
    if keep_colours:
        item.rgb_uint8 = np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    return item


def output_paths(out_dir, stem, attempt=0, pointcloud=True):
    """{kind: path} of one input's outputs (attempt: see outputs.output_name)."""
    from .outputs import output_name
    base = os.path.join(out_dir, output_name(stem, "depth", attempt))
    paths = {"npy": base + ".npy", "png16": base + "_mm.png", "color": base + "_color.png"}
    if pointcloud:
        paths["ply"] = os.path.join(out_dir, output_name(stem, "points", attempt) + ".ply")
    return paths


def plan_outputs(options, inputs):
    """{stem: {kind: path}} of every input's outputs, none the same (an output whose usual name another
    input's output takes is named after the whole input name, with a warning). OutputError, before anything
    is written, when an output would overwrite an input (the model and weights included) or, without
    --overwrite, a file in --out that this command did not write."""
    from .errors import warn
    plan, renamed = plan_names([stem for stem, _ in inputs], lambda stem, attempt: output_paths(
        options.out_dir, stem, attempt, options.pointcloud), {os.path.join(options.out_dir, RECORD)})
    paths = [path for outputs in plan.values() for path in outputs.values()]
    advice = "choose another --out folder"
    refuse_inputs(paths, [path for _, path in inputs] + [options.model, options.weights], advice)
    if not options.overwrite:
        refuse_foreign(options.out_dir, [os.path.basename(path) for path in paths],
                       f"{advice}, move it away, or pass --overwrite to replace it")
    if renamed:
        shown = listing((f"{stem} -> {os.path.basename(plan[stem]['npy'])}" for stem in renamed), most=_MAX_LISTED)
        warn(f"outputs named after the whole input name because another input's outputs take the usual name: "
             f"{shown}")
    return plan


def _finish(options, item, depth_tenth_m):
    depth_m = DepthPredictor.upsample_m(depth_tenth_m, *item.size)
    paths = item.outputs
    images.write_npy(paths["npy"], depth_m.astype(np.float32))
    images.write_png(paths["png16"], images.depth_png16_mm(depth_m))
    images.write_bytes(paths["color"], colour_depth_png(depth_m, options.max_depth))
    if options.pointcloud:
        height, width = item.size
        camera = Intrinsics(*options.intrinsics) if options.intrinsics else Intrinsics.nyu(height, width)
        xyz, index = point_cloud(depth_m, camera)
        comments = ["eigen_depth predict: meters, camera at the origin, x right, y down, z forward",
                    f"intrinsics fx {camera.fx:.6f} fy {camera.fy:.6f} cx {camera.cx:.6f} cy {camera.cy:.6f} "
                    f"for {width}x{height}"]
        data = ply_bytes(xyz, item.rgb_uint8.reshape(-1, 3)[index], options.ply_format == "binary", comments)
        with atomic_write(paths["ply"]) as handle:
            handle.write(data)


def run(options):
    """Predicts and writes depth for every input; returns the number of images written. Unreadable images
    do not stop the others: they are named together in one DatasetError at the end."""
    from tqdm import tqdm

    from .devices import default_batch_size
    if options.ply_format not in PLY_FORMATS:
        raise ValueError(f"ply_format must be one of {PLY_FORMATS}")
    inputs = find_inputs(options.inputs)
    plan = plan_outputs(options, inputs)
    predictor = DepthPredictor(options.model, options.weights, options.device, options.log, options.output_blob,
                               fuse=options.fuse, layout=options.layout, winograd=options.winograd,
                               bf16=options.bf16)
    predictor.convention = predictor.convention.with_options(options)
    batch_size = options.batch_size or default_batch_size(predictor.device)
    if batch_size < 1:
        raise DatasetError(f"--batch-size must be at least 1, not {batch_size}")
    record = OutputRecord(options.out_dir, [os.path.basename(p) for outputs in plan.values() for p in outputs.values()])
    workers = options.workers or max(2, min(8, os.cpu_count() or 2))
    chunks = [inputs[i:i + batch_size] for i in range(0, len(inputs), batch_size)]
    failed, written = [], 0
    with ThreadPoolExecutor(workers, thread_name_prefix="eigen-depth-predict") as pool, \
            tqdm(total=len(inputs), unit="img", desc="predict", disable=not options.progress, file=sys.stderr,
                 dynamic_ncols=True) as bar:
        def submit(chunk):
            return [pool.submit(_prepare, predictor, stem, path, plan[stem], options.pointcloud)
                    for stem, path in chunk]

        prepared = submit(chunks[0])
        writing = []
        try:
            for index in range(len(chunks)):
                items = [future.result() for future in prepared]
                if index + 1 < len(chunks):   # decode the next batch while this one runs
                    prepared = submit(chunks[index + 1])
                failed.extend(item.error for item in items if item.error)
                good = [item for item in items if not item.error]
                depth = predictor.network_depth(np.stack([item.net_input for item in good])) if good else []
                for item in good:
                    item.net_input = None
                for previous in writing:     # at most two batches in memory
                    previous.result()
                    written += 1
                    bar.update(1)
                writing = [pool.submit(_finish, options, item, d) for item, d in zip(good, depth)]
                bar.update(len(items) - len(good))
            for future in writing:
                future.result()
                written += 1
                bar.update(1)
        except BaseException:
            for future in list(prepared) + writing:
                future.cancel()
            raise
    if failed:
        shown = listing(failed, "; ", _MAX_LISTED)
        if not written:
            record.undo()
            raise DatasetError(f"no image could be read: {shown}")
        raise PartialError(f"{len(failed)} of {len(inputs)} image(s) could not be read (the others were written to "
                           f"{options.out_dir}): {shown}")
    return written


# =========================================================================================== command line
def _intrinsics(text):
    import argparse
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(np.isfinite(values)) or values[0] <= 0 or values[1] <= 0:
        raise argparse.ArgumentTypeError(f"expected FX,FY,CX,CY in pixels (fx, fy > 0), not {text!r}")
    return values




EXIT_STATUS = ("exit status: 0 when every image was predicted; 1 when some could not be read (each named; the "
               "others' outputs are written); 2 for a user error, including when no image could be read")


def add_arguments(parser):
    from .options import add_inference, positive_float, positive_int
    parser.epilog = EXIT_STATUS
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR",
                        help="image files (PNG, JPEG, TIFF, ...; any size, gray, RGBA or 16-bit) or folders of them")
    parser.add_argument("--model", required=True, help="deploy .prototxt")
    parser.add_argument("--weights", required=True, help=".caffemodel")
    parser.add_argument("--out", dest="out_dir", default=DEFAULT_OUT_DIR,
                        help=f"output folder (default ./{DEFAULT_OUT_DIR})")
    parser.add_argument("--pointcloud", action="store_true",
                        help="also write <name>_points.ply: coloured points in meters (camera: NYU v2 intrinsics "
                             "scaled to the image, or --intrinsics)")
    parser.add_argument("--ply-format", choices=PLY_FORMATS, default="binary",
                        help="binary little-endian (default, compact) or ascii")
    parser.add_argument("--intrinsics", type=_intrinsics, metavar="FX,FY,CX,CY",
                        help="camera intrinsics in pixels of the input images, instead of NYU's scaled")
    parser.add_argument("--max-depth", type=positive_float, metavar="M",
                        help="top of the colour scale in meters (default: per image, its 99.5th percentile)")
    add_inference(parser)
    parser.add_argument("--workers", type=positive_int, help="threads for decoding and writing")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files in --out that have the output names but were not written by this "
                             "command (an input is never replaced)")
    return parser


def run_args(args):
    values = {k: v for k, v in vars(args).items() if k in Options.__dataclass_fields__}
    count = run(Options(**values))
    print(f"wrote depth for {count} image(s) to {args.out_dir}", flush=True)
    return 0
