"""Caffe's DataTransformer: crop, mean subtraction (mean_file or mean_value), scale and mirror.

For a record x of shape (C, H, W) the output is (x[c, h_off + h, w_off + w] - mean[c, h_off + h, w_off + w])
* scale, written flipped left-right when mirrored; that is the order of Caffe's Transform(Datum). Crops:
TRAIN draws h_off in [0, H - crop_size] and w_off likewise, TEST takes the centre ((H - crop_size) / 2,
integer division). Mirroring (transform_param.mirror) flips with probability 1/2 in both phases, as Caffe
does. One mean_value is used for every channel, or one per channel; mean_file is a .binaryproto of shape
(1, C, H, W) matching the records (as compute_image_mean writes it); giving both is an error, as in Caffe.

Deliberate difference: Caffe draws crops and flips from each layer's own generator, so a colour and a
depth Data layer would crop and flip *different* records differently. Here the draws come from the record's
stream position (see order.py), so paired layers flip the same records and crop at the same relative place.
"""
import os

import numpy as np

from ..caffe import blob_to_array, read_binaryproto
from ..caffe.schema import TRAIN
from ..errors import DatasetError
from . import order


class CaffeTransformer:
    """The transform of one Data layer. record_shape: (C, H, W) of the records it will see.

    param: the layer's TransformationParameter; data_param: its DataParameter, whose legacy scale /
    mean_file / crop_size / mirror fields apply where transform_param leaves them unset (Caffe moves them
    there when it upgrades old nets). root: folder a relative mean_file resolves against when it is not
    found relative to the working directory. where: the layer, for messages.
    """

    def __init__(self, param, phase, record_shape, seed=0, data_param=None, root=None, where="Data layer"):
        self.where, self.phase, self.seed = where, phase, int(seed)
        legacy = data_param

        def pick(name):
            if param.HasField(name) or legacy is None or not legacy.HasField(name):
                return getattr(param, name)
            return getattr(legacy, name)

        self.scale = float(pick("scale"))
        self.crop = int(pick("crop_size"))
        self.mirror = bool(pick("mirror"))
        mean_file = pick("mean_file")
        self.force_color, self.force_gray = bool(param.force_color), bool(param.force_gray)
        channels, height, width = (int(d) for d in record_shape)
        self.record_shape = (channels, height, width)
        if self.crop and (self.crop > height or self.crop > width):
            raise DatasetError(f"{where}: crop_size {self.crop} is larger than the records ({height}x{width})")
        values = list(param.mean_value)
        if mean_file and values:
            raise DatasetError(f"{where}: give mean_file or mean_value, not both (Caffe refuses both)")
        self.mean = None
        if mean_file:
            self.mean = self._read_mean(mean_file, root)
        elif values:
            if len(values) not in (1, channels):
                raise DatasetError(f"{where}: {len(values)} mean_value entries for {channels}-channel records: "
                                   f"give one value or one per channel")
            self.mean = np.asarray(values * (channels if len(values) == 1 else 1), np.float32).reshape(-1, 1, 1)

    def _read_mean(self, mean_file, root):
        path = mean_file
        if not os.path.isabs(path) and not os.path.exists(path) and root is not None:
            path = os.path.join(root, path)
        if not os.path.exists(path):
            raise DatasetError(f"{self.where}: mean_file '{mean_file}' does not exist (looked in the working "
                               f"directory and in the data root {root}); write one with make_lmdb.py --mean-file")
        mean = blob_to_array(read_binaryproto(path), path)
        if mean.ndim == 4 and mean.shape[0] == 1:
            mean = mean[0]
        if tuple(mean.shape) != self.record_shape:
            raise DatasetError(f"{self.where}: mean_file {path} has shape {tuple(mean.shape)} but the records "
                               f"are {self.record_shape} (C, H, W)")
        return np.ascontiguousarray(mean, np.float32)

    @property
    def output_shape(self):
        channels, height, width = self.record_shape
        return (channels, self.crop or height, self.crop or width)

    def offsets(self, stream_position):
        """(h_off, w_off, mirrored) for the record at this stream position."""
        _, height, width = self.record_shape
        h_off = w_off = 0
        if self.crop:
            if self.phase == TRAIN:
                h_off = int(order.uniform(self.seed, stream_position, order.CROP_H) * (height - self.crop + 1))
                w_off = int(order.uniform(self.seed, stream_position, order.CROP_W) * (width - self.crop + 1))
            else:
                h_off, w_off = (height - self.crop) // 2, (width - self.crop) // 2
        mirrored = self.mirror and order.uniform(self.seed, stream_position, order.MIRROR) < 0.5
        return h_off, w_off, mirrored

    def apply(self, record, out, stream_position=0):
        """Writes the transformed (C, H, W) record into `out` (float32, output_shape)."""
        if tuple(record.shape) != self.record_shape:
            raise DatasetError(f"{self.where}: a record of shape {tuple(record.shape)} among records of shape "
                               f"{self.record_shape}: every record of a source must have the same size")
        h_off, w_off, mirrored = self.offsets(stream_position)
        _, out_h, out_w = self.output_shape
        view = record[:, h_off:h_off + out_h, w_off:w_off + out_w]
        mean = self.mean
        if mean is not None and mean.shape[1] > 1:
            mean = mean[:, h_off:h_off + out_h, w_off:w_off + out_w]
        if mirrored:
            view = view[:, :, ::-1]
            if mean is not None and mean.shape[2] > 1:
                mean = mean[:, :, ::-1]
        if mean is None:
            np.copyto(out, view, casting="unsafe")
        else:
            np.subtract(view, mean, out=out, dtype=np.float32, casting="unsafe")
        if self.scale != 1.0:
            out *= np.float32(self.scale)
        return out
