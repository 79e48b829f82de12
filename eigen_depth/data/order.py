"""Which record a source reads next: a resumable, seedable, shardable order over a fixed set of records.

The order is a function of the *stream position* g = 0, 1, 2, ...: the g-th record read by all processes
together since the start. Record g is `permutation(epoch)[g mod count]` with epoch = g div count; the
permutation is the identity (Caffe's sequential pass over the database in key order, wrapping around)
unless shuffling is on, in which case each epoch has its own permutation drawn from (seed, epoch).

A *position* P is the number of records consumed so far by all processes. With world_size W, rank r reads
the stream positions P + r, P + r + W, P + r + 2W, ... : one batch of B records on every rank advances P
by B * W, and the W ranks together read each stream position exactly once. Resuming at iteration `it`
(batch B, iter_size S, W processes) is `seek(it * B * S * W)`; this works for any later world size.

Random per-record decisions (Caffe's crop offsets and mirror flips) are drawn from (seed, g, purpose), not
from a layer's private generator, so two Data layers that read the same records also flip and crop them
alike, and the draws are the same whatever threads decode the records.
"""
import numpy as np

_MASK = (1 << 64) - 1


def _splitmix64(value):
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def uniform(seed, position, purpose):
    """A float in [0, 1) that depends only on (seed, stream position, purpose)."""
    value = _splitmix64(_splitmix64(_splitmix64(int(seed) & _MASK) ^ int(position)) ^ int(purpose))
    return (value >> 11) * (1.0 / (1 << 53))


# Purposes of the per-record draws (any distinct integers).
CROP_H, CROP_W, MIRROR = 1, 2, 3


class RecordOrder:
    """The order in which one process reads `count` records (see the module docstring).

    skip: records skipped at the very start (Caffe's rand_skip draw), i.e. the stream starts at g = skip.
    permutation: optional function epoch -> permutation array (default: identity, or seeded shuffles).
    """

    def __init__(self, count, seed=0, shuffle=False, rank=0, world_size=1, skip=0, permutation=None):
        if count <= 0:
            raise ValueError("a record order needs at least one record")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
        self.count, self.seed, self.shuffle = int(count), int(seed), bool(shuffle)
        self.rank, self.world_size, self.skip = int(rank), int(world_size), int(skip)
        self._permutation = permutation
        self._cache = {}

    def permutation(self, epoch):
        """The record indices of one epoch, in reading order."""
        if epoch not in self._cache:
            if self._permutation is not None:
                order = np.asarray(self._permutation(epoch), dtype=np.int64)
            elif self.shuffle:
                order = np.random.default_rng([self.seed, 0x5EC0D, epoch]).permutation(self.count)
            else:
                order = np.arange(self.count)
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[epoch] = order
        return self._cache[epoch]

    def stream_positions(self, position, n):
        """The stream positions of this rank's next n records when `position` records have been consumed."""
        return self.skip + int(position) + self.rank + self.world_size * np.arange(n, dtype=np.int64)

    def records(self, stream_positions):
        """The record index at each stream position."""
        stream_positions = np.asarray(stream_positions, dtype=np.int64)
        epochs, offsets = np.divmod(stream_positions, self.count)
        out = np.empty_like(stream_positions)
        for epoch in np.unique(epochs):
            chosen = epochs == epoch
            out[chosen] = self.permutation(int(epoch))[offsets[chosen]]
        return out

    def batch(self, position, n):
        """(record indices, stream positions) of this rank's next n records; the position then advances
        by n * world_size."""
        positions = self.stream_positions(position, n)
        return self.records(positions), positions

    def advance(self, n):
        """How far the position moves when every rank reads n records."""
        return n * self.world_size
