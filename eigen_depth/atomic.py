"""Writing files so that readers never see half of one: write a temporary sibling, make it durable, then
rename. The data reaches the disk (fsync) before the rename, and the rename itself is made durable by syncing
the folder, so a crash or power cut at any moment leaves under the final name either the old file or the
complete new one, never an empty or truncated file."""
import contextlib
import os
import stat
import tempfile

from .errors import OutputError


def make_folder(path):
    """os.makedirs(path, exist_ok=True); a one-line OutputError when path, or a folder above it, is a file."""
    path = os.fspath(path)
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = path
        while blocking and not os.path.exists(blocking):
            blocking = os.path.dirname(blocking)
        if blocking and blocking != path:
            raise OutputError(f"{blocking}: is a file, so the folder {path} cannot be made: choose another output "
                              f"folder") from None
        raise OutputError(f"{path}: is a file, not a folder: choose another output folder") from None
    return path


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Yields a file object for a temporary file beside `path`; renames it over `path` on success and
    removes it on any error, so `path` holds either its old content or the complete new one. The new file keeps
    the old one's permissions (a new one gets the process's umask, as open() gives), and a link is written
    through: its target is replaced, the link stays."""
    path = os.path.realpath(os.fspath(path)) if os.path.islink(path) else os.fspath(path)
    if os.path.isdir(path):
        raise OutputError(f"{path}: is a folder: give the name of the file to write")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"{path}: its folder does not exist (or is a file): create the folder or choose another "
                          f"path")
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part", dir=folder)
    try:
        # text: UTF-8, with the bytes of file names that are not valid UTF-8 written back as they were
        text = {} if "b" in mode else {"encoding": "utf-8", "errors": "surrogateescape"}
        with os.fdopen(fd, mode, **text) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, _mode_for(path))
        os.replace(temporary, path)
        sync_folder(folder)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _mode_for(path):
    """The permission bits a rewritten `path` keeps: its own where it exists, else what open() would give."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask():
    """The process's umask: from /proc where Linux shows it (setting it to read it is not thread-safe), else
    the one it had when this module was imported."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return _IMPORT_UMASK


def _import_umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_IMPORT_UMASK = _import_umask()


def aside_name(path):
    """A free hidden name beside `path` (`.<name>.<random>.old`) to move it to while its successor goes in."""
    import secrets
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{secrets.token_hex(6)}.old")


def write_durable(path, data):
    """Writes `data` to `path` in place and fsyncs it: for files inside a folder that readers see only once
    it is complete and renamed into place (the folder is then what appears atomically)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_copy(source, path):
    """Copies the file `source` to `path` through atomic_write."""
    import shutil
    with open(source, "rb") as handle, atomic_write(path) as target:
        shutil.copyfileobj(handle, target)


def sync_folder(folder):
    """Makes a rename inside `folder` durable (where the platform can open folders; Windows cannot)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
