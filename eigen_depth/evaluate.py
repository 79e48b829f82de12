"""The snapshot evaluator behind tools/test_depth.py, get_depth.py and test_grad.py (REFERENCE.md section 4).

    test_depth INPUT_DIR GT_DIR OUT_DIR SNAPSHOTS_DIR [--log]    metrics, images, results per snapshot
    get_depth  INPUT_DIR OUT_DIR SNAPSHOTS_DIR [--log]           raw depth maps only, any image files
    test_grad  INPUT_DIR GT_DIR OUT_DIR SNAPSHOTS_DIR            gradient networks: RMSE and MVN error

By default the numbers, files and printout are the original's: every `X.caffemodel` in SNAPSHOTS_DIR with
its deploy `X.prototxt` is run on every `*colors*` image of INPUT_DIR (RGB, resized to the net's input,
x255 - 127), its output zoomed (cubic) to the GT's 320x420 and compared with the GT `*depth*` image; the
ten metrics are averaged over the images and the top 10 snapshots per metric printed. OUT_DIR/<snapshot>/
gets the MVN-fitted ("oracle") predictions, OUT_DIR_abs/<snapshot>/ the raw ones.

Added, all without changing those numbers: batched forward on any device, decoding and PNG encoding in
worker threads, the prepared images cached across snapshots, the standard NYU metrics and the oracle's
metrics beside the thesis's, results.csv / results.json (merged across runs), per-image metrics, a contact
sheet per snapshot, metric-vs-iteration plots, progress bars, and clear errors: a snapshot that cannot be
evaluated is skipped with a one-line reason and the exit status says so at the end.

Nothing a run did not write is overwritten. Before writing anything it refuses (one line, exit status 2)
when a per-snapshot folder it would replace holds an input or anything but PNG, NPY and CSV files, or when
OUT_DIR holds a results.json that is not this tool's (another tool's, not JSON, another structure) or a
results.csv / plot without one. Output names never collide: where the usual name is taken (get_depth on a
folder holding both a_colors.png and a_depth.png, whose copy is a_depth.png), an output is named after the
whole input name (a_colors_depth.png), with a warning.

Where the original misbehaved, the port differs (documented in the README's evaluation section): it
averages over the evaluated pairs (the original divided by the number of all files in INPUT_DIR), writes
OUT_DIR_abs beside OUT_DIR even when OUT_DIR ends with a slash, renames only the file name (the original
replaced `_colors` anywhere in the path), and fills a per-snapshot folder under a temporary name before it
replaces the old one.
"""
import argparse
import csv
import fnmatch
import io
import json
import math
import os
import re
import shutil
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import images, metrics
from .atomic import atomic_write
from .constants import (DEPTH_BLOBS, DEPTH_UNIT_M, GRADIENT_BLOB, GRADIENT_GT_HEIGHT, GRADIENT_GT_WIDTH,
                        GRADIENT_KERNELS, GRADIENT_METRICS, GT_HEIGHT, GT_WIDTH, INPUT_BLOB, INPUT_MEAN,
                        INPUT_SCALE, LOG_DEPTH_SCALE, LOG_DEPTH_SHIFT, PNG_COMPRESSION,
                        STANDARD_HIGHER_IS_BETTER, STANDARD_METRICS, THESIS_HIGHER_IS_BETTER, THESIS_METRICS,
                        TOP_COUNT)
from .errors import DatasetError, EigenDepthError, LayerError, OutputError, ShapeError, exit_status
from .errors import one_line as _one_line
from .outputs import is_within, plan_names

TOOLS = ("test_depth", "get_depth", "test_grad")
GT_FORMATS = ("png8", "png16mm", "npy")
ORACLE = "oracle "
RESULTS_CSV, RESULTS_JSON, ITERATION_PLOT = "results.csv", "results.json", "metrics_vs_iteration.png"
PER_IMAGE_CSV, CONTACT_SHEET = "metrics.csv", "contact_sheet.png"
_ITERATION = re.compile(r"^(?P<prefix>.*?)_iter_(?P<iteration>\d+)$")
_MAX_LISTED = 20


def warn(message):
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _listing(names):
    names = list(names)
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def natural_key(text):
    """'snap_iter_2000' before 'snap_iter_10000'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


# =========================================================================================== discovery
@dataclass
class Pair:
    """One input image and (for test_depth / test_grad) its GT file."""
    stem: str                 # the input's file name without its extension: names the outputs
    input_path: str
    gt_path: str = None


def output_name(stem, kind, attempt=0):
    """The original's output names: `a_colors` -> `a_depth` / `a_gt` / `a_grad1`; a stem without
    `_colors` gets `colors` replaced, or `_<kind>` appended (the original would have overwritten the
    input's own output there). When that name is taken (attempt 1, 2, ...): `a_colors_depth`,
    `a_colors_depth_2`, ..."""
    if attempt:
        return f"{stem}_{kind}" + (f"_{attempt}" if attempt > 1 else "")
    if "_colors" in stem:
        return stem.replace("_colors", "_" + kind)
    if "colors" in stem:
        return stem.replace("colors", kind)
    return f"{stem}_{kind}"


def _image_names(tool, options, stem, attempt):
    """{kind: file name} of one input's outputs in a snapshot folder, besides its copy `<stem>.png`."""
    if tool == "test_grad":
        return {kind: output_name(stem, kind, attempt) + ".png" for kind in ("gt1", "gt2", "grad1", "grad2")}
    depth = output_name(stem, "depth", attempt)
    if tool == "test_depth":
        return {"gt": output_name(stem, "gt", attempt) + ".png", "depth": depth + ".png"}
    names = {"depth": depth + ".png"}
    if options.png16:
        names["png16"] = depth + "_mm.png"
    if options.npy:
        names["npy"] = depth + ".npy"
    return names


def plan_image_names(tool, options, pairs):
    """{stem: {kind: file name}} of every file a snapshot folder gets, none the same: the copy of each input
    keeps the input's name (`input`); an output whose usual name is taken (by a copy, as `a_depth.png` is
    when get_depth reads both a_colors.png and a_depth.png, or by another input's output) gets the input's
    whole stem (`a_colors_depth.png`), with a warning."""
    copies = {pair.stem: pair.stem + ".png" for pair in pairs}
    fixed = (PER_IMAGE_CSV, CONTACT_SHEET) if tool != "get_depth" else ()
    plan, renamed = plan_names([pair.stem for pair in pairs], lambda stem, attempt:
                               _image_names(tool, options, stem, attempt), set(copies.values()) | set(fixed))
    if renamed:
        shown = (f"{stem} -> {plan[stem].get('depth') or next(iter(plan[stem].values()))}" for stem in renamed)
        warn(f"outputs named after the whole input name because the usual name is taken by another input's "
             f"file: {_listing(shown)}")
    for stem, names in plan.items():
        names["input"] = copies[stem]
    return plan


def _require_dir(path, what):
    if not os.path.isdir(path):
        raise DatasetError(f"{path}: the {what} is not a folder")


def unique_stems(paths):
    """Keeps the first of several inputs with the same stem (they would write the same outputs)."""
    chosen, seen, clashes = [], {}, []
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in seen:
            clashes.append(f"{os.path.basename(path)} (same name as {os.path.basename(seen[stem])})")
            continue
        seen[stem] = path
        chosen.append((stem, path))
    if clashes:
        warn(f"skipping inputs whose outputs would overwrite another's: {_listing(clashes)}")
    return chosen


def find_pairs(input_dir, gt_dir, gt_format="png8"):
    """The original's pairing: inputs are files named `*colors*` in input_dir (image files only); the GT of
    `a_colors.png` is `a_depth.png` in gt_dir (with --gt-format npy, `a_depth.npy`; if the exact name is
    missing, the same stem with .png is tried). Unpaired files are listed in a warning and skipped; no pair
    at all is a DatasetError."""
    _require_dir(input_dir, "input folder")
    _require_dir(gt_dir, "GT folder")
    names = sorted(os.listdir(input_dir), key=natural_key)
    candidates = [n for n in names if "colors" in n and os.path.isfile(os.path.join(input_dir, n))]
    ignored = [n for n in candidates if not images.is_image_name(n)]
    if ignored:
        warn(f"ignoring files in {input_dir} that are not images: {_listing(ignored)}")
    inputs = [os.path.join(input_dir, n) for n in candidates if images.is_image_name(n)]
    gt_names = set(os.listdir(gt_dir))
    pairs, unpaired, used = [], [], set()
    for stem, path in unique_stems(inputs):
        name = os.path.basename(path).replace("colors", "depth")
        options = [os.path.splitext(name)[0] + ".npy"] if gt_format == "npy" else \
            [name, os.path.splitext(name)[0] + ".png"]
        found = next((o for o in options if o in gt_names and os.path.isfile(os.path.join(gt_dir, o))), None)
        if found is None:
            unpaired.append(f"{os.path.basename(path)} (no {options[0]})")
            continue
        used.add(found)
        pairs.append(Pair(stem, path, os.path.join(gt_dir, found)))
    if unpaired:
        warn(f"skipping inputs without GT in {gt_dir}: {_listing(unpaired)}")
    extension = (".npy",) if gt_format == "npy" else images.IMAGE_EXTENSIONS
    orphans = sorted((n for n in gt_names if "depth" in n and n.lower().endswith(extension) and n not in used
                      and os.path.isfile(os.path.join(gt_dir, n))), key=natural_key)
    if orphans:
        warn(f"GT files without an input `*colors*` image in {input_dir}: {_listing(orphans)}")
    if not pairs:
        raise DatasetError(f"{input_dir}: no input/GT pairs (inputs are image files named *colors*, the GT of "
                           f"a_colors.png is a_depth.png in {gt_dir}); check the folders and --gt-format")
    return pairs


def find_images(input_dir, exclude=()):
    """get_depth's inputs: every image file in input_dir (other files are listed and ignored, the names in
    `exclude` left out silently)."""
    _require_dir(input_dir, "input folder")
    names = sorted((n for n in os.listdir(input_dir)
                    if n not in exclude and os.path.isfile(os.path.join(input_dir, n))), key=natural_key)
    ignored = [n for n in names if not images.is_image_name(n)]
    if ignored:
        warn(f"ignoring files in {input_dir} that are not images: {_listing(ignored)}")
    chosen = unique_stems([os.path.join(input_dir, n) for n in names if images.is_image_name(n)])
    if not chosen:
        raise DatasetError(f"{input_dir}: no image files (PNG, JPEG, TIFF, ...) to run the networks on")
    return [Pair(stem, path) for stem, path in chosen]


@dataclass
class Snapshot:
    """A `<name>.caffemodel` and the deploy `<name>.prototxt` beside it."""
    name: str
    caffemodel: str
    prototxt: str

    @property
    def iteration(self):
        match = _ITERATION.match(self.name)
        return int(match.group("iteration")) if match else None

    @property
    def series(self):
        """The name without `_iter_N` (snapshots of one training run share it)."""
        match = _ITERATION.match(self.name)
        return match.group("prefix") if match else self.name


def find_snapshots(snaps_dir, pattern=None):
    """Every `*.caffemodel` in snaps_dir (others ignored), in natural order, filtered by a glob on the file
    name or on the snapshot name. A snapshot folder without any is a DatasetError."""
    _require_dir(snaps_dir, "snapshot folder")
    names = sorted((n for n in os.listdir(snaps_dir) if n.endswith(".caffemodel")
                    and os.path.isfile(os.path.join(snaps_dir, n))), key=natural_key)
    if not names:
        raise DatasetError(f"{snaps_dir}: no .caffemodel files (each needs its deploy .prototxt beside it)")
    snapshots = []
    for name in names:
        stem = name[:-len(".caffemodel")]
        if pattern and not (fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(stem, pattern)):
            continue
        snapshots.append(Snapshot(stem, os.path.join(snaps_dir, name), os.path.join(snaps_dir, stem + ".prototxt")))
    if not snapshots:
        raise DatasetError(f"{snaps_dir}: no snapshot matches --snapshots {pattern!r} (there are {len(names)}: "
                           f"{_listing(names)})")
    return snapshots


# =========================================================================================== the network
class Model:
    """A snapshot's CaffeNet on a device: predict(float32 (N, 3, h, w)) -> float32 numpy (N, C, oh, ow)."""

    def __init__(self, net, input_name, output_name, device):
        self.net, self.input_name, self.output_name, self.device = net, input_name, output_name, device
        shape = net.blob_shapes[input_name]
        self.input_size = (int(shape[2]), int(shape[3]))
        self.output_shape = tuple(int(d) for d in net.blob_shapes[output_name][1:])
        self._keep = output_name not in net.output_names

    def predict(self, batch):
        import torch
        with torch.no_grad():
            tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            tensor = tensor.contiguous(memory_format=torch.channels_last)
            blobs = self.net({self.input_name: tensor}, keep_blobs=self._keep)
            return blobs[self.output_name].detach().to("cpu", torch.float32).contiguous().numpy()


def choose_output(net, requested, kind):
    """The blob to evaluate: --output-blob, else `depth-refine` / `depth` (test_depth, get_depth) or
    `gradient` (test_grad) among the net's outputs, else its only output."""
    outputs = list(net.output_names)
    if requested:
        if requested not in net.blob_shapes:
            raise LayerError(f"{net.source}: has no blob '{requested}' (outputs: {', '.join(outputs)})")
        name = requested
    else:
        preferred = (GRADIENT_BLOB,) if kind == "gradient" else DEPTH_BLOBS
        name = next((b for b in preferred if b in outputs), None)
        if name is None and len(outputs) == 1:
            name = outputs[0]
        if name is None:
            raise LayerError(f"{net.source}: cannot tell which output to evaluate among {', '.join(outputs)}: "
                             f"name it with --output-blob")
    shape = tuple(net.blob_shapes[name])
    channels = 2 if kind == "gradient" else 1
    if len(shape) != 4 or shape[1] != channels:
        raise ShapeError(f"{net.source}: blob '{name}' has shape {shape}; a {kind} map needs (N, {channels}, H, W)"
                         f"{'' if requested else ' (choose another with --output-blob)'}")
    return name


def load_model(snapshot, device, output_blob=None, kind="depth", cache=None):
    """Builds the snapshot's deploy net in the TEST phase, loads its weights (every layer with weights must
    find them in the caffemodel: a mismatching prototxt is an error, not random weights) and moves it to
    `device`. Raises EigenDepthError with a one-line reason. cache: a ModelLoader whose last net is reused
    when the prototxt is the same (only the weights are replaced)."""
    import torch

    from .caffe import read_net
    from .caffe.io import read_text
    from .net import CaffeNet
    if not os.path.isfile(snapshot.prototxt):
        raise DatasetError(f"no {os.path.basename(snapshot.prototxt)} beside {os.path.basename(snapshot.caffemodel)} "
                           f"(the deploy definition it was trained with)")
    key = (read_text(snapshot.prototxt), str(device))
    net = cache.net if cache is not None and cache.key == key else None
    if net is None:
        if cache is not None:
            cache.key = cache.net = None
        net = CaffeNet(read_net(snapshot.prototxt), phase="TEST", source=snapshot.prototxt, fill=False)
        inputs = list(net.input_names)
        if INPUT_BLOB not in inputs and len(inputs) != 1:
            raise ShapeError(f"{snapshot.prototxt}: needs one image input (named {INPUT_BLOB}), has {inputs or 'none'}")
        shape = tuple(net.blob_shapes[INPUT_BLOB if INPUT_BLOB in inputs else inputs[0]])
        if len(shape) != 4 or shape[1] != 3:
            raise ShapeError(f"{snapshot.prototxt}: input has shape {shape}, not (N, 3, H, W)")
        net.eval()
        net.to(device)
        if device.type == "cuda":  # TF32 would change the numbers at the 1e-3 level: keep float32 exact
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
    name = choose_output(net, output_blob, kind)
    if cache is not None:
        cache.key = None          # until the weights are in
    net.copy_from(snapshot.caffemodel, strict=True)
    # NHWC convolutions are markedly faster on CPU (same values up to float rounding).
    net.to(memory_format=torch.channels_last)
    if cache is not None:
        cache.key, cache.net = key, net
    inputs = list(net.input_names)
    return Model(net, INPUT_BLOB if INPUT_BLOB in inputs else inputs[0], name, device)


class ModelLoader:
    """The default loader of a run: load_model keeping the last net, so that snapshots of one training run
    (same prototxt) build it once."""

    def __init__(self):
        self.key = self.net = None

    def __call__(self, snapshot, device, output_blob=None, kind="depth"):
        return load_model(snapshot, device, output_blob, kind, cache=self)


# =========================================================================================== the images
def preprocess(rgb, height, width):
    """float32 RGB in [0, 1] (HxWx3) -> the net input (3, height, width), RGB: bilinear resize, x255 - 127,
    in float32 as the original."""
    resized = images.resize_bilinear(rgb, height, width)
    chw = np.ascontiguousarray(np.transpose(resized, (2, 0, 1))) * np.float32(INPUT_SCALE)
    chw -= np.float32(INPUT_MEAN)
    return chw


def read_gt_tenth(path, gt_format, notes=None):
    """The GT as depth in meters / 10, float32 (320, 420) (resized as the original if another size).
    png8: pixel / 255 (scikit-image's float conversion, as the original; a colour GT uses its middle
    channel, which is what the original's resize to one channel sampled); png16mm: uint16 millimetres;
    npy: float meters. NaN/inf (npy) become 0, the value the 8-bit format stores for missing depth."""
    if gt_format == "npy":
        try:
            depth = np.load(path, allow_pickle=False)
        except Exception as error:
            raise DatasetError(f"{path}: cannot read the GT array ({_one_line(error)})") from None
        depth = np.squeeze(np.asarray(depth))
        if depth.ndim != 2 or depth.dtype.kind not in "fiu":
            raise DatasetError(f"{path}: a GT .npy must hold one HxW array of meters, found {depth.dtype} {depth.shape}")
        tenth = np.nan_to_num(depth.astype(np.float64) / DEPTH_UNIT_M, nan=0.0, posinf=0.0, neginf=0.0)
        tenth = tenth.astype(np.float32)
    else:
        raw = images.read_raw(path)
        if gt_format == "png16mm":
            if raw.dtype.kind not in "iu":
                raise DatasetError(f"{path}: --gt-format png16mm needs integer millimetres, found {raw.dtype}")
            if raw.ndim == 3:
                raw = raw[:, :, 0]
            tenth = (raw.astype(np.float64) / (1000.0 * DEPTH_UNIT_M)).astype(np.float32)
        else:
            if raw.dtype != np.uint8 and notes is not None:
                notes.append(f"{path} is {raw.dtype}: --gt-format png8 reads it as value / "
                             f"{np.iinfo(raw.dtype).max if raw.dtype.kind in 'iu' else 1} as the original did; "
                             f"use --gt-format png16mm for millimetres")
            tenth = images.to_rgb(images.as_float(raw))[:, :, 1]
    return images.resize_bilinear(tenth, GT_HEIGHT, GT_WIDTH)


def gradient_of(gt_tenth):
    """The gradientFilter of REFERENCE.md 3.2 on a (..., 320, 420) map: (..., 2, 318, 418) float32
    (3x3 cross-correlation, no padding, as Caffe's Convolution)."""
    gt = np.asarray(gt_tenth, dtype=np.float64)
    h, w = gt.shape[-2] - 2, gt.shape[-1] - 2
    out = []
    for kernel in GRADIENT_KERNELS:
        total = np.zeros(gt.shape[:-2] + (h, w))
        for i in range(3):
            for j in range(3):
                if kernel[i][j]:
                    total += kernel[i][j] * gt[..., i:i + h, j:j + w]
        out.append(total)
    return np.stack(out, axis=-3).astype(np.float32)


def normalize_min_max(array):
    """(x - min) / (max - min) in float32 as the original's test_grad (a flat map becomes zeros)."""
    array = np.asarray(array, dtype=np.float32)
    span = array.max() - array.min()
    if not span > 0:
        return np.zeros_like(array)
    return (array - array.min()) / span


@dataclass
class Batch:
    pairs: list
    inputs: np.ndarray                      # (N, 3, h, w) float32, RGB * 255 - 127
    gt: np.ndarray = None                   # depth: (N, 320, 420) meters/10; gradient: (N, 2, 318, 418)
    gt_view: np.ndarray = None              # gradient: GT maps normalised to [0, 1] (what is written)
    input_png: list = None                  # encoded once, reused by every snapshot
    gt_png: list = None

    @property
    def nbytes(self):
        arrays = [a for a in (self.inputs, self.gt, self.gt_view) if a is not None]
        encoded = [b for group in (self.input_png or [], self.gt_png or []) for b in
                   (group if isinstance(group, (list, tuple)) else [group])]
        return sum(a.nbytes for a in arrays) + sum(len(b) for b in encoded if b)


class ImageSource:
    """Decodes and prepares the pairs in worker threads, a batch or two ahead of the network, and keeps
    prepared batches (up to cache_bytes) for the next snapshots: the images are the same for all."""

    def __init__(self, pairs, mode, pool, channel_order="rgb", gt_format="png8", encode=True,
                 cache_bytes=2 << 30, compression=PNG_COMPRESSION):
        self.pairs, self.mode, self.pool, self.compression = pairs, mode, pool, compression
        self.channel_order, self.gt_format, self.encode = channel_order, gt_format, encode
        self.cache_bytes = cache_bytes
        self._cache = {}           # (h, w, batch_size) -> list of Batch (a prefix of the run)
        self.notes = []

    def _prepare(self, pair, height, width):
        rgb = images.load_rgb(pair.input_path)
        chw = preprocess(rgb, height, width)
        item = {"input": chw}
        if self.encode:
            item["input_png"] = images.encode_png(images.preprocessed_to_uint8(chw), self.compression)
        if self.mode in ("depth", "gradient"):
            notes = []
            gt = read_gt_tenth(pair.gt_path, self.gt_format, notes)
            self.notes.extend(notes)
            if self.mode == "depth":
                item["gt"] = gt
                if self.encode:
                    item["gt_png"] = images.encode_png(images.to_uint8(images.depth_to_unit(gt)), self.compression)
            else:
                grad = gradient_of(gt)
                view = np.stack([normalize_min_max(g) for g in grad])
                item["gt"], item["gt_view"] = grad, view
                if self.encode:
                    item["gt_png"] = [images.encode_png(images.to_uint8(np.clip(v, 0, 1)), self.compression)
                                      for v in view]
        return item

    def _assemble(self, pairs, items):
        inputs = np.stack([i["input"] for i in items])
        if self.channel_order == "bgr":
            inputs = np.ascontiguousarray(inputs[:, ::-1])
        batch = Batch(pairs, inputs)
        if self.encode:
            batch.input_png = [i["input_png"] for i in items]
            batch.gt_png = [i.get("gt_png") for i in items]
        if "gt" in items[0]:
            batch.gt = np.stack([i["gt"] for i in items])
        if "gt_view" in items[0]:
            batch.gt_view = np.stack([i["gt_view"] for i in items])
        return batch

    def batches(self, height, width, batch_size):
        """Yields Batch objects in pair order."""
        key = (height, width, batch_size)
        cached = self._cache.setdefault(key, [])
        yield from list(cached)
        chunks = [self.pairs[i:i + batch_size] for i in range(len(cached) * batch_size, len(self.pairs), batch_size)]
        caching = sum(b.nbytes for b in cached) < self.cache_bytes
        pending = deque()
        try:
            for chunk in chunks[:2]:
                pending.append([self.pool.submit(self._prepare, p, height, width) for p in chunk])
            for index, chunk in enumerate(chunks):
                items = [future.result() for future in pending.popleft()]
                if index + 2 < len(chunks):
                    pending.append([self.pool.submit(self._prepare, p, height, width) for p in chunks[index + 2]])
                batch = self._assemble(chunk, items)
                if caching and sum(b.nbytes for b in cached) + batch.nbytes <= self.cache_bytes:
                    cached.append(batch)
                else:
                    caching = False
                yield batch
        finally:
            for futures in pending:
                for future in futures:
                    future.cancel()

    def take_notes(self):
        notes, self.notes = sorted(set(self.notes)), []
        return notes


# =========================================================================================== outputs
class SnapshotFolder:
    """A per-snapshot output folder filled under a temporary name (`.<name>.partial`) and renamed over
    the old one when complete, so an interrupted run leaves the previous results intact."""

    def __init__(self, parent, name):
        self.final = os.path.join(parent, name)
        self.path = os.path.join(parent, f".{name}.partial")
        if os.path.exists(self.path):
            shutil.rmtree(self.path)
        os.makedirs(self.path)

    def file(self, name):
        return os.path.join(self.path, name)

    def commit(self):
        old = None
        if os.path.lexists(self.final):
            old = self.final + ".old"
            if os.path.lexists(old):
                _remove(old)
            os.replace(self.final, old)
        os.replace(self.path, self.final)
        if old:
            _remove(old)

    def discard(self):
        shutil.rmtree(self.path, ignore_errors=True)


SNAPSHOT_FOLDER_FILES = (".png", ".npy", ".csv")     # what a per-snapshot folder may hold to be replaced
_MOVE_AWAY = "move it away or choose another output folder"


def _input_paths(options, pairs, snapshots):
    """Every folder and file the run reads."""
    folders = [options.input_dir, options.snaps_dir] + ([options.gt_dir] if options.gt_dir else [])
    files = [path for pair in pairs for path in (pair.input_path, pair.gt_path) if path]
    return folders + files + [path for s in snapshots for path in (s.caffemodel, s.prototxt)]


def check_replaceable(folder, inputs):
    """A per-snapshot folder is replaced whole by the new results: OutputError when it exists and is not a
    folder of the files this tool writes there (PNG, NPY, CSV), or when it is or holds one of `inputs`."""
    if not os.path.lexists(folder):
        return
    if os.path.islink(folder) or not os.path.isdir(folder):
        raise OutputError(f"{folder}: exists and is not a folder this tool wrote, and the snapshot's results "
                          f"would replace it; {_MOVE_AWAY}")
    for path in inputs:
        if is_within(path, folder):
            raise OutputError(f"{folder}: holds the input {path} and the snapshot's results would replace it; "
                              f"{_MOVE_AWAY}")
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.islink(path) or not os.path.isfile(path) or not name.lower().endswith(SNAPSHOT_FOLDER_FILES):
            raise OutputError(f"{path}: not a file this tool writes, and its folder would be replaced by the "
                              f"snapshot's results; {_MOVE_AWAY}")


def _check_results_files(out_dir, tool):
    """results.json must be this tool's (read_results says why not); results.csv and the plot are written
    with it, so without it they are someone else's."""
    json_path = os.path.join(out_dir, RESULTS_JSON)
    if os.path.lexists(json_path):
        read_results(json_path, tool)
        return
    for name in (RESULTS_CSV, ITERATION_PLOT):
        path = os.path.join(out_dir, name)
        if os.path.lexists(path):
            raise OutputError(f"{path}: exists without the {RESULTS_JSON} this tool writes beside it, so this tool "
                              f"did not write it and would overwrite it; {_MOVE_AWAY}")


def check_outputs(options, tool, pairs, snapshots, parents):
    """Refuses (OutputError) before anything is written when a snapshot folder to be replaced is not this
    tool's or holds an input, or when the results files in OUT_DIR are not this tool's."""
    inputs = _input_paths(options, pairs, snapshots)
    for parent in parents:
        for snapshot in snapshots:
            check_replaceable(os.path.join(parent, snapshot.name), inputs)
    if metric_names(tool):
        _check_results_files(options.out_dir, tool)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def abs_dir_of(out_dir):
    """OUT_DIR_abs beside OUT_DIR (a trailing slash does not move it inside, unlike the original)."""
    return os.path.normpath(out_dir) + "_abs"


def _write_many(pool, files):
    """Writes {path: bytes or callable -> bytes} in the pool (PNG encoding releases the GIL)."""
    def write(item):
        path, data = item
        images.write_bytes(path, data() if callable(data) else data)
    for _ in pool.map(write, files.items()):
        pass


def _write_csv(path, header, rows):
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(v) for v in row])


def _cell(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return "" if value is None else value


def _json_number(value):
    value = float(value)
    return value if math.isfinite(value) else None


# =========================================================================================== evaluation
@dataclass
class Options:
    tool: str
    input_dir: str
    out_dir: str
    snaps_dir: str
    gt_dir: str = None
    log: bool = False
    device: str = "auto"
    batch_size: int = None
    output_blob: str = None
    channel_order: str = "rgb"
    gt_format: str = "png8"
    snapshots: str = None
    workers: int = None
    progress: bool = True
    write_images: bool = True
    sheet_images: int = 6
    cache_mb: int = 2048
    png_compression: int = PNG_COMPRESSION
    png16: bool = False
    npy: bool = False
    size: tuple = (GT_HEIGHT, GT_WIDTH)
    loader: object = None       # ModelLoader() by default; tests pass other forwards (e.g. OpenCV's)


@dataclass
class Outcome:
    """What a run did: per snapshot {metric: mean}, per-image rows, skipped snapshots with reasons."""
    results: dict = field(default_factory=dict)        # name -> {metric: value}
    per_image: dict = field(default_factory=dict)      # name -> (header, rows)
    skipped: dict = field(default_factory=dict)        # name -> reason
    seconds: dict = field(default_factory=dict)
    status: int = 0


def metric_names(tool):
    if tool == "test_grad":
        return list(GRADIENT_METRICS)
    if tool == "get_depth":
        return []
    return (list(THESIS_METRICS) + [ORACLE + m for m in THESIS_METRICS] + list(STANDARD_METRICS)
            + [ORACLE + m for m in STANDARD_METRICS])


def higher_is_better(name):
    base = name[len(ORACLE):] if name.startswith(ORACLE) else name
    if base in THESIS_METRICS:
        return THESIS_HIGHER_IS_BETTER[THESIS_METRICS.index(base)]
    if base in STANDARD_METRICS:
        return STANDARD_HIGHER_IS_BETTER[STANDARD_METRICS.index(base)]
    return False


def default_batch_size(device):
    """Images per forward when --batch-size is not given: 32 on CUDA, 8 on the CPU."""
    return 32 if getattr(device, "type", str(device)) == "cuda" else 8


def device_option(name):
    """The torch device of a --device option (auto, cpu, cuda, cuda:N); DatasetError when unavailable."""
    from .compat import resolve_device
    try:
        return resolve_device(name)
    except RuntimeError as error:
        raise DatasetError(f"--device {name}: {error}") from None


def _progress(options, total, name):
    from tqdm import tqdm
    return tqdm(total=total, desc=name, unit="img", disable=not options.progress, file=sys.stderr,
                dynamic_ncols=True, leave=True)


class _DepthFinisher:
    """Post-processing of one batch of a depth net: --log, cubic zoom, metrics, MVN fit, images."""

    def __init__(self, options, folders, pool, names, sheet_indices):
        self.options, self.folders, self.pool, self.names = options, folders, pool, names
        self.sheet_indices, self.sheet_rows = set(sheet_indices), []
        self.offset = 0

    def __call__(self, batch, raw):
        out = raw[:, 0]
        if self.options.log:  # the inverse of L, in float32 as the original
            out = np.exp((out - LOG_DEPTH_SHIFT) / LOG_DEPTH_SCALE)
        zoomed = images.zoom_cubic(out, GT_HEIGHT, GT_WIDTH)
        gt = batch.gt
        output_m, gt_m = zoomed * DEPTH_UNIT_M, gt * DEPTH_UNIT_M
        fitted = np.stack([metrics.mvn_fit(zoomed[i], gt[i]) for i in range(len(zoomed))])
        fitted_m = fitted * DEPTH_UNIT_M
        values = {}
        values.update(metrics.thesis_metrics(output_m, gt_m))
        values.update({ORACLE + k: v for k, v in metrics.thesis_metrics(fitted_m, gt_m).items()})
        values.update(metrics.standard_metrics(output_m, gt_m))
        values.update({ORACLE + k: v for k, v in metrics.standard_metrics(fitted_m, gt_m).items()})
        if self.options.write_images:
            files = {}
            oracle_dir, abs_dir = self.folders
            for i, pair in enumerate(batch.pairs):
                names = self.names[pair.stem]
                for folder, depth in ((oracle_dir, fitted[i]), (abs_dir, zoomed[i])):
                    files[folder.file(names["input"])] = batch.input_png[i]
                    files[folder.file(names["gt"])] = batch.gt_png[i]
                    files[folder.file(names["depth"])] = _depth_png(depth, self.options.png_compression)
            _write_many(self.pool, files)
        for i, pair in enumerate(batch.pairs):
            if self.offset + i in self.sheet_indices:
                rgb = images.preprocessed_to_uint8(batch.inputs[i][::-1] if self.options.channel_order == "bgr"
                                                   else batch.inputs[i])
                self.sheet_rows.append((pair.stem, rgb, gt_m[i].copy(), output_m[i].copy(), fitted_m[i].copy()))
        self.offset += len(batch.pairs)
        rows = [[pair.stem] + [float(values[m][i]) for m in metric_names("test_depth")]
                for i, pair in enumerate(batch.pairs)]
        return rows


def _depth_png(depth_tenth, compression):
    return lambda: images.encode_png(images.to_uint8(images.depth_to_unit(depth_tenth)), compression)


class _GradientFinisher:
    """test_grad: zoom the 2 channels to 318x418, RMSE and MVN error against the filtered GT."""

    def __init__(self, options, folders, pool, names):
        self.options, self.folders, self.pool, self.names = options, folders, pool, names

    def __call__(self, batch, raw):
        zoomed = images.zoom_cubic(raw, GRADIENT_GT_HEIGHT, GRADIENT_GT_WIDTH)    # (N, 2, 318, 418)
        n = len(batch.pairs)
        flat_out = zoomed.reshape(n * 2, GRADIENT_GT_HEIGHT, GRADIENT_GT_WIDTH)
        flat_gt = batch.gt.reshape(n * 2, GRADIENT_GT_HEIGHT, GRADIENT_GT_WIDTH)
        values = {k: v.reshape(n, 2).mean(axis=1) for k, v in metrics.gradient_metrics(flat_out, flat_gt).items()}
        if self.options.write_images:
            folder = self.folders[0]
            files = {}
            for i, pair in enumerate(batch.pairs):
                names = self.names[pair.stem]
                files[folder.file(names["input"])] = batch.input_png[i]
                for c in range(2):
                    files[folder.file(names[f"gt{c + 1}"])] = batch.gt_png[i][c]
                    fit = metrics.mvn_fit(zoomed[i, c], batch.gt_view[i, c])
                    files[folder.file(names[f"grad{c + 1}"])] = \
                        images.encode_png(images.to_uint8(np.clip(fit, 0, 1)), self.options.png_compression)
            _write_many(self.pool, files)
        return [[pair.stem] + [float(values[m][i]) for m in GRADIENT_METRICS] for i, pair in enumerate(batch.pairs)]


class _RawFinisher:
    """get_depth: the raw output zoomed to --size, written as V(d) PNG, and optionally mm PNG and .npy."""

    def __init__(self, options, folders, pool, names):
        self.options, self.folders, self.pool, self.names = options, folders, pool, names

    def __call__(self, batch, raw):
        out = raw[:, 0]
        if self.options.log:
            out = np.exp((out - LOG_DEPTH_SHIFT) / LOG_DEPTH_SCALE)
        zoomed = images.zoom_cubic(out, *self.options.size)
        folder = self.folders[0]
        files = {}
        for i, pair in enumerate(batch.pairs):
            names = self.names[pair.stem]
            files[folder.file(names["input"])] = batch.input_png[i]
            files[folder.file(names["depth"])] = _depth_png(zoomed[i], self.options.png_compression)
            if self.options.png16:
                files[folder.file(names["png16"])] = (
                    lambda d=zoomed[i]: images.encode_png(images.depth_png16_mm(d * DEPTH_UNIT_M),
                                                          self.options.png_compression))
            if self.options.npy:
                files[folder.file(names["npy"])] = lambda d=zoomed[i]: _npy_bytes(d * DEPTH_UNIT_M)
        _write_many(self.pool, files)
        return []


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32))
    return buffer.getvalue()


def _sheet_indices(count, wanted):
    if wanted <= 0 or count == 0:
        return []
    return sorted(set(int(round(x)) for x in np.linspace(0, count - 1, min(wanted, count))))


def run(options):
    """Evaluates every snapshot; returns an Outcome (status 0, or 1 when a snapshot was skipped)."""
    tool = options.tool
    if tool not in TOOLS:
        raise ValueError(f"tool must be one of {TOOLS}")
    mode = {"test_depth": "depth", "get_depth": "none", "test_grad": "gradient"}[tool]
    if tool == "get_depth":
        pairs = find_images(options.input_dir)
    else:
        pairs = find_pairs(options.input_dir, options.gt_dir, options.gt_format)
    snapshots = find_snapshots(options.snaps_dir, options.snapshots)
    device = device_option(options.device)
    batch_size = options.batch_size or default_batch_size(device)
    if batch_size < 1:
        raise DatasetError(f"--batch-size must be at least 1, not {batch_size}")
    loader = options.loader or ModelLoader()
    workers = options.workers or max(2, min(8, os.cpu_count() or 2))

    out_dir = options.out_dir
    if tool == "get_depth":        # the original wrote only OUT_DIR_abs/<snapshot>/
        parents = [abs_dir_of(out_dir)]
    elif tool == "test_depth" and options.write_images:
        parents = [out_dir, abs_dir_of(out_dir)]
    else:
        parents = [out_dir]
    check_outputs(options, tool, pairs, snapshots, parents)
    file_names = plan_image_names(tool, options, pairs)
    for parent in parents:
        os.makedirs(parent, exist_ok=True)

    outcome = Outcome()
    names = metric_names(tool)
    kind = "gradient" if tool == "test_grad" else "depth"
    with ThreadPoolExecutor(workers, thread_name_prefix="eigen-depth-io") as pool, \
            ThreadPoolExecutor(1, thread_name_prefix="eigen-depth-post") as post:
        source = ImageSource(pairs, mode, pool, options.channel_order, options.gt_format,
                             encode=options.write_images or tool == "get_depth",
                             cache_bytes=int(options.cache_mb) << 20, compression=options.png_compression)
        for snapshot in snapshots:
            print(snapshot.name, flush=True)
            try:
                model = loader(snapshot, device, options.output_blob, kind)
            except EigenDepthError as error:
                _skip(outcome, snapshot, error)
                continue
            except OSError as error:
                _skip(outcome, snapshot, f"{error.filename or snapshot.caffemodel}: {error.strerror or error}")
                continue
            except RuntimeError as error:  # torch: out of memory, an unsupported device, ...
                _skip(outcome, snapshot, f"{snapshot.caffemodel}: {error}")
                continue
            folders = [SnapshotFolder(parent, snapshot.name) for parent in parents]
            try:
                rows, seconds = _evaluate_snapshot(options, tool, snapshot, model, source, folders, pool, post,
                                                   batch_size, file_names)
            except (EigenDepthError, RuntimeError) as error:
                if isinstance(error, DatasetError):
                    for folder in folders:
                        folder.discard()
                    raise
                for folder in folders:
                    folder.discard()
                _skip(outcome, snapshot, error)
                continue
            except BaseException:
                for folder in folders:
                    folder.discard()
                raise
            finally:
                del model
            for note in source.take_notes():
                warn(note)
            outcome.seconds[snapshot.name] = seconds
            if names:
                header = ["image"] + names
                outcome.per_image[snapshot.name] = (header, rows)
                outcome.results[snapshot.name] = _averages(names, rows, snapshot.name)
                _write_csv(folders[0].file(PER_IMAGE_CSV), header, rows)
            for folder in folders:
                folder.commit()
            if names:
                _update_results(options, tool, outcome, snapshot)
    if names and outcome.skipped:
        _update_results(options, tool, outcome)
    if names and outcome.results:
        print_top(outcome.results, tool)
        _plot_iterations(options, tool)
        print(f"results: {os.path.join(out_dir, RESULTS_CSV)}", flush=True)
    if outcome.skipped:
        warn(f"{len(outcome.skipped)} of {len(snapshots)} snapshot(s) skipped: {_listing(outcome.skipped)}")
        outcome.status = 1
    return outcome


def _skip(outcome, snapshot, error):
    reason = _one_line(error)
    outcome.skipped[snapshot.name] = reason
    print(f"skipping {snapshot.name}: {reason}", file=sys.stderr, flush=True)


def _evaluate_snapshot(options, tool, snapshot, model, source, folders, pool, post, batch_size, names):
    height, width = model.input_size
    total = len(names)
    if tool == "test_depth":
        sheet = _sheet_indices(total, options.sheet_images)
        finisher = _DepthFinisher(options, folders, pool, names, sheet)
    elif tool == "test_grad":
        finisher = _GradientFinisher(options, folders, pool, names)
    else:
        finisher = _RawFinisher(options, folders, pool, names)
    rows = []
    start = time.perf_counter()
    pending = deque()
    with _progress(options, total, snapshot.name) as bar:
        def collect(future):
            batch_rows, count = future.result()
            rows.extend(batch_rows)
            bar.update(count)

        try:
            for batch in source.batches(height, width, batch_size):
                raw = model.predict(batch.inputs)
                if tuple(raw.shape[1:]) != model.output_shape:
                    raise ShapeError(f"{snapshot.prototxt}: '{model.output_name}' came out as {raw.shape}")
                pending.append(post.submit(lambda b=batch, r=raw: (finisher(b, r), len(b.pairs))))
                while len(pending) > 1:
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
        except BaseException:
            for future in pending:  # let a batch being written finish before its folder is discarded
                if not future.cancel():
                    future.exception()
            raise
    seconds = time.perf_counter() - start
    if tool == "test_depth" and options.sheet_images > 0 and finisher.sheet_rows:
        title = f"{snapshot.name}: input, GT, raw and MVN-fit depth (m), |raw - GT| (m)"
        images.write_bytes(folders[0].file(CONTACT_SHEET), images.contact_sheet(finisher.sheet_rows, title))
    return rows, seconds


def _averages(names, rows, snapshot):
    """Snapshot figures: the thesis's (and test_grad's) as plain means over the images, as the original
    (a NaN image makes them NaN); the standard ones ignore images without valid GT pixels."""
    table = np.array([row[1:] for row in rows], dtype=np.float64).reshape(len(rows), len(names))
    if STANDARD_METRICS[0] in names:
        without = np.isnan(table[:, names.index(STANDARD_METRICS[0])])
        if without.any():
            warn(f"{snapshot}: no valid GT pixels (1e-3..10 m) in {_listing(rows[i][0] for i in np.flatnonzero(without))}: "
                 f"left out of the standard metrics")
    result = {}
    for j, name in enumerate(names):
        column = table[:, j]
        base = name[len(ORACLE):] if name.startswith(ORACLE) else name
        if base in STANDARD_METRICS:
            result[name] = float(np.nanmean(column)) if not np.isnan(column).all() else float("nan")
        else:
            result[name] = float(np.mean(column))
    return result


def print_top(results, tool):
    """The original's printout: for each of its metrics, the top 10 snapshots, best first."""
    titles = list(GRADIENT_METRICS) if tool == "test_grad" else list(THESIS_METRICS)
    for title in titles:
        values = {name: figures[title] for name, figures in results.items()}
        ranked = metrics.rank(values, higher_is_better(title) if tool != "test_grad" else False)
        print(metrics.format_top(title, ranked, TOP_COUNT), flush=True)


# -- results.csv / results.json (merged across runs) ------------------------------------------------------
def read_results(path, tool):
    """The snapshot records of the results.json this tool wrote at `path` ({} when there is none).
    OutputError for any other file there (another tool's, not JSON, another structure): it is never
    overwritten."""
    if not os.path.lexists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        raise OutputError(f"{path}: not a results file of {tool} ({_one_line(error)}); {_MOVE_AWAY}") from None
    if not isinstance(data, dict) or "tool" not in data or not isinstance(data.get("snapshots"), dict):
        raise OutputError(f"{path}: not a results file of {tool} (it needs 'tool' and 'snapshots' entries); "
                          f"{_MOVE_AWAY}")
    if data["tool"] != tool:
        raise OutputError(f"{path}: holds the results of {data['tool']!r}, not of {tool}; {_MOVE_AWAY}")
    bad = next((name for name, record in data["snapshots"].items() if not _is_record(record)), None)
    if bad is not None:
        raise OutputError(f"{path}: its snapshot {bad!r} is not a record this tool writes; {_MOVE_AWAY}")
    return data["snapshots"]


def _is_number(value, kind=(int, float)):
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def _is_record(record):
    """A snapshot record as _record writes it, as far as the CSV and the plot read it."""
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
        return False
    return (_is_number(record.get("iteration"), int) and _is_number(record.get("images"), int)
            and isinstance(record.get("series", ""), (str, type(None)))
            and all(_is_number(value) for value in record["metrics"].values()))


def _update_results(options, tool, outcome, snapshot=None):
    """Rewrites results.json and results.csv: the previous runs' snapshots, this one's (if given) and this
    run's skipped snapshots."""
    path = os.path.join(options.out_dir, RESULTS_JSON)
    records = read_results(path, tool)
    names = metric_names(tool)
    if snapshot is not None:
        records[snapshot.name] = _record(options, outcome, snapshot, names)
    ordered = dict(sorted(records.items(), key=lambda item: natural_key(item[0])))
    data = {"tool": tool, "metrics": names, "higher_is_better": {m: higher_is_better(m) for m in names},
            "snapshots": ordered, "skipped": dict(outcome.skipped)}
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=1)
        handle.write("\n")
    rows = []
    for name, record in ordered.items():
        figures = record.get("metrics", {})
        rows.append([name, record.get("iteration"), record.get("images")] +
                    [float("nan") if figures.get(m) is None else float(figures[m]) for m in names])
    _write_csv(os.path.join(options.out_dir, RESULTS_CSV), ["snapshot", "iteration", "images"] + names, rows)


def _record(options, outcome, snapshot, names):
    images_count = len(outcome.per_image[snapshot.name][1])
    seconds = outcome.seconds[snapshot.name]
    return {
        "caffemodel": os.path.abspath(snapshot.caffemodel),
        "prototxt": os.path.abspath(snapshot.prototxt),
        "iteration": snapshot.iteration,
        "series": snapshot.series,
        "images": images_count,
        "seconds": round(seconds, 3),
        "images_per_second": round(images_count / seconds, 2) if seconds > 0 else None,
        "settings": {"log": options.log, "channel_order": options.channel_order, "gt_format": options.gt_format,
                     "output_blob": options.output_blob, "input_dir": os.path.abspath(options.input_dir),
                     "gt_dir": os.path.abspath(options.gt_dir) if options.gt_dir else None},
        "metrics": {m: _json_number(outcome.results[snapshot.name][m]) for m in names},
    }


def _plot_iterations(options, tool):
    """OUT_DIR/metrics_vs_iteration.png: each metric against N for snapshots named `<series>_iter_N`, one
    line per series (oracle figures dashed)."""
    records = read_results(os.path.join(options.out_dir, RESULTS_JSON), tool)
    series = {}
    for name, record in records.items():
        if record.get("iteration") is not None:
            series.setdefault(record.get("series") or name, []).append(record)
    if not series:
        return
    from matplotlib.figure import Figure
    bases = list(GRADIENT_METRICS) if tool == "test_grad" else list(THESIS_METRICS) + list(STANDARD_METRICS)
    columns = min(5, len(bases))
    rows = -(-len(bases) // columns)
    figure = Figure(figsize=(3.6 * columns, 2.8 * rows + 0.6), dpi=72)
    figure.subplots_adjust(left=0.05, right=0.98, bottom=0.06, top=0.95, wspace=0.3, hspace=0.55)
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, base in enumerate(bases):
        axis = axes[index // columns][index % columns]
        for number, (label, items) in enumerate(sorted(series.items())):
            items = sorted(items, key=lambda r: r["iteration"])
            x = [r["iteration"] for r in items]
            colour = f"C{number % 10}"
            for prefix, style in (("", "-"), (ORACLE, "--")):
                name = prefix + base
                y = [np.nan if r["metrics"].get(name) is None else r["metrics"][name] for r in items]
                if name in (items[0]["metrics"] if items else {}):
                    axis.plot(x, y, style, marker="o", markersize=3, color=colour,
                              label=f"{label}{' (oracle)' if prefix else ''}")
        axis.set_title(f"{base} ({'higher' if higher_is_better(base) else 'lower'} is better)", fontsize=9)
        axis.set_xlabel("iteration", fontsize=8)
        axis.tick_params(labelsize=7)
    for index in range(len(bases), rows * columns):
        axes[index // columns][index % columns].axis("off")
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    images.write_bytes(os.path.join(options.out_dir, ITERATION_PLOT), buffer.getvalue())


# =========================================================================================== command line
def _size(text):
    match = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if not match or not all(int(v) > 0 for v in match.groups()):
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 320x420, not {text!r}")
    return int(match.group(1)), int(match.group(2))


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_arguments(parser, tool):
    """The options of one tool (test_depth, get_depth, test_grad), shared by tools/ and the CLI."""
    parser.add_argument("input_dir", help="folder with the input images" +
                        (" (files named *colors*)" if tool != "get_depth" else " (any image files)"))
    if tool != "get_depth":
        parser.add_argument("gt_dir", help="folder with the GT depth images (a_colors.png -> a_depth.png)")
    parser.add_argument("out_dir", help="output folder" + (": OUT_DIR_abs/<snapshot>/ gets the raw depth maps"
                                                           if tool == "get_depth" else ""))
    parser.add_argument("snaps_dir", help="folder with snapshots: X.caffemodel with its deploy X.prototxt")
    if tool != "test_grad":
        parser.add_argument("--log", action="store_true",
                            help="the net predicts log depth L(d) = 0.179581 ln d + 1: map it back first")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=_positive, help="images per forward (default 8 on CPU, 32 on CUDA)")
    parser.add_argument("--output-blob", help="the blob to evaluate (default: " +
                        ("gradient" if tool == "test_grad" else "depth-refine, else depth") + ", else the only output)")
    parser.add_argument("--channel-order", choices=("rgb", "bgr"), default="rgb",
                        help="channel order fed to the net (the original evaluator fed RGB; the training LMDBs "
                             "were BGR)")
    if tool != "get_depth":
        parser.add_argument("--gt-format", choices=GT_FORMATS, default="png8",
                            help="png8: pixel/255 = depth/10 m (the thesis's); png16mm: uint16 millimetres; "
                                 "npy: float meters (a_depth.npy)")
    parser.add_argument("--snapshots", metavar="GLOB", help="only snapshots whose file or name matches, "
                                                            "e.g. '*_iter_*0000'")
    parser.add_argument("--workers", type=_positive, help="threads for image decoding and PNG encoding")
    parser.add_argument("--cache-mb", type=int, default=2048,
                        help="memory for keeping prepared images between snapshots (default 2048)")
    parser.add_argument("--png-compression", type=int, choices=range(10), default=PNG_COMPRESSION, metavar="0-9",
                        help="zlib level of the written PNGs (default 8, the original's; the pixels are the same at "
                             "any level, 3 writes about 5x faster)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    if tool == "test_depth":
        parser.add_argument("--no-images", dest="write_images", action="store_false",
                            help="metrics only: no per-image PNGs (results, per-image CSV and contact sheet stay)")
        parser.add_argument("--sheet-images", type=int, default=6,
                            help="images in each snapshot's contact sheet (0: none; default 6)")
    if tool == "test_grad":
        parser.add_argument("--no-images", dest="write_images", action="store_false", help="metrics only")
    if tool == "get_depth":
        parser.add_argument("--png16", action="store_true", help="also write <name>_depth_mm.png, uint16 millimetres")
        parser.add_argument("--npy", action="store_true", help="also write <name>_depth.npy, float32 meters")
        parser.add_argument("--size", type=_size, default=(GT_HEIGHT, GT_WIDTH),
                            help="HEIGHTxWIDTH of the written maps (default 320x420, the original's)")
    return parser


def options_from_args(args, tool):
    values = {k: v for k, v in vars(args).items() if k in Options.__dataclass_fields__}
    return Options(tool=tool, **values)


def run_args(args, tool):
    """Runs a tool from parsed arguments; returns the exit status."""
    return run(options_from_args(args, tool)).status


def tool_main(tool, argv=None, description=None):
    """Entry point of tools/<tool>.py: errors a user can cause as one line on stderr, exit status 2."""
    parser = argparse.ArgumentParser(prog=f"{tool}.py", description=description)
    add_arguments(parser, tool)
    args = parser.parse_args(argv)
    return exit_status(tool, lambda: run_args(args, tool))
