"""Device choice for every command and API: `--device auto|cpu|cuda|cuda:N` as a torch.device, checked once
with a one-line error, and float32 kept exact on GPUs for the span of a computation."""
import contextlib
import re

import torch

from .errors import EigenDepthError

_FORM = re.compile(r"^(auto|cpu|cuda)(:\d+)?$")


class DeviceError(EigenDepthError, RuntimeError):
    """A device name torch does not know, or a GPU this process cannot see."""


def resolve_device(device="auto"):
    """A torch.device from 'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:N' or a torch.device;
    DeviceError naming the option's value and what to do otherwise."""
    if isinstance(device, torch.device):
        name = str(device)
    else:
        name = str(device).strip().lower()
        if not _FORM.match(name) or name.startswith("auto:") or name.startswith("cpu:"):
            raise DeviceError(f"--device {device}: not a device: use auto, cpu, cuda or cuda:N")
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: CUDA was requested but torch sees no GPU: use --device cpu "
                              f"(or set_mode_cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: torch sees {torch.cuda.device_count()} GPU(s), numbered from 0")
    return device


@contextlib.contextmanager
def exact_float32(device):
    """Within the block, CUDA convolutions and matrix products run in full float32 (TF32 would move the
    numbers at the 1e-3 level); torch's previous settings come back afterwards. No effect on the CPU."""
    if torch.device(device).type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def default_batch_size(device):
    """Images per forward when --batch-size is not given: 32 on CUDA, 8 on the CPU."""
    return 32 if getattr(device, "type", str(device)) == "cuda" else 8


def native_bfloat16(device):
    """Whether `device` computes bfloat16 in hardware: a CUDA GPU that supports it, or a CPU with AVX-512 BF16
    or AMX (oneDNN's own test). Elsewhere torch emulates it, more slowly than float32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
