"""The Data and HDF5Data layers (registered with eigen_depth.layers when this module is imported).

Data: reads `data_param.source` (an LMDB under the data root, or with settings.kind "pairs"/"synthetic" a
pair folder or rendered scenes), batch_size records per forward, transformed as transform_param says;
a second top, when named, gets the records' labels. The source is opened when the layer is built (its top
shape comes from the first record); background threads start on the first forward. backend LEVELDB is not
supported (convert the data with make_lmdb.py). rand_skip skips a seeded random number of records in
[0, rand_skip) at the start, the same for every layer.

Pairing: layers reading one split (`<split>_color_...`, `<split>_depth_...`) stay paired record by record
because they read the same order (the same records, seed and shuffle) in batches of the same size. Give
paired layers the same batch_size (the thesis's prototxts do); a record-count mismatch between them is an
error when the second one is built.

HDF5Data: see hdf5.py. A relative `source` list file resolves against the working directory, then the
data root.

Both layers have `position` (records consumed by all processes so far) and `seek(position)`, for
resuming: the trainer calls seek(iteration * batch_size * iter_size * world_size) on every source layer of
the net. Outputs are float32 tensors on the device the layer was moved to (net.to(device)).
"""
import os

import numpy as np
import torch

from ..caffe.schema import DB, TRAIN
from ..errors import DatasetError
from ..layers.base import Layer, register
from .hdf5 import HDF5Rows, HDF5Stream, read_source_list
from .loader import BatchLoader, RecordStream
from .order import RecordOrder
from .records import SOURCE_NAME, open_records, resolve_path
from .settings import current
from .transform import CaffeTransformer

class _SourceLayer(Layer):
    """Shared by Data and HDF5Data: no bottoms, a BatchLoader, position/seek, device placement."""
    BOTTOMS = 0
    NEEDS_PHASE = True
    READS_DATA = True

    def _init_output(self):
        self.register_buffer("_probe", torch.zeros(0), persistent=False)  # follows net.to(device)

    @property
    def position(self):
        """Records consumed so far by all processes."""
        return self.loader.position

    def seek(self, position):
        """Continues from `position` records consumed (see the module docstring)."""
        self.loader.seek(position)

    @property
    def record_count(self):
        return self.loader.order.count

    def forward(self):
        arrays = self.loader.next_batch()
        device = self._probe.device
        tensors = []
        for array in arrays:
            tensor = torch.from_numpy(array)
            if device.type == "cuda":
                tensor = tensor.pin_memory().to(device, non_blocking=True)
            elif device.type != "cpu":
                tensor = tensor.to(device)
            tensors.append(tensor)
        return tuple(tensors)

    def close(self):
        """Stops the background threads and closes the source."""
        self.loader.close()

    def extra_repr(self):
        return f"name={self.name!r}, records={self.record_count}, batch={self.loader.batch_size}"


@register("Data")
class DataLayer(_SourceLayer):
    """Caffe's Data layer (see the module docstring)."""
    TOPS = (1, 2)

    def setup(self, bottom_shapes):
        self._init_output()
        param = self.param.data_param
        settings = self.settings = current()
        if not param.source:
            raise self.error("data_param.source is empty: name the LMDB (relative to the data root)")
        if param.batch_size < 1:
            raise self.error("data_param.batch_size must be at least 1")
        if settings.kind == "lmdb" and param.HasField("backend") and param.backend != DB.by_name["LMDB"]:
            raise self.error("backend LEVELDB is not supported: write an LMDB with tools/make_lmdb.py or "
                             "tools/convert_imageset.py", DatasetError)
        where = f"layer '{self.name}' (Data)"
        transform = self.param.transform_param
        records = open_records(param.source, settings, where, transform.force_color, transform.force_gray)
        transformer = CaffeTransformer(transform, self.phase, records.shape, settings.seed, data_param=param,
                                       root=settings.resolved_root(), where=where)
        rank, world_size = settings.shard()
        skip = 0
        if param.rand_skip:
            skip = int(np.random.default_rng([settings.seed, 0x5C1B]).integers(param.rand_skip))
        shuffle = settings.shuffle and self.phase == TRAIN  # TEST nets read in key order, as Caffe's
        order = RecordOrder(records.count, settings.seed, shuffle, rank, world_size, skip)
        with_label = self.num_tops(1) > 1
        self.loader = BatchLoader([RecordStream(records, transformer, with_label)], order, param.batch_size,
                                  settings.workers, settings.prefetch or param.prefetch)
        self._check_pairing(records, param)
        return self.loader.shapes

    def _check_pairing(self, records, param):
        """Data layers of one net reading one split (`<split>_color_...`, `<split>_depth_...` in one folder)
        form a pair (`pair_key`); the net calls check_paired_with on each pair."""
        self.source_where = records.where
        match = SOURCE_NAME.match(os.path.basename(os.path.normpath(param.source)))
        if match:
            folder = os.path.dirname(resolve_path(param.source, self.settings.resolved_root()))
            self.pair_key = (self.settings.kind, folder, match["split"])

    def check_paired_with(self, other):
        """Paired layers must see the same number of records, or they drift apart after the first epoch."""
        if other.record_count != self.record_count:
            raise DatasetError(
                f"layer '{self.name}' (Data) reads {self.record_count} records from {self.source_where} but layer "
                f"'{other.name}' reads {other.record_count} from {other.source_where}: paired layers would drift "
                f"apart; rebuild the databases together with make_lmdb.py")


@register("HDF5Data")
class HDF5DataLayer(_SourceLayer):
    """Caffe's HDF5Data layer (see hdf5.py)."""
    TOPS = (1, None)

    def setup(self, bottom_shapes):
        self._init_output()
        param = self.param.hdf5_data_param
        settings = self.settings = current()
        if not param.source:
            raise self.error("hdf5_data_param.source is empty: name a text file listing .h5 files")
        if param.batch_size < 1:
            raise self.error("hdf5_data_param.batch_size must be at least 1")
        if not len(self.param.top):
            raise self.error("name at least one top: each top reads the dataset of the same name")
        source = param.source
        if not os.path.isabs(source) and not os.path.exists(source):
            source = os.path.join(settings.resolved_root(), source)
        where = f"layer '{self.name}' (HDF5Data)"
        rows = HDF5Rows(read_source_list(source), list(self.param.top), where)
        rank, world_size = settings.shard()
        order = RecordOrder(rows.count, settings.seed, param.shuffle, rank, world_size,
                            permutation=rows.permutation(settings.seed, param.shuffle))
        # h5py serialises all reads behind one lock: one background thread, no decode pool
        self.loader = BatchLoader([HDF5Stream(rows)], order, param.batch_size, min(settings.workers, 1),
                                  settings.prefetch or 4)
        return self.loader.shapes


def is_source_layer(layer):
    """True for layers that read data themselves (they have seek/position)."""
    return getattr(layer, "READS_DATA", False)


__all__ = ["DataLayer", "HDF5DataLayer", "is_source_layer"]
