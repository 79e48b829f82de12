"""eigen_depth.allocator: importing the package makes glibc's malloc serve large blocks from its heap and keep
them when freed, unless the user set malloc's behaviour. Observed through glibc's own counters (mallinfo2:
bytes in mapped blocks, free bytes kept in the heap) in fresh processes, so nothing here depends on our code
to read the effect back."""
import json
import os
import subprocess
import sys

import pytest

from eigen_depth import allocator

pytestmark = pytest.mark.skipif(not allocator.is_glibc(), reason="glibc's malloc only")

PROBE = r"""
import ctypes, json, sys
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
if sys.argv[1] == "import":
    import eigen_depth
size = 100 << 20
block = libc.malloc(size)
ctypes.memset(block, 1, size)
mapped = libc.mallinfo2().hblkhd
libc.free(block)
print(json.dumps({"mapped": mapped, "kept_free": libc.mallinfo2().fordblks}))
"""


def probe(importing, **environment):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env.pop(allocator.OPT_OUT, None)
    env.update(environment)
    out = subprocess.run([sys.executable, "-c", PROBE, "import" if importing else "plain"], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def test_without_the_package_a_100_mib_block_is_mapped_and_returned():
    result = probe(False)
    assert result["mapped"] >= 100 << 20
    assert result["kept_free"] < 100 << 20


def test_after_importing_the_package_it_comes_from_the_heap_and_stays_for_reuse():
    result = probe(True)
    assert result["mapped"] < 100 << 20
    assert result["kept_free"] >= 100 << 20


@pytest.mark.parametrize("environment", [{"EIGEN_DEPTH_MALLOC": "system"}, {"MALLOC_MMAP_THRESHOLD_": "131072"},
                                         {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}])
def test_the_users_own_setting_or_the_opt_out_leaves_malloc_alone(environment):
    result = probe(True, **environment)
    assert result["mapped"] >= 100 << 20
    assert result["kept_free"] < 100 << 20
