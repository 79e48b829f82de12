"""How the process's C allocator treats the large blocks a forward or a training iteration frees.

With its defaults, glibc's malloc serves a block above its mmap threshold (128 KiB at first, rising to 32 MiB
as it sees such blocks freed) from a fresh mapping and returns it to the kernel when freed, and it also
returns the top of its heap once more than a trim threshold of it is free. A net's activations are such blocks:
every forward then maps tens of megabytes afresh and the kernel zero-fills each page on first touch. On the
project's 2-core machine that was 20-30 ms of kernel time per image in the refining net's forward at batch 8
and 4-20 % of its wall time, and 7-16 % of a refining-stage training iteration (the README's "Speed").

`configure()` raises both thresholds (blocks up to 1 GiB come from the heap; up to 2 GiB of it may stay free)
so freed activations are reused by the next forward. Peak memory changes little, since those blocks were in
use at the peak anyway, but memory freed after the peak stays with the process until it exits.

It is applied when eigen_depth is imported, on Linux with glibc, unless the environment already sets glibc's
malloc (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_, or glibc.malloc.* in GLIBC_TUNABLES:
the user's choice stands) or EIGEN_DEPTH_MALLOC=system asks for the allocator's own behaviour."""
import os

OPT_OUT = "EIGEN_DEPTH_MALLOC"
MMAP_THRESHOLD_BYTES = 1 << 30          # mallopt's M_MMAP_THRESHOLD
TRIM_THRESHOLD_BYTES = (1 << 31) - 1    # mallopt's M_TRIM_THRESHOLD (an int)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def user_has_chosen(environ=os.environ):
    """Whether the environment sets glibc's malloc itself, or opts out of configure()."""
    if environ.get(OPT_OUT, "").strip().lower() == "system":
        return True
    if any(name in environ for name in _USER_SETTINGS):
        return True
    return "glibc.malloc." in environ.get("GLIBC_TUNABLES", "")


def configure(environ=os.environ):
    """Keeps freed large blocks for reuse (see the module's text). Returns True when glibc took the settings,
    False where they do not apply (another C library or platform, the user's own settings)."""
    if user_has_chosen(environ) or not is_glibc():
        return False
    import ctypes
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def is_glibc():
    """Whether this process runs on glibc (whose malloc configure() sets)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False
