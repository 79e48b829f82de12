"""Caffe's HDF5Data source: a text file listing .h5 files, one dataset per top, rows as records.

As in Caffe: every listed file holds one dataset per top (named like the top), all with the same number
of rows; a batch takes `batch_size` consecutive rows, moving on to the next file at the end of one and
back to the first after the last; whole files are loaded into memory when first needed; values are read
as float32. With `shuffle: true` Caffe shuffles the file order on each pass and the rows of each file when
it loads it; here each pass (epoch) does both from (seed, epoch), so the order is reproducible and the
position/seek/sharding rules of order.py apply. Relative file names resolve against the working directory
first, then against the list file's folder.
"""
import os
import threading

import numpy as np

from ..errors import DatasetError


def read_source_list(path):
    """The .h5 files named by an HDF5Data source list (blank lines skipped)."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: no such HDF5 source list (a text file naming one .h5 file per line)")
    folder = os.path.dirname(os.path.abspath(path))
    from ..inputs import text_lines
    files = []
    for number, line in enumerate(text_lines(path), 1):
        name = line.strip()
        if not name:
            continue
        candidate = name if os.path.isabs(name) or os.path.exists(name) else os.path.join(folder, name)
        if not os.path.isfile(candidate):
            raise DatasetError(f"{path}:{number}: HDF5 file '{name}' not found (looked in the working "
                               f"directory and in {folder})")
        files.append(candidate)
    if not files:
        raise DatasetError(f"{path}: the list names no HDF5 files")
    return files


class HDF5Rows:
    """The rows of the datasets `names` across the listed files: shapes, row counts, row access."""

    def __init__(self, files, names, where="HDF5Data layer"):
        import h5py
        self.files, self.names, self.where = list(files), list(names), where
        self.rows = []
        self.shapes = None
        for path in self.files:
            try:
                with h5py.File(path, "r") as handle:
                    shapes = []
                    for name in self.names:
                        if name not in handle:
                            raise DatasetError(f"{where}: {path} has no dataset '{name}' (one dataset per top; "
                                               f"it has {', '.join(sorted(handle.keys())) or 'none'})")
                        if not hasattr(handle[name], "shape"):
                            raise DatasetError(f"{where}: '{name}' in {path} is a group, not a dataset (one dataset "
                                               f"per top, named after it)")
                        shapes.append(tuple(handle[name].shape))
            except OSError as error:
                raise DatasetError(f"{where}: cannot read {path} as HDF5 ({error})") from None
            counts = {shape[0] if shape else 0 for shape in shapes}
            if len(counts) != 1 or 0 in counts:
                raise DatasetError(f"{where}: the datasets of {path} must have the same, non-zero number of rows "
                                   f"(shapes {dict(zip(self.names, shapes))})")
            row_shapes = [shape[1:] for shape in shapes]
            if self.shapes is None:
                self.shapes = row_shapes
            elif row_shapes != self.shapes:
                raise DatasetError(f"{where}: {path} has rows of shapes {row_shapes} but {self.files[0]} has "
                                   f"{self.shapes}")
            self.rows.append(counts.pop())
        self.starts = np.concatenate([[0], np.cumsum(self.rows)]).astype(np.int64)
        self.count = int(self.starts[-1])
        self._lock = threading.Lock()
        self._loaded = {}

    def permutation(self, seed, shuffle):
        """Function epoch -> global row order (Caffe's file-then-row order; shuffled per pass)."""
        def epoch_order(epoch):
            if not shuffle:
                return np.arange(self.count)
            rng = np.random.default_rng([seed, 0x4DF5, epoch])
            parts = []
            for file_index in rng.permutation(len(self.files)):
                parts.append(self.starts[file_index] + rng.permutation(self.rows[file_index]))
            return np.concatenate(parts)
        return epoch_order

    def _arrays(self, file_index):
        with self._lock:
            arrays = self._loaded.get(file_index)
            if arrays is None:
                import h5py
                with h5py.File(self.files[file_index], "r") as handle:
                    arrays = [np.asarray(handle[name][()], dtype=np.float32) for name in self.names]
                if len(self._loaded) >= 2:  # Caffe holds one file; keep two so a pass boundary does not thrash
                    self._loaded.pop(next(iter(self._loaded)))
                self._loaded[file_index] = arrays
            return arrays

    def row(self, index):
        """The values of global row `index`, one array per dataset."""
        file_index = int(np.searchsorted(self.starts, index, side="right") - 1)
        arrays = self._arrays(file_index)
        local = index - int(self.starts[file_index])
        return [array[local] for array in arrays]


class HDF5Stream:
    """A loader stream (see loader.py) over HDF5Rows: one top per dataset."""

    def __init__(self, rows):
        self.rows = rows
        self.shapes = rows.shapes

    def fill(self, outs, row, index, stream_position):
        for out, value in zip(outs, self.rows.row(index)):
            out[row] = value

    def close(self):
        pass
