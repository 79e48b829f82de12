"""Data settings: where relative Data-layer sources live, which kind of data backs them, the seed, shuffling,
sharding and worker counts. Data layers copy the settings in force when they are built: pass them to the net
(`CaffeNet(..., data=DataSettings(...))`, `Solver(..., data=...)`, as the training command does), scope them
with `using(...)` (this thread only), or change the process default with `configure` / `set_data_root`.

    from eigen_depth import data
    data.set_data_root("/data/nyu")                     # `source: "train_color_298x218"` -> /data/nyu/...
    data.configure(kind="pairs", shuffle=True, seed=3)  # folders of *_colors/*_depth pairs instead of LMDBs
    with data.using(kind="synthetic", synthetic_count=500):
        net = CaffeNet("eigen_depth/prototxt/global_context/norm/net_train.prototxt", "TRAIN")
"""
import contextlib
import contextvars
import dataclasses
import os
import threading

KINDS = ("lmdb", "pairs", "synthetic")
ROOT_ENVIRONMENT_VARIABLE = "EIGEN_DEPTH_DATA_ROOT"


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """What a Data layer needs besides its prototxt.

    root: folder that relative `source` paths (and mean files) resolve against; None means the working
        directory, or $EIGEN_DEPTH_DATA_ROOT when set.
    kind: "lmdb" (Caffe's databases, the default), "pairs" (root/<split>/*_colors.png + *_depth.png,
        resized as make_lmdb would) or "synthetic" (scenes rendered on the fly).
    seed: seeds the shuffled order, rand_skip and the crop/mirror draws (the same for every layer, which
        keeps paired layers paired).
    shuffle: False reads records in key order as Caffe does; True reads a new seeded permutation each epoch
        in the TRAIN phase (TEST sources keep Caffe's key order, so test losses stay comparable).
    rank, world_size: this process's shard (torch.distributed); None asks torch.distributed when it is
        initialised, else (0, 1).
    workers: decoding threads per source (0 = read in the calling thread, no background thread at all).
    prefetch: batches prepared ahead; None uses data_param.prefetch (Caffe's default 4).
    synthetic_count, synthetic_seed, synthetic_holes, synthetic_test_fraction: the scene set behind
        kind="synthetic" (the same scenes and split as `make_synthetic.py synthetic_count OUT --seed`).
    """
    root: object = None
    kind: str = "lmdb"
    seed: int = 0
    shuffle: bool = False
    rank: object = None
    world_size: object = None
    workers: int = 2
    prefetch: object = None
    synthetic_count: int = 1000
    synthetic_seed: int = 0
    synthetic_holes: bool = False
    synthetic_test_fraction: float = 654 / 1449

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"data kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        world_size, rank = self.world_size, int(self.rank or 0)
        if world_size is not None and (int(world_size) < 1 or not 0 <= rank < int(world_size)):
            raise ValueError(f"need 0 <= rank < world_size, got rank {self.rank}, world_size {self.world_size}")
        if int(self.workers) < 0:
            raise ValueError(f"workers must be >= 0, not {self.workers}")

    def resolved_root(self):
        """The folder relative sources resolve against (absolute path)."""
        root = self.root if self.root is not None else os.environ.get(ROOT_ENVIRONMENT_VARIABLE) or os.getcwd()
        return os.path.abspath(os.fspath(root))

    def shard(self):
        """(rank, world_size): as set, or from torch.distributed when it is initialised, else (0, 1)."""
        if self.world_size is not None:
            return int(self.rank or 0), int(self.world_size)
        try:
            import torch.distributed as dist
            if dist.is_available() and dist.is_initialized():
                return dist.get_rank(), dist.get_world_size()
        except ImportError:  # torch is optional for the converters
            pass
        return 0, 1


_lock = threading.Lock()
_default = DataSettings()  # the process's default, changed by configure / set_data_root
_scoped = contextvars.ContextVar("eigen_depth_data_settings", default=None)  # `using` blocks, per thread


def current():
    """The settings in force here: the innermost `using` block's in this thread (or task), else the
    process's default."""
    return _scoped.get() or _default


def configure(**changes):
    """Updates the process's default settings (fields of DataSettings) and returns them."""
    global _default
    with _lock:
        _default = dataclasses.replace(_default, **changes)
        return _default


def set_data_root(path):
    """Sets the folder that relative Data-layer sources resolve against (the training command's --data-root)."""
    return configure(root=None if path is None else os.path.abspath(os.fspath(path)))


@contextlib.contextmanager
def using(settings=None, **changes):
    """Context manager: inside the block, in this thread only, `settings` (default: the current ones) with
    `changes`; nets built there read them. Other threads and the process default are not touched."""
    token = _scoped.set(dataclasses.replace(settings or current(), **changes))
    try:
        yield _scoped.get()
    finally:
        _scoped.reset(token)
