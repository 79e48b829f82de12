"""An evaluation run: for every snapshot, batches of prepared images through the net, then (in worker
threads) the cubic zoom, the metrics, the MVN fit and the images, overlapping the next forward."""
import io
import os
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .. import images, metrics
from ..atomic import make_folder
from ..conventions import THESIS
from ..constants import (DEPTH_UNIT_M, GRADIENT_GT_HEIGHT, GRADIENT_GT_WIDTH, GRADIENT_METRICS, GT_HEIGHT,
                         GT_WIDTH, LOG_DEPTH_SCALE, LOG_DEPTH_SHIFT, PNG_COMPRESSION, PNG_STRATEGY,
                         STANDARD_METRICS)
from ..devices import default_batch_size, resolve_device
from ..errors import DatasetError, EigenDepthError, ShapeError, warn
from ..errors import one_line as _one_line
from ..inference import ModelLoader
from ..inputs import find_images, listing
from .discovery import TOOLS, find_pairs, find_snapshots, plan_image_names, warn_renamed
from .results import (CONTACT_SHEET, ORACLE, PER_IMAGE_CSV, RESULTS_CSV, RESULTS_JSON, SnapshotFolder, abs_dir_of,
                      check_outputs, metric_names, plot_iterations, print_top, update_results, write_csv,
                      write_many)
from .source import ImageSource


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
    fuse: bool = True           # BatchNorm / Scale / ReLU chains as one operation (eigen_depth.fusion)
    layout: str = "auto"        # the convolutions' memory layout on the CPU (eigen_depth.layout)
    winograd: bool = True       # whether "auto" may choose Winograd's algorithm (eigen_depth.winograd)
    bf16: bool = False          # the net computes in bfloat16 (eigen_depth.inference.load_model)
    output_blob: str = None
    channel_order: str = None   # None: the net's convention's (eigen_depth.conventions), and so below
    input_mean: tuple = None
    input_scale: float = None
    output_unit_m: float = None
    output_inverse: bool = None
    gt_format: str = "png8"
    snapshots: str = None
    workers: int = None
    progress: bool = True
    write_images: bool = True
    sheet_images: int = 6
    cache_mb: int = 2048
    png_compression: int = PNG_COMPRESSION
    png_strategy: str = PNG_STRATEGY
    png16: bool = False
    npy: bool = False
    size: tuple = (GT_HEIGHT, GT_WIDTH)
    loader: object = None       # ModelLoader() by default; tests pass other forwards (e.g. OpenCV's)

    def encode_png(self, pixels):
        """PNG bytes of `pixels` at this run's zlib level and strategy."""
        return images.encode_png(pixels, self.png_compression, self.png_strategy)


@dataclass
class Outcome:
    """What a run did: per snapshot {metric: mean}, per-image rows, skipped snapshots with reasons."""
    results: dict = field(default_factory=dict)        # name -> {metric: value}
    per_image: dict = field(default_factory=dict)      # name -> (header, rows)
    skipped: dict = field(default_factory=dict)        # name -> reason
    seconds: dict = field(default_factory=dict)
    conventions: dict = field(default_factory=dict)    # name -> the Convention its net ran with
    status: int = 0


def _progress(options, total, name):
    from tqdm import tqdm
    return tqdm(total=total, desc=name, unit="img", disable=not options.progress, file=sys.stderr,
                dynamic_ncols=True, leave=True)


class _DepthFinisher:
    """Post-processing of one batch of a depth net: --log, the output's unit, cubic zoom, metrics, MVN fit,
    images."""

    def __init__(self, options, convention, folders, pool, names, sheet_indices):
        self.options, self.convention, self.folders, self.pool, self.names = options, convention, folders, pool, names
        self.sheet_indices, self.sheet_rows = set(sheet_indices), []
        self.offset = 0

    def __call__(self, batch, raw):
        out = raw[:, 0]
        if self.options.log:  # the inverse of L, in float32 as the original
            out = np.exp((out - LOG_DEPTH_SHIFT) / LOG_DEPTH_SCALE)
        zoomed = images.zoom_cubic(self.convention.to_tenth_m(out), GT_HEIGHT, GT_WIDTH)
        # image by image in the pool: the metrics' float64 temporaries are one image's, not a batch's (tens of
        # MiB), and the last batch, which no forward overlaps, is finished on every core
        finished = list(self.pool.map(lambda i: self._finish(batch, i, zoomed[i:i + 1]), range(len(batch.pairs))))
        for _, _, sheet_row in finished:
            if sheet_row is not None:
                self.sheet_rows.append(sheet_row)
        if self.options.write_images:
            write_many(self.pool, {path: data for _, files, _ in finished for path, data in files.items()})
        self.offset += len(batch.pairs)
        return [row for row, _, _ in finished]

    def _finish(self, batch, i, zoomed):
        """Image i's metrics row, its images {path: bytes or callable}, and its contact sheet row (or None)."""
        pair, files = batch.pairs[i], {}
        gt = batch.gt[i:i + 1]
        output_m, gt_m = zoomed * DEPTH_UNIT_M, gt * DEPTH_UNIT_M
        fitted = metrics.mvn_fit(zoomed[0], gt[0])[None]
        fitted_m = fitted * DEPTH_UNIT_M
        truth = metrics.GroundTruth(gt_m)  # its logarithms and masks serve all four calls
        values = {}
        values.update(metrics.thesis_metrics(output_m, truth))
        values.update({ORACLE + k: v for k, v in metrics.thesis_metrics(fitted_m, truth).items()})
        values.update(metrics.standard_metrics(output_m, truth))
        values.update({ORACLE + k: v for k, v in metrics.standard_metrics(fitted_m, truth).items()})
        if self.options.write_images:
            names = self.names[pair.stem]
            oracle_dir, abs_dir = self.folders
            for folder, depth in ((oracle_dir, fitted[0]), (abs_dir, zoomed[0])):
                files[folder.file(names["input"])] = batch.input_png[i]
                files[folder.file(names["gt"])] = batch.gt_png[i]
                files[folder.file(names["depth"])] = _depth_png(depth, self.options)
        sheet_row = None
        if self.offset + i in self.sheet_indices:
            rgb = self.convention.to_rgb_uint8(batch.inputs[i])
            sheet_row = (pair.stem, rgb, gt_m[0], output_m[0], fitted_m[0])
        return [pair.stem] + [float(values[m][0]) for m in metric_names("test_depth")], files, sheet_row


def _depth_png(depth_tenth, options):
    return lambda: options.encode_png(images.to_uint8(images.depth_to_unit(depth_tenth)))


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
                        self.options.encode_png(images.to_uint8(np.clip(fit, 0, 1)))
            write_many(self.pool, files)
        return [[pair.stem] + [float(values[m][i]) for m in GRADIENT_METRICS] for i, pair in enumerate(batch.pairs)]


class _RawFinisher:
    """get_depth: the raw output zoomed to --size, written as V(d) PNG, and optionally mm PNG and .npy."""

    def __init__(self, options, convention, folders, pool, names):
        self.options, self.convention, self.folders, self.pool, self.names = options, convention, folders, pool, names

    def __call__(self, batch, raw):
        out = raw[:, 0]
        if self.options.log:
            out = np.exp((out - LOG_DEPTH_SHIFT) / LOG_DEPTH_SCALE)
        zoomed = images.zoom_cubic(self.convention.to_tenth_m(out), *self.options.size)
        folder = self.folders[0]
        files = {}
        for i, pair in enumerate(batch.pairs):
            names = self.names[pair.stem]
            files[folder.file(names["input"])] = batch.input_png[i]
            files[folder.file(names["depth"])] = _depth_png(zoomed[i], self.options)
            if self.options.png16:
                files[folder.file(names["png16"])] = (
                    lambda d=zoomed[i]: self.options.encode_png(images.depth_png16_mm(d * DEPTH_UNIT_M)))
            if self.options.npy:
                files[folder.file(names["npy"])] = lambda d=zoomed[i]: _npy_bytes(d * DEPTH_UNIT_M)
        write_many(self.pool, files)
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
    """Evaluates every snapshot; returns an Outcome: status 0, 1 when some snapshots were skipped (the others'
    results are written), 2 when none could be evaluated."""
    tool = options.tool
    if tool not in TOOLS:
        raise ValueError(f"tool must be one of {TOOLS}")
    mode = {"test_depth": "depth", "get_depth": "none", "test_grad": "gradient"}[tool]
    if tool == "get_depth":
        pairs = find_images(options.input_dir)
    else:
        pairs = find_pairs(options.input_dir, options.gt_dir, options.gt_format)
    snapshots = find_snapshots(options.snaps_dir, options.snapshots)
    device = resolve_device(options.device)
    batch_size = options.batch_size or default_batch_size(device)
    if batch_size < 1:
        raise DatasetError(f"--batch-size must be at least 1, not {batch_size}")
    loader = options.loader or ModelLoader(fuse=options.fuse, layout=options.layout,
                                           winograd=options.winograd, bf16=options.bf16)
    workers = options.workers or max(2, min(8, os.cpu_count() or 2))

    out_dir = options.out_dir
    if tool == "get_depth":        # the original wrote only OUT_DIR_abs/<snapshot>/
        parents = [abs_dir_of(out_dir)]
    elif tool == "test_depth" and options.write_images:
        parents = [out_dir, abs_dir_of(out_dir)]
    else:
        parents = [out_dir]
    file_names, renamed = plan_image_names(tool, options, pairs)
    check_outputs(options, tool, pairs, snapshots, parents, file_names)
    warn_renamed(file_names, renamed)
    for parent in parents:
        make_folder(parent)

    outcome = Outcome()
    names = metric_names(tool)
    kind = "gradient" if tool == "test_grad" else "depth"
    with ThreadPoolExecutor(workers, thread_name_prefix="eigen-depth-io") as pool, \
            ThreadPoolExecutor(1, thread_name_prefix="eigen-depth-post") as post:
        source = ImageSource(pairs, mode, pool, options.gt_format,
                             encode=options.write_images or tool == "get_depth",
                             # one snapshot reads each image once: nothing to keep for the next
                             cache_bytes=int(options.cache_mb) << 20 if len(snapshots) > 1 else 0,
                             encode_png=options.encode_png)
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
            convention = getattr(model, "convention", THESIS).with_options(options)
            if convention != THESIS:
                print(f"{snapshot.name}: {convention.describe()}", flush=True)
            outcome.conventions[snapshot.name] = convention
            try:
                rows, seconds = _evaluate_snapshot(options, tool, snapshot, model, convention, source, folders, pool,
                                                   post, batch_size, file_names)
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
                write_csv(folders[0].file(PER_IMAGE_CSV), header, rows)
            for folder in folders:
                folder.commit()
            if names:
                update_results(options, tool, outcome, snapshot)
    if names and outcome.skipped and (outcome.results or os.path.exists(os.path.join(out_dir, RESULTS_JSON))):
        update_results(options, tool, outcome)  # the skips are recorded beside results, not alone
    if names and outcome.results:
        print_top(outcome.results, tool)
        plot_iterations(options, tool)
        print(f"results: {os.path.join(out_dir, RESULTS_CSV)}", flush=True)
    if outcome.skipped:  # when every one was skipped the command says so as its error (status 2)
        outcome.status = 2 if len(outcome.skipped) == len(snapshots) else 1
        if outcome.status == 1:
            warn(f"{len(outcome.skipped)} of {len(snapshots)} snapshot(s) skipped: {listing(outcome.skipped)}")
    return outcome


def _skip(outcome, snapshot, error):
    reason = _one_line(error)
    outcome.skipped[snapshot.name] = reason
    print(f"skipping {snapshot.name}: {reason}", file=sys.stderr, flush=True)


def _evaluate_snapshot(options, tool, snapshot, model, convention, source, folders, pool, post, batch_size, names):
    height, width = model.input_size
    total = len(names)
    if tool == "test_depth":
        sheet = _sheet_indices(total, options.sheet_images)
        finisher = _DepthFinisher(options, convention, folders, pool, names, sheet)
    elif tool == "test_grad":
        finisher = _GradientFinisher(options, folders, pool, names)
    else:
        finisher = _RawFinisher(options, convention, folders, pool, names)
    rows = []
    start = time.perf_counter()
    pending = deque()
    with _progress(options, total, snapshot.name) as bar:
        def collect():  # the oldest batch, left pending until it is done (an interrupt waits for it below)
            batch_rows, count = pending[0].result()
            pending.popleft()
            rows.extend(batch_rows)
            bar.update(count)

        try:
            for batch in source.batches(height, width, batch_size, convention):
                raw = model.predict(batch.inputs)
                if tuple(raw.shape[1:]) != model.output_shape:
                    raise ShapeError(f"{snapshot.prototxt}: '{model.output_name}' came out as {raw.shape}")
                pending.append(post.submit(lambda b=batch, r=raw: (finisher(b, r), len(b.pairs))))
                while len(pending) > 1:
                    collect()
            while pending:
                collect()
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
            warn(f"{snapshot}: no valid GT pixels (1e-3..10 m) in {listing(rows[i][0] for i in np.flatnonzero(without))}: "
                 f"left out of the standard metrics")
    elif "MVN" in names:  # test_grad: a GT without depth variation (all zero: no depth) has no MVN error
        flat = np.isnan(table[:, names.index("MVN")])
        if flat.any():
            warn(f"{snapshot}: no depth variation in the GT of {listing(rows[i][0] for i in np.flatnonzero(flat))} "
                 f"(all zero or constant): its MVN error is NaN, and so is the average, as in the original")
    result = {}
    for j, name in enumerate(names):
        column = table[:, j]
        base = name[len(ORACLE):] if name.startswith(ORACLE) else name
        if base in STANDARD_METRICS:
            result[name] = float(np.nanmean(column)) if not np.isnan(column).all() else float("nan")
        else:
            result[name] = float(np.mean(column))
    return result
