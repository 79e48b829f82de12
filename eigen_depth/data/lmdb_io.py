"""Caffe LMDBs of Datum records: reading, and writing as Caffe's convert_imageset does.

convert_imageset ROOT LISTFILE DB reads the list (one `<file> <label>` per line; the label follows the
last space), optionally shuffles it, and for line i stores key `%08d_<file>` (i in list order after the
shuffle) -> a serialized Datum. Images are read by OpenCV (`cv::imread`, IMREAD_COLOR, so 3 channels in
BGR order; IMREAD_GRAYSCALE with --gray), resized with cv::resize's default bilinear interpolation when
both --resize_height and --resize_width are given, and stored channel-major (C, H, W) with encoded:
false; with --encoded the Datum holds the image file's bytes verbatim when no resize or colour change is
needed, else the image re-encoded in the file's format, and encoded: true. Records are committed every
1000 images. This module writes the same keys and the same bytes (tests check them byte for byte).

Differences: Caffe's --shuffle uses its own generator, so the order differs (here it is seeded); the
database is written under a temporary name and renamed when complete (a database it replaces is moved aside
until then, and back on an error), so an interrupted run leaves no half database and loses no old one; an
existing database is an error (Caffe's db::NEW fails too) unless --overwrite, which replaces only an LMDB (a
folder of data.mdb and lock.mdb), never another file or folder.
"""
import os
import shutil
import sys
import threading
import weakref

import numpy as np

from ..atomic import aside_name, make_folder
from ..caffe import decode_datum, encode_datum, encoded_datum
from ..errors import DatasetError, OutputError
from ..inputs import listing
from . import pairs as pairs_io

COMMIT_EVERY = 1000  # convert_imageset commits every 1000 records
LMDB_MAP_SIZE = 1 << 40 if sys.maxsize > 2 ** 32 else 1 << 30  # Caffe's db_lmdb.cpp: 1 TB


# -- Reading --------------------------------------------------------------------------------------------
def is_lmdb(path):
    """True for an LMDB directory (holding data.mdb) or an LMDB data file."""
    path = os.fspath(path)
    return os.path.isfile(os.path.join(path, "data.mdb")) or (os.path.isfile(path) and path.endswith(".mdb"))


class _SharedEnvironment:
    """One read-only lmdb.Environment per database file (py-lmdb refuses to open one twice in a process),
    counted by its readers and closed by the last one to let go. Its entry leaves the registry and the
    environment closes in one step under the registry's lock, so no thread finds the entry gone while the
    environment is still open (py-lmdb would refuse to open it again)."""

    def __init__(self, key, env):
        self.key, self.env, self.users = key, env, 0


_ENVIRONMENTS = {}
_ENVIRONMENTS_LOCK = threading.RLock()  # re-entrant: a collected reader may release inside an acquire


def _acquire_environment(path):
    import lmdb
    subdir = os.path.isdir(path)
    data_file = os.path.join(path, "data.mdb") if subdir else path
    stat = os.stat(data_file)
    key = (os.path.realpath(data_file), stat.st_ino, stat.st_dev)  # a rebuilt database is a new file
    with _ENVIRONMENTS_LOCK:
        while True:
            shared = _ENVIRONMENTS.get(key)
            if shared is None:
                try:
                    env = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False, subdir=subdir,
                                    max_readers=1024)
                except lmdb.Error as error:
                    raise DatasetError(f"{path}: cannot open the LMDB ({error})") from None
                shared = _ENVIRONMENTS[key] = _SharedEnvironment(key, env)
            shared.users += 1
            if _ENVIRONMENTS.get(key) is shared:  # not released by a reader collected in between
                return shared


def _release_environment(shared):
    with _ENVIRONMENTS_LOCK:
        shared.users -= 1
        if shared.users == 0:
            if _ENVIRONMENTS.get(shared.key) is shared:
                del _ENVIRONMENTS[shared.key]
            shared.env.close()


class LmdbReader:
    """Random access to an LMDB's records in key order (thread-safe: one read transaction per thread).

    keys: all keys, sorted as LMDB sorts them (bytewise), i.e. the order Caffe's cursor reads them.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        if not is_lmdb(self.path):
            raise DatasetError(f"{self.path}: not an LMDB (no data.mdb inside); write one with make_lmdb.py "
                               f"or convert_imageset.py")
        self._shared = _acquire_environment(self.path)
        self._release = weakref.finalize(self, _release_environment, self._shared)
        self.env = self._shared.env
        with self.env.begin() as txn:
            self.keys = list(txn.cursor().iternext(keys=True, values=False))
        if not self.keys:
            raise DatasetError(f"{self.path}: the LMDB holds no records")
        self._local = threading.local()

    def __len__(self):
        return len(self.keys)

    def _txn(self):
        txn = getattr(self._local, "txn", None)
        if txn is None:
            txn = self._local.txn = self.env.begin(buffers=False)
        return txn

    def value(self, index):
        """The serialized value of record `index` (bytes)."""
        value = self._txn().get(self.keys[index])
        if value is None:
            raise DatasetError(f"{self.path}: record {self.keys[index]!r} vanished while reading")
        return value

    def datum(self, index):
        """(array (C, H, W), label) of record `index`; encoded images are decoded by OpenCV (BGR)."""
        where = f"{self.path}: record {self.keys[index].decode('utf-8', 'replace')}"
        return decode_datum(self.value(index), where)

    def close(self):
        """Lets go of the database (it closes when no reader holds it)."""
        self._local = threading.local()
        self._release()
        self._shared = self.env = None


def read_keys(path):
    """All keys of an LMDB as strings, in key order."""
    reader = LmdbReader(path)
    try:
        return [key.decode("utf-8", "replace") for key in reader.keys]
    finally:
        reader.close()


def key_index(key):
    """The list position a convert_imageset key starts with (`00000042_x.png` -> 42), or None."""
    head = key.split(b"_", 1)[0] if isinstance(key, bytes) else key.split("_", 1)[0]
    return int(head) if len(head) == 8 and head.isdigit() else None


def pair_stem(key):
    """The pair a make_lmdb key names (`00000007_00042_colors.png` and `00000007_00042_depth.png`: `00042`), or
    None for a key of another naming (any pair of those is taken as paired)."""
    name = (key.decode("utf-8", "replace") if isinstance(key, bytes) else key).split("_", 1)[-1]
    for suffix in (pairs_io.COLOR_SUFFIX, pairs_io.DEPTH_SUFFIX):
        if name.endswith(suffix + ".png"):
            return name[:-len(suffix + ".png")]
    return None


def first_unpaired(keys, other_keys):
    """The first two keys at one position that do not start with the same 8-digit position or, where both follow
    make_lmdb's naming, name different pairs; None when every position agrees."""
    for a, b in zip(keys, other_keys):
        stems = {pair_stem(a), pair_stem(b)}
        if key_index(a) != key_index(b) or (None not in stems and len(stems) > 1):
            return tuple(key.decode("utf-8", "replace") if isinstance(key, bytes) else key for key in (a, b))
    return None


def check_paired(paths):
    """DatasetError unless the LMDBs hold the same number of records whose keys start with the same
    8-digit positions, in the same order (what keeps two Data layers paired record by record), and name the
    same pair where both follow make_lmdb's naming (`<stem>_colors.png`, `<stem>_depth.png`)."""
    readers = [LmdbReader(p) for p in paths]
    try:
        first = readers[0]
        for other in readers[1:]:
            if len(other) != len(first):
                raise DatasetError(f"{other.path} holds {len(other)} records but {first.path} holds {len(first)}: "
                                   f"the two Data layers would drift apart; rebuild them together with make_lmdb.py")
            unpaired = first_unpaired(first.keys, other.keys)
            if unpaired:
                raise DatasetError(f"{first.path} and {other.path} are not paired: key {unpaired[0]!r} meets "
                                   f"{unpaired[1]!r}; rebuild them together with make_lmdb.py")
    finally:
        for reader in readers:
            reader.close()


def compute_mean(path):
    """The mean record of an LMDB as float32 (C, H, W), as Caffe's compute_image_mean computes it."""
    reader = LmdbReader(path)
    try:
        total = None
        for index in range(len(reader)):
            array, _ = reader.datum(index)
            total = array.astype(np.float64) if total is None else total + array
            if total.shape != array.shape:
                raise DatasetError(f"{path}: records of different shapes; a mean needs one size")
        return (total / len(reader)).astype(np.float32)
    finally:
        reader.close()


# -- Writing --------------------------------------------------------------------------------------------
LMDB_FILES = ("data.mdb", "lock.mdb")


def is_replaceable_lmdb(path):
    """True for what --overwrite may replace at a database path: a folder (not a link) holding nothing but
    an LMDB's files, or nothing at all."""
    return os.path.isdir(path) and not os.path.islink(path) and set(os.listdir(path)) <= set(LMDB_FILES)


class LmdbWriter:
    """Writes records to a new LMDB in the order given, committing every 1000 as convert_imageset does;
    the database appears at `path` only when close() succeeds (use as a context manager). The map size is
    Caffe's 1 TB of address space (the file only grows as records are added)."""

    def __init__(self, path, overwrite=False):
        import lmdb
        self.path = os.path.abspath(os.fspath(path))
        if os.path.lexists(self.path) and not is_replaceable_lmdb(self.path):
            raise OutputError(f"{self.path}: exists and is not an LMDB (a folder of only {LMDB_FILES[0]} and "
                              f"{LMDB_FILES[1]}), so it is not replaced even with --overwrite; choose another "
                              f"database path")
        if os.path.exists(self.path) and not overwrite:
            raise DatasetError(f"{self.path}: already exists; remove it or pass --overwrite")
        parent = os.path.dirname(self.path)
        make_folder(parent)
        self.partial = os.path.join(parent, f".{os.path.basename(self.path)}.partial")
        shutil.rmtree(self.partial, ignore_errors=True)
        self.env = lmdb.open(self.partial, map_size=LMDB_MAP_SIZE, subdir=True, meminit=False)
        self._txn = self.env.begin(write=True)
        self.count = 0

    def put(self, key, value):
        """Stores one record (key: str or bytes, value: bytes)."""
        self._txn.put(key.encode("utf-8") if isinstance(key, str) else key, value)
        self.count += 1
        if self.count % COMMIT_EVERY == 0:
            self._txn.commit()
            self._txn = self.env.begin(write=True)

    def finish(self):
        """Commits the rest to the partial database and closes it; nothing at `path` changes yet."""
        if self.env is not None:
            self._txn.commit()
            self.env.sync(True)
            self.env.close()
            self.env = None

    def close(self):
        """Commits the rest and moves the database into place (install_together)."""
        install_together([self])

    def abort(self):
        """Drops the partial database."""
        try:
            if self.env is not None:
                self._txn.abort()
                self.env.close()
                self.env = None
        finally:
            shutil.rmtree(self.partial, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.close()
        else:
            self.abort()


def install_together(writers):
    """Finishes the writers' databases and moves them into place as one step: each database being replaced is
    first moved aside (never deleted before its successor is in), and an error or an interrupt before the last
    is in moves every one back, so paired databases are either all old or all new, and none goes missing."""
    asides = []
    try:
        for writer in writers:
            writer.finish()
        try:
            for writer in writers:
                asides.append(aside_name(writer.path) if os.path.lexists(writer.path) else None)
                if asides[-1] is not None:
                    os.replace(writer.path, asides[-1])
                os.replace(writer.partial, writer.path)
        except BaseException:
            _move_back(writers, asides)
            raise
    finally:
        for writer in writers:
            shutil.rmtree(writer.partial, ignore_errors=True)
    for aside in asides:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


def _move_back(writers, asides):
    """Undoes install_together's moves, last first, reading each writer's state from the disk (an interrupt may
    fall between a move and the next line): the new database goes back to its partial name, the old one from
    aside to its path."""
    for writer, aside in reversed(list(zip(writers, asides))):
        if not os.path.exists(writer.partial) and os.path.isdir(writer.path):
            os.replace(writer.path, writer.partial)
        if aside is not None and os.path.lexists(aside) and not os.path.lexists(writer.path):
            os.replace(aside, writer.path)


def read_list_file(path):
    """convert_imageset's list file: [(file, label)], the label after the last space (0 when absent)."""
    from ..inputs import text_lines
    lines = []
    for number, line in enumerate(text_lines(path), 1):
        if not line.strip():
            continue
        name, space, label = line.rpartition(" ")
        if not space:
            name, label = line, "0"
        try:
            lines.append((name, int(label)))
        except ValueError:
            raise DatasetError(f"{path}:{number}: expected '<file> <integer label>', got {line!r}") from None
        if not -2 ** 31 <= lines[-1][1] < 2 ** 31:
            raise DatasetError(f"{path}:{number}: label {label} does not fit a Datum's label (a 32-bit integer)")
    if not lines:
        raise DatasetError(f"{path}: the list file names no images")
    return lines


def image_datum(path, label=0, resize_height=0, resize_width=0, is_color=True, encoded=False):
    """The serialized Datum convert_imageset stores for one image (see the module docstring)."""
    import cv2
    image = pairs_io.read_color_bgr(path) if is_color else pairs_io.read_gray(path)
    resized = resize_height > 0 and resize_width > 0
    if resized:
        image = cv2.resize(image, (resize_width, resize_height))
    if encoded:
        extension = os.path.splitext(path)[1].lower()
        # Caffe keeps the file's bytes unless a size was asked for (either one) or the channels changed
        if not resize_height and not resize_width and (image.ndim == 3) == is_color:
            with open(path, "rb") as handle:
                return encoded_datum(handle.read(), label).SerializeToString()
        ok, buffer = cv2.imencode(extension or ".png", image)
        if not ok:
            raise DatasetError(f"{path}: OpenCV cannot re-encode the image as {extension}")
        return encoded_datum(buffer.tobytes(), label).SerializeToString()
    chw = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    return encode_datum(chw, label)


def convert_imageset(root, list_file, db, resize_height=0, resize_width=0, gray=False, shuffle=False,
                     encoded=False, seed=0, check_size=False, overwrite=False, progress=True):
    """Caffe's convert_imageset (see the module docstring); returns the number of records written."""
    from tqdm import tqdm
    lines = read_list_file(list_file)
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(lines))
        lines = [lines[i] for i in order]
    paths = [os.path.join(os.fspath(root), name) if root else name for name, _ in lines]
    missing = [path for path in paths if not os.path.exists(path)]
    if missing:  # before the database is created: Caffe would skip them and go on
        raise DatasetError(f"{list_file}: {len(missing)} of the {len(paths)} files it lists do not exist: "
                           f"{listing(missing)}; fix the list or ROOT")
    size = None
    with LmdbWriter(db, overwrite=overwrite) as writer:
        for line_id, ((name, label), path) in enumerate(zip(tqdm(lines, desc=os.path.basename(os.fspath(db)),
                                                                 unit="img", disable=not progress), paths)):
            value = image_datum(path, label, resize_height, resize_width, not gray, encoded)
            if check_size and not encoded:
                if size is None:
                    size = len(value)
                elif len(value) != size:
                    raise DatasetError(f"{name}: its record has {len(value)} bytes, the first {size}: "
                                       f"images differ in size (pass --resize_height/--resize_width)")
            writer.put(f"{line_id:08d}_{name}", value)
        return writer.count
