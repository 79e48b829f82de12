"""Record sources behind a Data layer: numbered records of (C, H, W) pixels, read by index, thread-safe.

Three kinds give the same records for the same data (settings.kind):
- lmdb: a Caffe LMDB, records in key order (LmdbRecords);
- pairs: a folder of `<stem>_colors.png` / `<stem>_depth.png` pairs in stem order, each image read and
  resized exactly as make_lmdb writes it (PairRecords), so a folder and the LMDB made from it give the
  same pixels; colour in BGR order like the LMDBs;
- synthetic: scenes rendered on the fly (SyntheticRecords), cropped and resized like the pairs.

For pairs and synthetic, a Data layer's `source` names what it needs, as the thesis's LMDB names do:
`<split>_color_<W>x<H>` or `<split>_depth_<W>x<H>` -> split folder `<root>/<split>`, colour or depth, size.
"""
import os
import re
import threading
import weakref
from collections import OrderedDict

import numpy as np

from ..caffe import datum_to_array, schema
from ..caffe.wire import decode_message
from ..errors import DatasetError
from . import pairs as pairs_io
from .lmdb_io import LmdbReader, is_lmdb

SOURCE_NAME = re.compile(r"^(?P<split>.+)_(?P<kind>color|depth)_(?P<width>\d+)x(?P<height>\d+)$")


def parse_source_name(source, where="Data layer"):
    """(split, "color"|"depth", (width, height)) from a source like `train_depth_37x27`."""
    match = SOURCE_NAME.match(os.path.basename(os.path.normpath(source)))
    if not match:
        raise DatasetError(f"{where}: source '{source}' does not say what to read: folder and synthetic data "
                           f"need sources named <split>_color_<W>x<H> or <split>_depth_<W>x<H> "
                           f"(e.g. train_color_298x218), as the thesis's prototxts have")
    return match["split"], match["kind"], (int(match["width"]), int(match["height"]))


class LmdbRecords:
    """Records of a Caffe LMDB (key order). Encoded records are decoded by OpenCV: unchanged channels,
    or 3 (BGR) / 1 with force_color / force_gray, as Caffe's DataTransformer does."""

    def __init__(self, path, force_color=False, force_gray=False):
        self.reader = LmdbReader(path)
        self.where = self.reader.path
        self.count = len(self.reader)
        self.keys = self.reader.keys
        self._flags = None
        if force_color or force_gray:
            import cv2
            self._flags = cv2.IMREAD_COLOR if force_color else cv2.IMREAD_GRAYSCALE
        self.shape = tuple(self.read(0)[0].shape)

    def read(self, index):
        """(array (C, H, W) uint8 or float32, label)."""
        if self._flags is None:
            return self.reader.datum(index)
        import cv2
        where = f"{self.where}: record {self.reader.keys[index].decode('utf-8', 'replace')}"
        datum = decode_message(schema.Datum, self.reader.value(index), source=where)
        if not datum.encoded:
            return datum_to_array(datum, where), datum.label
        image = cv2.imdecode(np.frombuffer(datum.data, np.uint8), self._flags)
        if image is None:
            raise DatasetError(f"{where}: encoded image data cannot be decoded")
        return (image[None] if image.ndim == 2 else image.transpose(2, 0, 1)), datum.label

    def key(self, index):
        return self.reader.keys[index].decode("utf-8", "replace")

    def close(self):
        self.reader.close()


class PairRecords:
    """Colour (BGR, 3 channels) or depth (png8 unit, 1 channel) images of a pair folder at `size`
    (width, height), resized as make_lmdb does (cv2.resize, bilinear by default)."""

    def __init__(self, folder, kind, size, interpolation="linear"):
        if kind not in ("color", "depth"):
            raise ValueError(f"kind must be 'color' or 'depth', not {kind!r}")
        self.pairs = pairs_io.find_pairs(folder)
        self.kind, self.size, self.interpolation = kind, tuple(size), interpolation
        self.where = os.fspath(folder)
        self.count = len(self.pairs)
        self.shape = (3 if kind == "color" else 1, self.size[1], self.size[0])

    def read(self, index):
        pair = self.pairs[index]
        if self.kind == "color":
            image = pairs_io.resize(pairs_io.read_color_bgr(pair.color), self.size, self.interpolation)
            return image.transpose(2, 0, 1), 0
        image = pairs_io.resize(pairs_io.read_depth_png8(pair.depth), self.size, self.interpolation)
        return image[None], 0

    def key(self, index):
        pair = self.pairs[index]
        return os.path.basename(pair.color if self.kind == "color" else pair.depth)

    def close(self):
        pass


class _SceneCache:
    """Rendered scenes shared by the colour and depth sources of one scene set: each scene is rendered
    once and kept until every registered reader has taken it (sets of at most `limit` scenes are kept
    whole; the oldest entries go first beyond `limit`, about 0.5 MB each)."""

    def __init__(self, scene_set, limit=256):
        self.scene_set, self.limit = scene_set, limit
        self.readers = 0
        self._lock = threading.Lock()
        self._entries = OrderedDict()  # index -> [event, value, reads]

    def get(self, index):
        with self._lock:
            entry = self._entries.get(index)
            owner = entry is None
            if owner:
                entry = self._entries[index] = [threading.Event(), None, 0]
                while len(self._entries) > self.limit:
                    self._entries.popitem(last=False)
        if owner:
            try:
                entry[1] = self.scene_set.pair_png8_bgr(index)
            except BaseException as error:
                entry[1] = error
            entry[0].set()
        else:
            entry[0].wait()
        value = entry[1]
        if isinstance(value, BaseException):
            raise value
        with self._lock:
            entry[2] += 1
            if entry[2] >= max(self.readers, 1) and len(self.scene_set) > self.limit:
                self._entries.pop(index, None)
        return value


_SCENE_CACHES = weakref.WeakValueDictionary()  # alive while some SyntheticRecords uses it
_SCENE_CACHES_LOCK = threading.Lock()


def _release(cache):
    with _SCENE_CACHES_LOCK:
        cache.readers = max(cache.readers - 1, 0)


class SyntheticRecords:
    """Colour or depth of synthetic scenes (synthetic.SceneSet), cropped and resized as the pairs are."""

    def __init__(self, split, kind, size, count, seed=0, holes=False, test_fraction=654 / 1449,
                 interpolation="linear"):
        from .synthetic import SceneSet
        key = (split, count, seed, holes, test_fraction)
        with _SCENE_CACHES_LOCK:
            cache = _SCENE_CACHES.get(key)
            if cache is None:
                scene_set = SceneSet(count, seed, holes, test_fraction, split)
                if not len(scene_set):
                    raise DatasetError(f"synthetic data: the {split} split of {count} scenes is empty; raise "
                                       f"synthetic_count or change synthetic_test_fraction")
                cache = _SCENE_CACHES[key] = _SceneCache(scene_set)
            cache.readers += 1
        self.cache, self.kind, self.size, self.interpolation = cache, kind, tuple(size), interpolation
        self.count = len(cache.scene_set)
        self._release = weakref.finalize(self, _release, cache)
        self.where = f"synthetic {split} scenes (seed {seed})"
        self.shape = (3 if kind == "color" else 1, self.size[1], self.size[0])

    def read(self, index):
        color_bgr, depth_png8 = self.cache.get(index)
        if self.kind == "color":
            return pairs_io.resize(color_bgr, self.size, self.interpolation).transpose(2, 0, 1), 0
        return pairs_io.resize(depth_png8, self.size, self.interpolation)[None], 0

    def key(self, index):
        return f"{index:08d}_{self.kind}"

    def close(self):
        self._release()


def resolve_path(source, root):
    """An absolute path for `source`: as given when absolute, else under the data root."""
    return source if os.path.isabs(source) else os.path.join(root, source)


def open_records(source, settings, where="Data layer", force_color=False, force_gray=False):
    """The record source a Data layer's `source` names under the given DataSettings."""
    root = settings.resolved_root()
    if settings.kind == "lmdb":
        path = resolve_path(source, root)
        if not is_lmdb(path):
            hint = ("" if os.path.isabs(source) else
                    f" (source '{source}' under the data root {root}; set it with --data-root or "
                    f"eigen_depth.data.set_data_root)")
            raise DatasetError(f"{where}: no LMDB at {path}{hint}; build the databases with "
                               f"tools/make_lmdb.py, or read image folders with the pairs data kind")
        return LmdbRecords(path, force_color, force_gray)
    split, kind, size = parse_source_name(source, where)
    if settings.kind == "pairs":
        folder = os.path.join(os.path.dirname(resolve_path(source, root)), split)
        if not os.path.isdir(folder):
            raise DatasetError(f"{where}: source '{source}' reads the pair folder {folder}, which does not exist; "
                               f"point --data-root at the folder holding {split}/ (convert_nyu.py writes it)")
        return PairRecords(folder, kind, size)
    return SyntheticRecords(split, kind, size, settings.synthetic_count, settings.synthetic_seed,
                            settings.synthetic_holes, settings.synthetic_test_fraction)
