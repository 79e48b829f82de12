"""The thesis's paired training databases from folders of pairs, in one call with one shuffle.

For a folder of `<stem>_colors.png` / `<stem>_depth.png` pairs this writes three LMDBs (docs/specification.md
section 5) whose records are paired by position:

    <prefix>_color_298x218   colour, 3 x 218 x 298, BGR   (convert_imageset --resize_height 218 --resize_width 298)
    <prefix>_depth_37x27     depth, 1 x 27 x 37, png8     (convert_imageset --gray ... 27 ... 37)
    <prefix>_depth_74x54     depth, 1 x 54 x 74, png8     (convert_imageset --gray ... 54 ... 74)

The pairs are shuffled once (seeded); record i of every database is pair i of that order, keyed
`%08d_<file name>` as convert_imageset keys it, with label 0. Each record is byte for byte what
convert_imageset writes for the same file and size (OpenCV reading, cv::resize's bilinear default), so
the databases equal three convert_imageset runs over list files in the same order; 16-bit millimetre depth
files are first converted to the 8-bit unit (convert_imageset would keep their high bytes only).
`<prefix>_pairs.txt` lists the order. Given a folder with `train/` and/or `test/` subfolders, each becomes
its own set of databases with that prefix.
"""
import os
import re

from ..caffe import encode_datum
from ..errors import DatasetError, OutputError
from . import pairs as pairs_io
from .constants import COLOR_SIZE, DEPTH_SIZES
from .jobs import run_jobs
from .lmdb_io import LmdbWriter, compute_mean, install_together

SPLITS = ("train", "test")


def database_names(prefix, color_size=COLOR_SIZE, depth_sizes=DEPTH_SIZES):
    """[colour database name, depth database names...] for a prefix, e.g. train_color_298x218."""
    return ([f"{prefix}_color_{color_size[0]}x{color_size[1]}"]
            + [f"{prefix}_depth_{w}x{h}" for w, h in depth_sizes])


def pair_records(pair, color_size=COLOR_SIZE, depth_sizes=DEPTH_SIZES, interpolation="linear"):
    """The serialized Datums of one pair: [colour, depth at each size]."""
    color = pairs_io.resize(pairs_io.read_color_bgr(pair.color), color_size, interpolation)
    depth = pairs_io.read_depth_png8(pair.depth)
    records = [encode_datum(color.transpose(2, 0, 1), 0)]
    for size in depth_sizes:
        records.append(encode_datum(pairs_io.resize(depth, size, interpolation)[None], 0))
    return records


class _Encoder:
    """Picklable job: a pair -> its records."""

    def __init__(self, color_size, depth_sizes, interpolation):
        self.color_size, self.depth_sizes, self.interpolation = color_size, depth_sizes, interpolation

    def __call__(self, pair):
        return pair_records(pair, self.color_size, self.depth_sizes, self.interpolation)


def split_folders(pairs_dir, prefix=None):
    """[(prefix, folder)]: the train/test subfolders when there are any, else the folder itself."""
    pairs_dir = os.fspath(pairs_dir)
    found = [(split, os.path.join(pairs_dir, split)) for split in SPLITS
             if os.path.isdir(os.path.join(pairs_dir, split))]
    if found and prefix is None:
        return found
    if prefix is None:
        base = os.path.basename(os.path.normpath(pairs_dir))
        prefix = base if base in SPLITS else "train"
    return [(prefix, pairs_dir)]


_PAIR_LINE = re.compile(r"(\d{8}) .+")


def _is_pair_list(path):
    """True for a pair list this tool wrote: line i is `%08d <stem>` with i = 0, 1, ..."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, ValueError):
        return False
    matches = [_PAIR_LINE.fullmatch(line) for line in lines]
    return all(match and int(match.group(1)) == index for index, match in enumerate(matches))


def _refuse_foreign_pair_lists(out, splits):
    """Before anything is written: OutputError for a `<prefix>_pairs.txt` in `out` that this tool did not
    write (every build rewrites its split's list)."""
    for split_prefix, _ in splits:
        path = os.path.join(out, f"{split_prefix}_pairs.txt")
        if os.path.lexists(path) and not _is_pair_list(path):
            raise OutputError(f"{path}: not a pair list this tool wrote, and building the {split_prefix} databases "
                              f"would replace it; move it away, choose another output folder, or pass --overwrite")


def _refuse_mean_files(out, splits, color_size, depth_sizes):
    """Before anything is written: OutputError for a mean file of a split whose databases are to be built (a
    mean beside databases that all exist is theirs, and stays: those are skipped)."""
    for split_prefix, _ in splits:
        names = database_names(split_prefix, color_size, depth_sizes)
        if all(os.path.exists(os.path.join(out, name)) for name in names):
            continue
        path = os.path.join(out, f"{names[0]}_mean.binaryproto")
        if os.path.lexists(path):
            raise OutputError(f"{path}: exists already, and building the {split_prefix} databases would replace "
                              f"it; move it away, choose another output folder, or pass --overwrite")


def make_lmdb(pairs_dir, out, prefix=None, color_size=COLOR_SIZE, depth_sizes=DEPTH_SIZES, seed=0, shuffle=True,
              interpolation="linear", workers=None, overwrite=False, mean_file=False, progress=True, log=print):
    """Writes the paired databases (see the module docstring); returns {database path: record count}."""
    out = os.fspath(out)
    written = {}
    splits = split_folders(pairs_dir, prefix)
    if not overwrite:
        _refuse_foreign_pair_lists(out, splits)
        if mean_file:
            _refuse_mean_files(out, splits, color_size, depth_sizes)
    for split_prefix, folder in splits:
        names = database_names(split_prefix, color_size, depth_sizes)
        paths = [os.path.join(out, name) for name in names]
        existing = [p for p in paths if os.path.exists(p)]
        if existing and not overwrite:
            if len(existing) == len(paths):
                log(f"{split_prefix}: {', '.join(names)} exist already; skipped (--overwrite rebuilds them)")
                continue
            raise DatasetError(f"{existing[0]} exists but {len(paths) - len(existing)} of its paired databases do "
                               f"not: rebuild all of them together with --overwrite")
        pairs = pairs_io.find_pairs(folder)
        if shuffle:
            import numpy as np
            pairs = [pairs[i] for i in np.random.default_rng(seed).permutation(len(pairs))]
        from ..atomic import make_folder
        make_folder(out)
        writers = []
        try:
            for path in paths:
                writers.append(LmdbWriter(path, overwrite=overwrite))
            job = _Encoder(tuple(color_size), tuple(tuple(s) for s in depth_sizes), interpolation)
            results = run_jobs(job, pairs, workers, progress, desc=f"{split_prefix} LMDBs", unit="pair", chunksize=8)
            for index, (pair, records) in enumerate(zip(pairs, results)):
                files = [pair.color] + [pair.depth] * len(depth_sizes)
                for writer, file, value in zip(writers, files, records):
                    writer.put(f"{index:08d}_{os.path.basename(file)}", value)
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        install_together(writers)  # all new or, after an error or an interrupt, all as they were
        from ..atomic import atomic_write
        with atomic_write(os.path.join(out, f"{split_prefix}_pairs.txt"), "w") as handle:
            handle.writelines(f"{index:08d} {pair.stem}\n" for index, pair in enumerate(pairs))
        if mean_file:
            from ..caffe import array_to_blob, write_binaryproto
            mean = compute_mean(paths[0])  # legacy 4-D fields, as compute_image_mean writes them
            write_binaryproto(array_to_blob(mean[None], legacy=True), os.path.join(out, f"{names[0]}_mean.binaryproto"))
        for path in paths:
            written[path] = len(pairs)
        log(f"{split_prefix}: wrote {len(pairs)} pairs to {', '.join(names)} in {out}")
    return written
