"""Batches from record sources, prepared ahead by background threads; paired colour/depth batches.

A BatchLoader reads batches of one or more *streams* that share one RecordOrder, so record k of every
stream comes from the same record index: that is how the colour and depth of a PairedSource stay paired.
(Two separate Data layers stay paired the same way: the same order, the same batch size.) A producer
thread prepares up to `prefetch` batches ahead, decoding the records of a batch on `workers` threads
(LMDB reads, OpenCV's decoding and resizing, and NumPy's conversions release the GIL); workers=0 reads
synchronously in the caller's thread. Batches are the same whatever the thread count: the order and
every random draw are functions of stream positions (order.py).
"""
import concurrent.futures
import queue
import threading
import weakref

import numpy as np

from ..caffe.schema import TRAIN, TransformationParameter
from ..errors import DatasetError
from .constants import COLOR_SIZE, DEPTH_SIZES, INPUT_MEAN, LMDB_DEPTH_SCALE
from .order import RecordOrder
from .records import open_records
from .settings import current
from .transform import CaffeTransformer


class RecordStream:
    """A record source plus its CaffeTransformer: fills one row of a float32 batch (and the label)."""

    def __init__(self, records, transformer, with_label=False):
        self.records, self.transformer = records, transformer
        self.shapes = [transformer.output_shape] + ([()] if with_label else [])

    def fill(self, outs, row, index, stream_position):
        record, label = self.records.read(index)
        self.transformer.apply(record, outs[0][row], stream_position)
        if len(outs) > 1:
            outs[1][row] = label

    def close(self):
        self.records.close()


def _make_batch(streams, order, batch_size, pool, position):
    indices, positions = order.batch(position, batch_size)
    outs = [[np.empty((batch_size,) + tuple(shape), np.float32) for shape in stream.shapes] for stream in streams]

    def fill(row):
        for stream, stream_outs in zip(streams, outs):
            stream.fill(stream_outs, row, int(indices[row]), int(positions[row]))

    if pool is None:
        for row in range(batch_size):
            fill(row)
    else:
        list(pool.map(fill, range(batch_size)))
    return [array for stream_outs in outs for array in stream_outs]


class _Pipe:
    """What the producer thread shares with its loader (not the loader itself, so it can be collected)."""

    def __init__(self, prefetch):
        self.queue = queue.Queue(maxsize=max(int(prefetch), 1))
        self.stop = threading.Event()
        self.generation = 0


def _produce(pipe, generation, make, start, step):
    position = start
    while not pipe.stop.is_set() and pipe.generation == generation:
        try:
            item = (generation, position, make(position))
        except BaseException as error:  # handed to the consumer, who raises it
            item = (generation, position, error)
        while True:
            if pipe.stop.is_set() or pipe.generation != generation:
                return
            try:
                pipe.queue.put(item, timeout=0.05)
                break
            except queue.Full:
                continue
        if isinstance(item[2], BaseException):
            return
        position += step


class BatchLoader:
    """Batches of `streams` in `order` (see the module docstring). next_batch() returns a list of float32
    arrays, each (batch_size, ...), the streams' tops in order. position: records consumed by all ranks."""

    def __init__(self, streams, order, batch_size, workers=2, prefetch=4, position=0):
        self.streams, self.order, self.batch_size = list(streams), order, int(batch_size)
        self.workers, self.prefetch = int(workers), int(prefetch)
        self._position = int(position)
        self._pool = None
        self._pipe = None
        self._thread = None
        self._finalizer = None

    @property
    def position(self):
        """Records consumed so far by all processes (the stream position of the next batch)."""
        return self._position

    @property
    def shapes(self):
        return [(self.batch_size,) + tuple(shape) for stream in self.streams for shape in stream.shapes]

    def seek(self, position):
        """Continues from `position` records consumed (batches prepared ahead are dropped)."""
        if self._pipe is not None:
            self._pipe.generation += 1
            while True:
                try:
                    self._pipe.queue.get_nowait()
                except queue.Empty:
                    break
            self._thread = None
        self._position = int(position)

    def _start(self):
        if self._pool is None and self.workers > 1:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="eigen-depth-decode")
        if self._pipe is None:
            self._pipe = _Pipe(self.prefetch)
            self._finalizer = weakref.finalize(self, _shutdown, self._pipe, self._pool)
        make = _BatchMaker(self.streams, self.order, self.batch_size, self._pool)
        self._thread = threading.Thread(target=_produce, name="eigen-depth-prefetch", daemon=True,
                                        args=(self._pipe, self._pipe.generation, make, self._position,
                                              self.order.advance(self.batch_size)))
        self._thread.start()

    def next_batch(self):
        """The next batch: a list of float32 arrays (one per top of each stream)."""
        step = self.order.advance(self.batch_size)
        if self.workers == 0:
            batch = _make_batch(self.streams, self.order, self.batch_size, None, self._position)
            self._position += step
            return batch
        if self._thread is None:
            self._start()
        while True:
            generation, position, batch = self._pipe.queue.get()
            if generation != self._pipe.generation:
                continue
            if isinstance(batch, BaseException):
                self._thread = None
                raise batch
            self._position = position + step
            return batch

    def close(self):
        """Stops the threads and closes the sources."""
        if self._finalizer is not None:
            self._finalizer()
        self._thread = None
        for stream in self.streams:
            stream.close()


class _BatchMaker:
    def __init__(self, streams, order, batch_size, pool):
        self.streams, self.order, self.batch_size, self.pool = streams, order, batch_size, pool

    def __call__(self, position):
        return _make_batch(self.streams, self.order, self.batch_size, self.pool, position)


def _shutdown(pipe, pool):
    pipe.stop.set()
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def color_transform_param(mean_value=INPUT_MEAN):
    """The thesis's colour Data layer transform: transform_param { mean_value: 127 }."""
    return TransformationParameter(mean_value=[float(mean_value)])


def depth_transform_param(scale=LMDB_DEPTH_SCALE):
    """The thesis's depth Data layer transform: transform_param { scale: 0.00390625 }."""
    return TransformationParameter(scale=float(scale))


class PairedSource:
    """Paired (colour, depth) batches for a training loop of one's own, from any data kind.

    With the thesis's defaults a batch is colour (B, 3, 218, 298) = BGR bytes - 127 and depth (B, 1, 27, 37)
    = bytes / 256 (meters / 10 * 255/256; see the package docstring), exactly what the prototxts' two Data
    layers give. kind: "lmdb" reads `<root>/<split>_color_298x218` and `<root>/<split>_depth_37x27`;
    "pairs" reads `<root>/<split>/*_colors.png|*_depth.png`; "synthetic" renders scenes. Other keyword
    arguments override the process-wide DataSettings (seed, shuffle, rank, world_size, workers, ...).

        source = PairedSource("pairs", "/data/nyu", "train", depth_size=(74, 54), batch_size=16, shuffle=True)
        source.seek(iteration * 16 * world_size)        # resume
        color, depth = source.next_batch()              # torch tensors
    """

    def __init__(self, kind=None, root=None, split="train", color_size=COLOR_SIZE, depth_size=DEPTH_SIZES[0],
                 batch_size=32, phase=TRAIN, color_transform=None, depth_transform=None, prefetch=4,
                 position=0, **settings_changes):
        import dataclasses
        changes = dict(settings_changes)
        if kind is not None:
            changes["kind"] = kind
        if root is not None:
            changes["root"] = root
        self.settings = dataclasses.replace(current(), **changes)
        rank, world_size = self.settings.shard()
        color_source = f"{split}_color_{color_size[0]}x{color_size[1]}"
        depth_source = f"{split}_depth_{depth_size[0]}x{depth_size[1]}"
        color = open_records(color_source, self.settings, f"PairedSource {color_source}")
        depth = open_records(depth_source, self.settings, f"PairedSource {depth_source}")
        if color.count != depth.count:
            raise DatasetError(f"{color.where} holds {color.count} records but {depth.where} holds {depth.count}: "
                               f"colour and depth would drift apart; rebuild them together with make_lmdb.py")
        root_dir = self.settings.resolved_root()
        streams = [RecordStream(color, CaffeTransformer(color_transform or color_transform_param(), phase, color.shape,
                                                        self.settings.seed, root=root_dir, where=color.where)),
                   RecordStream(depth, CaffeTransformer(depth_transform or depth_transform_param(), phase, depth.shape,
                                                        self.settings.seed, root=root_dir, where=depth.where))]
        order = RecordOrder(color.count, self.settings.seed, self.settings.shuffle and phase == TRAIN, rank, world_size)
        self.loader = BatchLoader(streams, order, batch_size, self.settings.workers,
                                  self.settings.prefetch or prefetch, position)

    def __len__(self):
        """The number of records (pairs) in one epoch."""
        return self.loader.order.count

    @property
    def position(self):
        return self.loader.position

    def seek(self, position):
        self.loader.seek(position)

    def next_batch(self):
        """(colour, depth) float32 torch tensors."""
        import torch
        color, depth = self.loader.next_batch()
        return torch.from_numpy(color), torch.from_numpy(depth)

    def __iter__(self):
        while True:
            yield self.next_batch()

    def close(self):
        self.loader.close()
