"""Writing files so that readers never see half of one: write a temporary sibling, make it durable, then
rename. The data reaches the disk (fsync) before the rename, and the rename itself is made durable by syncing
the folder, so a crash or power cut at any moment leaves under the final name either the old file or the
complete new one, never an empty or truncated file."""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Yields a file object for a temporary file beside `path`; renames it over `path` on success and
    removes it on any error, so `path` holds either its old content or the complete new one."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part", dir=folder)
    try:
        # text: UTF-8, with the bytes of file names that are not valid UTF-8 written back as they were
        text = {} if "b" in mode else {"encoding": "utf-8", "errors": "surrogateescape"}
        with os.fdopen(fd, mode, **text) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
        _sync_folder(folder)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _sync_folder(folder):
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
