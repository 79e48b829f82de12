"""NYU Depth v2's labeled file -> folders of image pairs, as the thesis prepared its test set (docs/specification.md 5).

`nyu_depth_v2_labeled.mat` is a MATLAB v7.3 file, i.e. HDF5, and h5py sees MATLAB's column-major arrays
transposed: `images` is (1449, 3, 640, 480) uint8 and `depths` (1449, 640, 480) float32 meters, so item i
is `images[i].T` (480 x 640 x 3, RGB) and `depths[i].T` (480 x 640). `splits.mat` (MATLAB v5, read with
scipy) holds `testNdxs` (654) and `trainNdxs` (795), one-based indices into the labeled file.

Each chosen image is written as `OUT/<split>/NNNNN_colors.png` (RGB) and `NNNNN_depth.png`, NNNNN the
0-based index, both centre-cropped from 640x480 to 420x320 (borders 110 and 80; `full=True` keeps the
whole frame), depth in the thesis's png8 encoding (pairs.py) or in millimetres (png16mm). Runs are
re-runnable: pairs already written are skipped (files appear atomically). A v5 .mat with the same
variables (untransposed: images 480 x 640 x 3 x N) is read too.

write_labeled_mat / write_splits_mat write files in the same layouts (make_synthetic.py --format nyu-mat).
"""
import os
import time

import numpy as np

from ..atomic import make_folder
from ..errors import DatasetError
from ..outputs import earlier_settings, record_settings
from . import pairs as pairs_io
from .constants import (CROP_HEIGHT, CROP_WIDTH, NYU_DEPTHS_KEY, NYU_IMAGES_KEY, NYU_RAW_DEPTHS_KEY, NYU_TEST_KEY,
                        NYU_TRAIN_KEY)
from .jobs import run_jobs

SPLIT_KEYS = {"test": NYU_TEST_KEY, "train": NYU_TRAIN_KEY}
_MATLAB_HEADER_BYTES = 512  # MATLAB v7.3 files are HDF5 with a 512-byte user block holding the MAT header


def _is_hdf5(path):
    with open(path, "rb") as handle:
        handle.seek(_MATLAB_HEADER_BYTES)
        signature = handle.read(8)
        handle.seek(0)
        return signature == b"\x89HDF\r\n\x1a\n" or handle.read(8) == b"\x89HDF\r\n\x1a\n"


class LabeledFile:
    """Item access to a labeled .mat: image(i) -> (H, W, 3) uint8 RGB, depth(i) -> (H, W) float32 meters."""

    def __init__(self, path, depth_key=NYU_DEPTHS_KEY):
        self.path, self.depth_key = os.fspath(path), depth_key
        if not os.path.isfile(self.path):
            raise DatasetError(f"{self.path}: no such file (the NYU Depth v2 labeled .mat)")
        self._h5 = None
        if _is_hdf5(self.path):
            import h5py
            try:
                self._h5 = h5py.File(self.path, "r")
            except OSError as error:
                raise DatasetError(f"{self.path}: cannot read it as a MATLAB v7.3 (HDF5) file ({error})") from None
            keys = list(self._h5.keys())
            self._check_keys(keys)
            self._images, self._depths = self._h5[NYU_IMAGES_KEY], self._h5[depth_key]
            images_shape, depths_shape = self._images.shape, self._depths.shape
            if len(images_shape) != 4 or images_shape[1] != 3 or len(depths_shape) != 3:
                raise DatasetError(f"{self.path}: '{NYU_IMAGES_KEY}' must be (N, 3, W, H) and '{depth_key}' (N, W, H) "
                                   f"as h5py sees a v7.3 file, found {images_shape} and {depths_shape}")
            self.count, self.width, self.height = images_shape[0], images_shape[2], images_shape[3]
        else:
            import scipy.io
            try:
                variables = scipy.io.loadmat(self.path)
            except Exception as error:  # scipy raises ValueError, TypeError, MatReadError, ...
                raise DatasetError(f"{self.path}: neither a v7.3 (HDF5) nor a v5 MATLAB file ({error})") from None
            self._check_keys([k for k in variables if not k.startswith("__")])
            self._images, self._depths = variables[NYU_IMAGES_KEY], variables[depth_key]
            images_shape, depths_shape = self._images.shape, self._depths.shape
            if len(images_shape) != 4 or images_shape[2] != 3 or len(depths_shape) != 3:
                raise DatasetError(f"{self.path}: '{NYU_IMAGES_KEY}' must be (H, W, 3, N) and '{depth_key}' (H, W, N) "
                                   f"in a v5 file, found {images_shape} and {depths_shape}")
            self.height, self.width, self.count = images_shape[0], images_shape[1], images_shape[3]
            depths_shape = depths_shape[::-1]  # (H, W, N) read as (N, W, H) for the check below
        if depths_shape != (self.count, self.width, self.height):
            raise DatasetError(f"{self.path}: '{NYU_IMAGES_KEY}' holds {self.count} images of "
                               f"{self.width}x{self.height} but '{depth_key}' has shape {depths_shape}: they must "
                               f"match")
        if self._images.dtype != np.uint8:
            raise DatasetError(f"{self.path}: '{NYU_IMAGES_KEY}' must be uint8, not {self._images.dtype}")

    def _check_keys(self, keys):
        missing = [key for key in (NYU_IMAGES_KEY, self.depth_key) if key not in keys]
        if missing:
            raise DatasetError(f"{self.path}: has no {' or '.join(repr(k) for k in missing)} variable (it has "
                               f"{', '.join(sorted(keys)) or 'none'}); is this nyu_depth_v2_labeled.mat?")

    def image(self, index):
        if self._h5 is not None:
            return np.ascontiguousarray(self._images[index].T)
        return np.ascontiguousarray(self._images[:, :, :, index])

    def depth(self, index):
        if self._h5 is not None:
            return np.ascontiguousarray(self._depths[index].T, dtype=np.float32)
        return np.ascontiguousarray(self._depths[:, :, index], dtype=np.float32)

    def close(self):
        if self._h5 is not None:
            self._h5.close()


def read_splits(path, count=None):
    """{"test": 0-based indices, "train": 0-based indices} from splits.mat (v5, or v7.3 via h5py).
    DatasetError for a missing variable, a non-integer index or one outside 1..count."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: no such file (NYU's splits.mat)")
    if _is_hdf5(path):
        import h5py
        with h5py.File(path, "r") as handle:
            variables = {key: np.asarray(handle[key]) for key in handle.keys() if key in SPLIT_KEYS.values()}
            present = list(handle.keys())
    else:
        import scipy.io
        try:
            variables = scipy.io.loadmat(path)
        except Exception as error:  # scipy raises several types for broken files
            raise DatasetError(f"{path}: cannot read it as a MATLAB file ({error})") from None
        present = [k for k in variables if not k.startswith("__")]
    splits = {}
    for split, key in SPLIT_KEYS.items():
        if key not in variables:
            raise DatasetError(f"{path}: has no '{key}' variable (it has {', '.join(sorted(present)) or 'none'}); "
                               f"is this NYU's splits.mat?")
        values = np.asarray(variables[key], dtype=np.float64).ravel()
        if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
            raise DatasetError(f"{path}: '{key}' holds non-integer indices")
        indices = values.astype(np.int64)
        if count is not None:
            bad = indices[(indices < 1) | (indices > count)]
            if bad.size:
                raise DatasetError(f"{path}: '{key}' index {int(bad[0])} is out of range: the labeled file holds "
                                   f"{count} images and the indices are one-based (1..{count}); are the two "
                                   f"files from the same release?")
        splits[split] = indices - 1
    return splits


def crop_box(width, height, crop=(CROP_WIDTH, CROP_HEIGHT)):
    """(top, left) of the centred crop: (80, 110) for 640x480 -> 420x320."""
    crop_width, crop_height = crop
    if width < crop_width or height < crop_height:
        raise DatasetError(f"images of {width}x{height} are smaller than the {crop_width}x{crop_height} crop; "
                           f"pass --full to keep them whole")
    return (height - crop_height) // 2, (width - crop_width) // 2


def center_crop(image, crop=(CROP_WIDTH, CROP_HEIGHT)):
    """The thesis's centre crop of an (H, W, ...) array."""
    top, left = crop_box(image.shape[1], image.shape[0], crop)
    return image[top:top + crop[1], left:left + crop[0]]


_WORKER = {}


def _open_worker(path, depth_key):
    _WORKER["file"] = LabeledFile(path, depth_key)


class _ConvertJob:
    def __init__(self, full, depth_format, overwrite):
        self.full, self.depth_format, self.overwrite = full, depth_format, overwrite

    def __call__(self, job):
        index, folder = job
        stem = f"{index:05d}"
        if not self.overwrite and pairs_io.pair_done(folder, stem):
            return False
        labeled = _WORKER["file"]
        color, depth = labeled.image(index), labeled.depth(index)
        if not self.full:
            color, depth = center_crop(color), center_crop(depth)
        pairs_io.write_pair(folder, stem, color, depth_m=depth, depth_format=self.depth_format)
        return True


def convert_nyu(labeled, splits, out, split="test", full=False, depth_format="png8", depth_key=NYU_DEPTHS_KEY,
                workers=None, overwrite=False, progress=True, log=print):
    """Writes the pairs of `split` ("test", "train" or "both") under out/<split>/; returns
    {split: (written, skipped)}. Pairs already there are skipped (a rerun resumes) when `out` was written from
    the same file with the same settings (its record, eigen_depth.outputs.SETTINGS); other settings are
    refused unless overwrite, which rewrites every pair of `split`."""
    if split not in ("test", "train", "both"):
        raise ValueError(f"split must be test, train or both, not {split!r}")
    if depth_format not in pairs_io.DEPTH_FORMATS:
        raise ValueError(f"depth format must be one of {', '.join(pairs_io.DEPTH_FORMATS)}, not {depth_format!r}")
    source = LabeledFile(labeled, depth_key)
    try:
        count, width, height = source.count, source.width, source.height
    finally:
        source.close()  # workers open their own handles (HDF5 handles must not cross a fork)
    if not full:
        crop_box(width, height)
    indices = read_splits(splits, count)
    chosen = ("test", "train") if split == "both" else (split,)
    settings = {"labeled": os.path.abspath(os.fspath(labeled)), "splits": os.path.abspath(os.fspath(splits)),
                "depth_key": depth_key, "full": bool(full), "depth_format": depth_format}
    out = os.fspath(out)
    earlier_settings(out, "convert_nyu", settings, overwrite)
    make_folder(out)
    record_settings(out, "convert_nyu", settings)
    jobs = []
    for name in chosen:
        folder = os.path.join(out, name)
        make_folder(folder)
        jobs.extend((int(index), folder) for index in indices[name])
    started = time.perf_counter()
    results = list(run_jobs(_ConvertJob(full, depth_format, overwrite), jobs, workers, progress,
                            desc="NYU pairs", unit="pair", initializer=_open_worker,
                            initargs=(os.fspath(labeled), depth_key), chunksize=4))
    _WORKER.clear()
    summary, start = {}, 0
    for name in chosen:
        done = results[start:start + len(indices[name])]
        start += len(done)
        summary[name] = (sum(done), len(done) - sum(done))
        log(f"{name}: wrote {summary[name][0]} pairs, skipped {summary[name][1]} already there "
            f"({os.path.join(os.fspath(out), name)})")
    log(f"done in {time.perf_counter() - started:.1f} s")
    return summary


# -- Writing files in NYU's layouts ----------------------------------------------------------------------
def _matlab_header():
    text = (f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: "
            f"{time.strftime('%a %b %d %H:%M:%S %Y')} HDF5 schema 1.00 .").encode("ascii")
    header = text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    return header.ljust(_MATLAB_HEADER_BYTES, b"\x00")


def write_labeled_mat(path, items, count, width=640, height=480, raw=False):
    """Writes a labeled .mat in NYU's v7.3 layout from `items`, an iterable of (rgb (H, W, 3) uint8, depth_m
    (H, W)) or, with raw=True, (rgb, depth_m, raw_depth_m) adding `rawDepths`. Written atomically."""
    import h5py
    path = os.fspath(path)
    partial = f"{path}.partial"
    try:
        with h5py.File(partial, "w", userblock_size=_MATLAB_HEADER_BYTES, libver="earliest") as handle:
            images = handle.create_dataset(NYU_IMAGES_KEY, (count, 3, width, height), np.uint8,
                                           chunks=(1, 3, width, height))
            depths = handle.create_dataset(NYU_DEPTHS_KEY, (count, width, height), np.float32,
                                           chunks=(1, width, height))
            images.attrs["MATLAB_class"] = np.bytes_("uint8")
            depths.attrs["MATLAB_class"] = np.bytes_("single")
            raw_depths = None
            if raw:
                raw_depths = handle.create_dataset(NYU_RAW_DEPTHS_KEY, (count, width, height), np.float32,
                                                   chunks=(1, width, height))
                raw_depths.attrs["MATLAB_class"] = np.bytes_("single")
            written = 0
            for index, item in enumerate(items):
                if index >= count:
                    raise ValueError(f"more than the announced {count} items")
                images[index] = np.asarray(item[0], np.uint8).T
                depths[index] = np.asarray(item[1], np.float32).T
                if raw_depths is not None:
                    raw_depths[index] = np.asarray(item[2], np.float32).T
                written += 1
            if written != count:
                raise ValueError(f"got {written} items, announced {count}")
        with open(partial, "r+b") as handle:
            handle.write(_matlab_header())
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise


def write_splits_mat(path, test_indices, train_indices):
    """Writes splits.mat (MATLAB v5) with testNdxs/trainNdxs as one-based column vectors of doubles, from
    0-based indices."""
    import scipy.io
    from ..atomic import atomic_write
    column = lambda values: (np.asarray(values, np.float64).reshape(-1, 1) + 1)  # noqa: E731
    with atomic_write(path) as handle:
        scipy.io.savemat(handle, {NYU_TEST_KEY: column(test_indices), NYU_TRAIN_KEY: column(train_indices)})
