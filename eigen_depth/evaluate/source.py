"""The images of an evaluation: read, decoded and prepared once in worker threads, cached across snapshots,
and the GT read in the thesis's encodings (8-bit depth/10 m, 16-bit mm, .npy meters)."""
from collections import deque
from dataclasses import dataclass

import numpy as np

from .. import images
from ..constants import DEPTH_UNIT_M, GRADIENT_KERNELS, GT_HEIGHT, GT_WIDTH
from ..errors import DatasetError
from ..errors import one_line as _one_line


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
            tenth = images.as_float(raw)
            if tenth.ndim == 3:
                tenth = images.to_rgb(tenth)[:, :, 1]
    return images.resize_bilinear(tenth, GT_HEIGHT, GT_WIDTH)


def gradient_of(gt_tenth):
    """The gradientFilter of docs/specification.md 3.2 on a (..., 320, 420) map: (..., 2, 318, 418) float32
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
    inputs: np.ndarray                      # (N, 3, h, w) float32, as the net's convention makes them
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

    def __init__(self, pairs, mode, pool, gt_format="png8", encode=True, cache_bytes=2 << 30,
                 encode_png=images.encode_png):
        self.pairs, self.mode, self.pool, self.encode_png = pairs, mode, pool, encode_png
        self.gt_format, self.encode = gt_format, encode
        self.cache_bytes = cache_bytes
        self._cache = {}           # (h, w, batch_size, convention) -> list of Batch (a prefix of the run)
        self.notes = []

    def _prepare(self, pair, height, width, convention):
        rgb = images.load_rgb(pair.input_path)
        chw = convention.prepare(rgb, height, width)
        item = {"input": chw}
        if self.encode:
            item["input_png"] = self.encode_png(convention.to_rgb_uint8(chw))
        if self.mode in ("depth", "gradient"):
            notes = []
            gt = read_gt_tenth(pair.gt_path, self.gt_format, notes)
            self.notes.extend(notes)
            if self.mode == "depth":
                item["gt"] = gt
                if self.encode:
                    item["gt_png"] = self.encode_png(images.to_uint8(images.depth_to_unit(gt)))
            else:
                grad = gradient_of(gt)
                view = np.stack([normalize_min_max(g) for g in grad])
                item["gt"], item["gt_view"] = grad, view
                if self.encode:
                    item["gt_png"] = [self.encode_png(images.to_uint8(np.clip(v, 0, 1)))
                                      for v in view]
        return item

    def _assemble(self, pairs, items):
        inputs = np.stack([i["input"] for i in items])
        batch = Batch(pairs, inputs)
        if self.encode:
            batch.input_png = [i["input_png"] for i in items]
            batch.gt_png = [i.get("gt_png") for i in items]
        if "gt" in items[0]:
            batch.gt = np.stack([i["gt"] for i in items])
        if "gt_view" in items[0]:
            batch.gt_view = np.stack([i["gt_view"] for i in items])
        return batch

    def batches(self, height, width, batch_size, convention):
        """Yields Batch objects in pair order, inputs made by `convention` (eigen_depth.conventions)."""
        key = (height, width, batch_size, convention)
        cached = self._cache.setdefault(key, [])
        yield from list(cached)
        chunks = [self.pairs[i:i + batch_size] for i in range(len(cached) * batch_size, len(self.pairs), batch_size)]
        caching = sum(b.nbytes for b in cached) < self.cache_bytes
        pending = deque()
        try:
            for chunk in chunks[:2]:
                pending.append([self.pool.submit(self._prepare, p, height, width, convention) for p in chunk])
            for index, chunk in enumerate(chunks):
                items = [future.result() for future in pending.popleft()]
                if index + 2 < len(chunks):
                    pending.append([self.pool.submit(self._prepare, p, height, width, convention)
                                    for p in chunks[index + 2]])
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
