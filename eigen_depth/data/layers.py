"""Caffe's data layers (registered with eigen_depth.layers when this module is imported): Data and HDF5Data
(below), ImageData, MemoryData, WindowData and HDF5Output (each described in its class).

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
from .lmdb_io import first_unpaired
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

    def _start(self, param, field, hint):
        """The set-up every source layer starts with: its output buffer, the data settings, and a `source` and a
        `batch_size` that are given. Returns the settings."""
        self._init_output()
        settings = self.settings = current()
        if not param.source:
            raise self.error(f"{field}.source is empty: {hint}")
        if param.batch_size < 1:
            raise self.error(f"{field}.batch_size must be at least 1")
        return settings

    @staticmethod
    def _rand_skip(param, settings):
        """Records skipped at the start: a seeded draw in [0, rand_skip), the same for every layer."""
        if not param.rand_skip:
            return 0
        return int(np.random.default_rng([settings.seed, 0x5C1B]).integers(param.rand_skip))

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
        param = self.param.data_param
        settings = self._start(param, "data_param", "name the LMDB (relative to the data root)")
        if settings.kind == "lmdb" and param.HasField("backend") and param.backend != DB.by_name["LMDB"]:
            raise self.error("backend LEVELDB is not supported: write an LMDB with tools/make_lmdb.py or "
                             "tools/convert_imageset.py", DatasetError)
        where = f"layer '{self.name}' (Data)"
        transform = self.param.transform_param
        records = open_records(param.source, settings, where, transform.force_color, transform.force_gray)
        transformer = CaffeTransformer(transform, self.phase, records.shape, settings.seed, data_param=param,
                                       root=settings.resolved_root(), where=f"{where}, {param.source}")
        rank, world_size = settings.shard()
        shuffle = settings.shuffle and self.phase == TRAIN  # TEST nets read in key order, as Caffe's
        order = RecordOrder(records.count, settings.seed, shuffle, rank, world_size, self._rand_skip(param, settings))
        with_label = self.num_tops(1) > 1
        self.loader = BatchLoader([RecordStream(records, transformer, with_label)], order, param.batch_size,
                                  settings.workers, settings.prefetch or param.prefetch)
        self._check_pairing(records, param)
        return self.loader.shapes

    def _check_pairing(self, records, param):
        """Data layers of one net reading one split (`<split>_color_...`, `<split>_depth_...` in one folder)
        form a pair (`pair_key`); the net calls check_paired_with on each pair."""
        self.source_where = records.where
        self.record_keys = getattr(records, "keys", None)  # an LMDB's, in key order (other sources have none)
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
        if self.record_keys is not None and other.record_keys is not None:
            unpaired = first_unpaired(self.record_keys, other.record_keys)
            if unpaired:
                raise DatasetError(
                    f"layer '{self.name}' (Data) reads {self.source_where} and layer '{other.name}' reads "
                    f"{other.source_where}, which are not paired: key {unpaired[0]!r} meets {unpaired[1]!r}; "
                    f"rebuild the databases together with make_lmdb.py")


@register("HDF5Data")
class HDF5DataLayer(_SourceLayer):
    """Caffe's HDF5Data layer (see hdf5.py)."""
    TOPS = (1, None)

    def setup(self, bottom_shapes):
        param = self.param.hdf5_data_param
        settings = self._start(param, "hdf5_data_param", "name a text file listing .h5 files")
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


class ImageListRecords:
    """The images of a list file (one `<file> <integer label>` per line, the label after the last space), each
    read by OpenCV as Caffe's ImageData reads it: colour (BGR) or gray, resized to new_height x new_width
    (bilinear) when both are given. `root` is prefixed to every name as text, as in Caffe."""

    def __init__(self, list_file, root="", new_height=0, new_width=0, is_color=True):
        from .lmdb_io import read_list_file
        self.where = list_file
        self.entries = read_list_file(list_file)
        self.count = len(self.entries)
        self.root, self.size, self.is_color = root, (int(new_width), int(new_height)), bool(is_color)
        self.shape = tuple(self.read(0)[0].shape)

    def read(self, index):
        """(array (C, H, W) uint8, label)."""
        import cv2

        from . import pairs as pairs_io
        name, label = self.entries[index]
        path = self.root + name
        image = pairs_io.read_color_bgr(path) if self.is_color else pairs_io.read_gray(path)
        if self.size[0] > 0:
            image = cv2.resize(image, self.size)
        return (image[None] if image.ndim == 2 else image.transpose(2, 0, 1)), label

    def key(self, index):
        return self.entries[index][0]

    def close(self):
        pass


@register("ImageData")
class ImageDataLayer(_SourceLayer):
    """Caffe's ImageData layer: the images of image_data_param.source (a list file, found from the working
    directory, else under the data root) with their labels, batch_size per forward, transformed as
    transform_param says; shuffled (every epoch, by the net's seed) when image_data_param.shuffle is set,
    in both phases as in Caffe; rand_skip as the Data layer's. Every image must have the first one's size
    after the optional resize (Caffe fails the same way). Tops: data (N, C, H, W) and label (N)."""
    TOPS = 2

    def setup(self, bottom_shapes):
        param = self.param.image_data_param
        settings = self._start(param, "image_data_param", "name a list file of '<image> <label>' lines")
        if (param.new_height > 0) != (param.new_width > 0):
            raise self.error("give both new_height and new_width, or neither")
        source = param.source
        if not os.path.isabs(source) and not os.path.exists(source):
            source = os.path.join(settings.resolved_root(), source)
        if not os.path.isfile(source):
            raise self.error(f"no list file {param.source} (looked in the working directory and under the data "
                             f"root {settings.resolved_root()})", DatasetError)
        where = f"layer '{self.name}' (ImageData)"
        records = ImageListRecords(source, param.root_folder, param.new_height, param.new_width, param.is_color)
        transformer = CaffeTransformer(self.param.transform_param, self.phase, records.shape, settings.seed,
                                       root=settings.resolved_root(), where=where)
        rank, world_size = settings.shard()
        order = RecordOrder(records.count, settings.seed, param.shuffle, rank, world_size,
                            self._rand_skip(param, settings))
        self.loader = BatchLoader([RecordStream(records, transformer, with_label=True)], order, param.batch_size,
                                  settings.workers, settings.prefetch or 4)
        return self.loader.shapes


@register("MemoryData")
class MemoryDataLayer(Layer):
    """Caffe's MemoryData layer: batches of arrays the program hands over with reset(data, labels) (pycaffe:
    net.set_input_arrays): data (M, C, H, W) float32 with memory_data_param's channels, height and width,
    labels (M) or (M, 1, 1, 1); M a multiple of batch_size. Each forward gives the next batch_size rows and
    their labels (N, 1, 1, 1), from the start again after the last; the arrays are read in place, untransformed
    (Caffe applies no transform_param here either)."""
    BOTTOMS = 0
    TOPS = 2

    def setup(self, bottom_shapes):
        mp = self.param.memory_data_param
        self.batch_size = int(mp.batch_size)
        self.item_shape = (int(mp.channels), int(mp.height), int(mp.width))
        if self.batch_size < 1 or min(self.item_shape) < 1:
            raise self.error("memory_data_param needs batch_size, channels, height and width of at least 1")
        self.data = self.labels = None
        self.position = 0
        self.register_buffer("_probe", torch.zeros(0), persistent=False)  # follows net.to(device)
        return [(self.batch_size,) + self.item_shape, (self.batch_size,)]

    def reset(self, data, labels):
        """Reads from `data` and `labels` (numpy arrays, kept by reference) from their first row on."""
        data, labels = np.asarray(data), np.asarray(labels)
        if labels.ndim == 1:
            labels = labels.reshape(-1, 1, 1, 1)
        if data.dtype != np.float32 or labels.dtype != np.float32:
            raise self.error(f"data and labels must be float32 arrays, got {data.dtype} and {labels.dtype}")
        if data.ndim != 4 or tuple(data.shape[1:]) != self.item_shape:
            raise self.error(f"data must be (M, {', '.join(map(str, self.item_shape))}), got {data.shape}")
        if labels.shape != (data.shape[0], 1, 1, 1):
            raise self.error(f"labels must be (M,) or (M, 1, 1, 1) with M = {data.shape[0]}, got {labels.shape}")
        if data.shape[0] == 0 or data.shape[0] % self.batch_size:
            raise self.error(f"the number of rows ({data.shape[0]}) must be a positive multiple of the batch size "
                             f"({self.batch_size})")
        self.data, self.labels, self.position = data, labels, 0

    def forward(self):
        if self.data is None:
            raise self.error("no data: hand the arrays over first (pycaffe: net.set_input_arrays(data, labels))")
        rows = slice(self.position, self.position + self.batch_size)
        self.position = (self.position + self.batch_size) % self.data.shape[0]
        device = self._probe.device
        return (torch.from_numpy(self.data[rows]).to(device), torch.from_numpy(self.labels[rows]).to(device))


@register("HDF5Output")
class HDF5OutputLayer(Layer):
    """Caffe's HDF5Output layer: writes its two bottoms as the datasets `data` and `label` of
    hdf5_output_param.file_name (float32, the bottoms' shapes). Caffe truncates the file when the layer is
    built and aborts on a second forward (the datasets exist); here every forward rewrites the file with its
    batch, under a temporary name renamed over it. No tops, no gradient."""
    BOTTOMS = 2
    TOPS = 0

    def setup(self, bottom_shapes):
        data, label = bottom_shapes
        if not data or not label or data[0] != label[0]:
            raise self.shape_error(f"data and label need the same first dimension, got {data} and {label}")
        self.file_name = self.param.hdf5_output_param.file_name
        if not self.file_name:
            raise self.error("hdf5_output_param.file_name is empty: name the .h5 file to write")
        return []

    def forward(self, data, label):
        import h5py

        from ..atomic import atomic_write
        with atomic_write(self.file_name) as handle, h5py.File(handle, "w") as h5:
            h5.create_dataset("data", data=data.detach().cpu().numpy().astype("float32"))
            h5.create_dataset("label", data=label.detach().cpu().numpy().astype("float32"))
        return ()


def _c_round(value):
    """C's round(): halves away from zero."""
    import math
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def read_window_file(path):
    """R-CNN's window file: blocks of `# index`, image path, `channels height width`, a window count, then one
    `class overlap x1 y1 x2 y2` line per window (0-based inclusive pixel boxes). Returns
    [(path, (channels, height, width), [(class, overlap, x1, y1, x2, y2), ...])]."""
    from ..inputs import text_lines
    tokens = " ".join(text_lines(path)).split()
    images, position = [], 0

    def take(count, what):
        nonlocal position
        if position + count > len(tokens):
            raise DatasetError(f"{path}: ends inside image block {len(images)} (expected {what})")
        values = tokens[position:position + count]
        position += count
        return values

    try:
        while position < len(tokens):
            hash_mark, index = take(2, "'# index'")
            if hash_mark != "#" or int(index) != len(images):
                raise DatasetError(f"{path}: image block {len(images)} must start with '# {len(images)}', not "
                                   f"'{hash_mark} {index}'")
            (image,) = take(1, "an image path")
            shape = tuple(int(v) for v in take(3, "channels height width"))
            (count,) = take(1, "the number of windows")
            windows = []
            for _ in range(int(count)):
                label, overlap, *box = take(6, "class overlap x1 y1 x2 y2")
                windows.append((int(label), float(overlap), *(int(float(v)) for v in box)))
            images.append((image, shape, windows))
    except ValueError as error:
        raise DatasetError(f"{path}: image block {len(images)}: {error}") from None
    if not images:
        raise DatasetError(f"{path}: the window file lists no images")
    return images


@register("WindowData")
class WindowDataLayer(Layer):
    """Caffe's WindowData layer (R-CNN fine-tuning): every batch holds batch_size - int(batch_size fg_fraction)
    background windows (overlap < bg_threshold, label 0) then the foreground ones (overlap >= fg_threshold,
    their class), each drawn uniformly with replacement from the window file (window_data_param.source;
    windows between the thresholds are unused). A window is cropped from its image (read in colour, BGR) and
    warped to transform_param.crop_size squared: exactly the box for crop_mode "warp" without context_pad,
    else the box grown by crop / (crop - 2 context_pad) around its centre ("square": the longer side both
    ways), clipped to the image and placed where it falls, the rest 0; mirrored when transform_param.mirror
    draws so. Values: (pixel - mean) * window_data_param.scale, the mean from transform_param.mean_file (its
    centre crop) or mean_value. Draws come from the net's seed; both phases sample alike, as in Caffe.
    Tops: data (N, C, crop, crop) and label (N)."""
    BOTTOMS = 0
    TOPS = 2

    def setup(self, bottom_shapes):
        wp, tp = self.param.window_data_param, self.param.transform_param
        settings = current()
        self.crop = int(tp.crop_size)
        if self.crop < 1:
            raise self.error("transform_param.crop_size must be set (the size windows are warped to)")
        self.batch_size = int(wp.batch_size)
        if self.batch_size < 1:
            raise self.error("window_data_param.batch_size must be at least 1")
        if 2 * int(wp.context_pad) >= self.crop:
            raise self.error(f"context_pad {wp.context_pad} leaves nothing of the {self.crop} crop")
        source = wp.source
        if not os.path.isabs(source) and not os.path.exists(source):
            source = os.path.join(settings.resolved_root(), source)
        if not os.path.isfile(source):
            raise self.error(f"no window file {wp.source}", DatasetError)
        self.images = read_window_file(source)
        self.foreground, self.background = [], []
        for index, (_, _, windows) in enumerate(self.images):
            for label, overlap, *box in windows:
                if overlap >= wp.fg_threshold:
                    if label <= 0:
                        raise self.error(f"{source}: a foreground window of image {index} has class {label}; "
                                         f"foreground classes start at 1", DatasetError)
                    self.foreground.append((index, label, *box))
                elif overlap < wp.bg_threshold:
                    self.background.append((index, 0, *box))
        if not self.foreground or not self.background:
            raise self.error(f"{source}: needs foreground and background windows (found {len(self.foreground)} and "
                             f"{len(self.background)})", DatasetError)
        self.channels = self.images[-1][1][0]
        self.root, self.scale, self.mirror = wp.root_folder, float(wp.scale), bool(tp.mirror)
        self.context_pad, self.square = int(wp.context_pad), wp.crop_mode == "square"
        self.fg_count = int(self.batch_size * wp.fg_fraction)
        self.mean = self._mean(tp, settings.resolved_root())
        self.generator = np.random.default_rng([settings.seed, 0x3177D0])
        self.register_buffer("_probe", torch.zeros(0), persistent=False)  # follows net.to(device)
        return [(self.batch_size, self.channels, self.crop, self.crop), (self.batch_size,)]

    def _mean(self, tp, root):
        values = list(tp.mean_value)
        if tp.mean_file and values:
            raise self.error("give mean_file or mean_value, not both")
        if values:
            if len(values) not in (1, self.channels):
                raise self.error(f"mean_value needs 1 or {self.channels} values, got {len(values)}")
            return np.resize(np.asarray(values, np.float32), self.channels)[:, None, None]
        if tp.mean_file:
            from ..caffe.io import blob_to_array, read_binaryproto
            path = tp.mean_file if os.path.exists(tp.mean_file) else os.path.join(root, tp.mean_file)
            array = np.asarray(blob_to_array(read_binaryproto(path)), np.float32)
            mean = array.reshape(-1, *array.shape[-2:])
            offset = (mean.shape[-1] - self.crop) // 2
            if offset < 0 or mean.shape[-2] < self.crop + offset:
                raise self.error(f"{path}: the mean image {mean.shape} is smaller than the {self.crop} crop")
            return mean[:, offset:offset + self.crop, offset:offset + self.crop]
        return None

    def window(self, image, box, mirror):
        """(warped window (C, h, w) float32, top, left): the part of the crop x crop output it fills."""
        import cv2
        x1, y1, x2, y2 = box
        crop = self.crop
        pad_w = pad_h = 0
        width = height = crop
        if self.context_pad > 0 or self.square:
            context_scale = crop / (crop - 2.0 * self.context_pad)
            half_h, half_w = (y2 - y1 + 1) / 2.0, (x2 - x1 + 1) / 2.0
            center_x, center_y = x1 + half_w, y1 + half_h
            if self.square:
                half_h = half_w = max(half_h, half_w)
            x1, x2 = _c_round(center_x - half_w * context_scale), _c_round(center_x + half_w * context_scale)
            y1, y2 = _c_round(center_y - half_h * context_scale), _c_round(center_y + half_h * context_scale)
            rows, cols = image.shape[:2]
            unclipped_h, unclipped_w = y2 - y1 + 1, x2 - x1 + 1
            pad_x1, pad_y1 = max(0, -x1), max(0, -y1)
            pad_x2, pad_y2 = max(0, x2 - cols + 1), max(0, y2 - rows + 1)
            x1, y1, x2, y2 = x1 + pad_x1, y1 + pad_y1, x2 - pad_x2, y2 - pad_y2
            scale_x, scale_y = crop / unclipped_w, crop / unclipped_h
            width, height = _c_round((x2 - x1 + 1) * scale_x), _c_round((y2 - y1 + 1) * scale_y)
            pad_x1, pad_x2 = _c_round(pad_x1 * scale_x), _c_round(pad_x2 * scale_x)
            pad_h = _c_round(pad_y1 * scale_y)
            pad_w = pad_x2 if mirror else pad_x1
            height, width = min(height, crop - pad_h), min(width, crop - pad_w)
        if width <= 0 or height <= 0:
            return np.zeros((image.shape[2], 0, 0), np.float32), 0, 0
        warped = cv2.resize(image[y1:y2 + 1, x1:x2 + 1], (width, height), interpolation=cv2.INTER_LINEAR)
        if mirror:
            warped = warped[:, ::-1]
        return warped.transpose(2, 0, 1).astype(np.float32), pad_h, pad_w

    def forward(self):
        from . import pairs as pairs_io
        data = np.zeros((self.batch_size, self.channels, self.crop, self.crop), np.float32)
        labels = np.zeros(self.batch_size, np.float32)
        for item in range(self.batch_size):
            pool = self.background if item < self.batch_size - self.fg_count else self.foreground
            index, label, *box = pool[int(self.generator.integers(len(pool)))]
            mirror = self.mirror and bool(self.generator.integers(2))
            image = pairs_io.read_color_bgr(self.root + self.images[index][0])
            warped, top, left = self.window(image, box, mirror)
            region = (slice(None), slice(top, top + warped.shape[1]), slice(left, left + warped.shape[2]))
            if self.mean is not None:
                warped = warped - np.broadcast_to(self.mean, data.shape[1:])[region]
            data[item][region] = warped * self.scale  # outside the warped region stays 0, as in Caffe
            labels[item] = label
        device = self._probe.device
        return torch.from_numpy(data).to(device), torch.from_numpy(labels).to(device)


def is_source_layer(layer):
    """True for layers that read data themselves (they have seek/position)."""
    return getattr(layer, "READS_DATA", False)


__all__ = ["DataLayer", "HDF5DataLayer", "HDF5OutputLayer", "ImageDataLayer", "MemoryDataLayer", "WindowDataLayer",
           "is_source_layer"]
