"""Decode steps on block-quantized weights: the Linear layers of a GGUF base read in 4 and 8 bits.

One decode step of SmolLM2-135M reads all of its weights once per token; de-quantized to fp32 that is
~540 MB, and the step is bound by memory bandwidth (~50 ms a token here against llama.cpp's ~10 ms on
its ~85 MB of 4-bit weights). The bundled GGUF's projections are Q4_1 and its embedding (tied to the
output layer) Q8_0, blocks of 32, so after de-quantization every block of a Linear weight is still
exactly `d * q + m` with 16 or 256 levels. `pack_model` finds such weights, keeps them packed (~115 MB)
and swaps each layer for a `PackedLinear` that multiplies a few rows (decode steps) through a small C
kernel (`packed_kernels.c`: each block expanded to fp32 in registers, bit-identical to the fp32
weights) and many rows (prefill) through the fp32 weight as before. A weight that is not exactly
representable, a GPU, or a machine without a C compiler keep the fp32 path.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

BLOCK = 32
#: Up to this many rows (tokens) per forward go through the packed kernel: a decode step of up to this many
#: running requests. Beyond it, a prefill's many rows are faster through fp32 matrix multiplication.
MAX_PACKED_ROWS = 16
SOURCE = Path(__file__).with_name("packed_kernels.c")
HEADERS = [Path(__file__).with_name(name) for name in ("simd.h", "thread_pool.h")]
_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-shared", "-fPIC", "-Wall", "-pthread"]

_libraries: dict[Path, ctypes.CDLL | None] = {}  # per built file; None: it could not be built or loaded
_libraries_lock = threading.Lock()


def _build(target: Path) -> None:
    wanted = os.environ.get("CC")
    compiler = shutil.which(wanted) if wanted else shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise OSError(f"no C compiler: {wanted!r} (CC) is not on PATH" if wanted
                      else "no C compiler (cc or gcc) on PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        staging = Path(scratch) / target.name
        result = subprocess.run([compiler, *_FLAGS, str(SOURCE), "-o", str(staging), "-lm"],  # noqa: S603 (our paths)
                                capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise OSError(f"{compiler} failed: {result.stderr.strip()[-500:]}")
        os.replace(staging, target)  # atomic: another worker building at the same time gets a whole file


def _cpu_signature() -> bytes:
    """What -march=native compiles for: a kernel built on another CPU (a shared cache) is not reused."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return os.uname().machine.encode()
    flags = next((line for line in info.splitlines() if line.startswith(("flags", "Features"))), "")
    return (os.uname().machine + flags).encode()


def kernel_directory() -> Path:
    from django.conf import settings

    return Path(settings.MODEL_CACHE_DIR) / "kernels"


def library(directory: Path | None = None) -> ctypes.CDLL | None:
    """The compiled kernel, built once per source and machine (~2 s); None where it cannot be built."""
    sources = b"".join(path.read_bytes() for path in [SOURCE, *HEADERS])
    key = hashlib.sha256(sources + " ".join(_FLAGS).encode() + _cpu_signature()).hexdigest()[:16]
    target = (directory or kernel_directory()) / f"packed-{key}.so"
    with _libraries_lock:
        if target in _libraries:
            return _libraries[target]
        try:
            if not target.exists():
                _build(target)
            loaded: ctypes.CDLL | None = ctypes.CDLL(str(target))
        except (OSError, subprocess.SubprocessError) as error:
            logger.warning("packed decode kernel unavailable, decoding on fp32 weights: %s", error)
            loaded = None
        if loaded is not None:
            pointer = ctypes.c_void_p
            loaded.q4_linear.argtypes = [pointer] * 5 + [ctypes.c_int] * 4
            loaded.q8_linear.argtypes = [pointer] * 4 + [ctypes.c_int] * 4
            loaded.q4_linear.restype = loaded.q8_linear.restype = None
            loaded.packed_simd.restype = ctypes.c_char_p
            logger.info("packed decode kernel ready (%s)", loaded.packed_simd().decode())
        _libraries[target] = loaded
        return loaded


# --- packing -------------------------------------------------------------------------------------------------

def _blocks(weight: torch.Tensor) -> torch.Tensor | None:
    if weight.dim() != 2 or weight.dtype != torch.float32 or weight.shape[1] % BLOCK:
        return None
    return weight.detach().reshape(weight.shape[0], -1, BLOCK)


def _fp16(value: torch.Tensor) -> torch.Tensor:
    """GGUF stores block scales in fp16: snapping to it recovers them exactly from the de-quantized weights."""
    return value.half().float()


def pack_q4(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(nibbles [out, in/2], scales [out, in/32], minimums [out, in/32]) if every block of `weight` is
    exactly `d * q + m` with q in 0..15 and an fp16 d (a de-quantized Q4_1 tensor); else None.

    Scales stay fp32 here: converting fp16 ones in the kernel cost more time than their smaller size saved."""
    blocks = _blocks(weight)
    if blocks is None:
        return None
    low = blocks.amin(-1)
    scale = _fp16((blocks.amax(-1) - low) / 15)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    levels = ((blocks - low[..., None]) / safe[..., None]).round().clamp(0, 15)
    if not torch.equal(levels * scale[..., None] + low[..., None], blocks):
        return None
    levels = levels.to(torch.uint8)
    nibbles = (levels[..., :16] | (levels[..., 16:] << 4)).reshape(weight.shape[0], -1).contiguous()
    return nibbles, scale.contiguous(), low.contiguous()


def pack_q8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(int8 levels [out, in], scales [out, in/32]) if every block is exactly `d * q` with q in -128..127
    and an fp16 d (a de-quantized Q8_0 tensor); else None."""
    blocks = _blocks(weight)
    if blocks is None:
        return None
    scale = _fp16(blocks.abs().amax(-1) / 127)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    levels = (blocks / safe[..., None]).round().clamp(-128, 127)
    if not torch.equal(levels * scale[..., None], blocks):
        return None
    return levels.to(torch.int8).reshape(weight.shape).contiguous(), scale.contiguous()


class PackedLinear(torch.nn.Linear):
    """A Linear layer that also holds its weight packed, and multiplies decode-sized inputs with it.

    It shares the original layer's weight and bias (tied embeddings stay tied; peft wraps it like any
    Linear). The packed copy is a non-persistent buffer: counted in the model's memory, never saved.
    """

    packed_levels: torch.Tensor
    packed_scales: torch.Tensor
    packed_minimums: torch.Tensor  # 4-bit only

    def __init__(self, source: torch.nn.Linear, kernel: ctypes.CDLL, packed: tuple[torch.Tensor, ...]) -> None:
        torch.nn.Module.__init__(self)
        self.in_features, self.out_features = source.in_features, source.out_features
        self.weight, self.bias = source.weight, source.bias
        self.kernel = kernel
        self.bits = 4 if len(packed) == 3 else 8
        for name, tensor in zip(("packed_levels", "packed_scales", "packed_minimums"), packed, strict=False):
            self.register_buffer(name, tensor, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // self.in_features if x.numel() else 0
        if not (0 < rows <= MAX_PACKED_ROWS and x.dtype == torch.float32 and x.device.type == "cpu"
                and not (x.requires_grad and torch.is_grad_enabled())):
            return F.linear(x, self.weight, self.bias)
        flat = x.reshape(rows, self.in_features).contiguous()
        out = torch.empty(rows, self.out_features, dtype=torch.float32)
        pointer = ctypes.c_void_p
        threads = torch.get_num_threads()
        if self.bits == 4:
            self.kernel.q4_linear(pointer(self.packed_levels.data_ptr()), pointer(self.packed_scales.data_ptr()),
                                  pointer(self.packed_minimums.data_ptr()), pointer(flat.data_ptr()),
                                  pointer(out.data_ptr()), rows, self.in_features, self.out_features, threads)
        else:
            self.kernel.q8_linear(pointer(self.packed_levels.data_ptr()), pointer(self.packed_scales.data_ptr()),
                                  pointer(flat.data_ptr()), pointer(out.data_ptr()), rows, self.in_features,
                                  self.out_features, threads)
        if self.bias is not None:
            out += self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, packed={self.bits}-bit"


def pack_model(model: Any, kernel_dir: Path | None = None) -> int:
    """Swap every exactly-representable Linear of a CPU fp32 model for a PackedLinear; the bytes added."""
    parameter = next(model.parameters(), None)
    if parameter is None or parameter.device.type != "cpu" or parameter.dtype != torch.float32:
        return 0
    kernel = library(kernel_dir)
    if kernel is None:
        return 0
    added, swapped = 0, 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not torch.nn.Linear:
                continue
            packed = pack_q4(child.weight) or pack_q8(child.weight)
            if packed is None:
                continue
            setattr(parent, name, PackedLinear(child, kernel, packed))
            added += sum(tensor.numel() * tensor.element_size() for tensor in packed)
            swapped += 1
    if swapped:
        logger.info("decoding %d layers on packed weights (+%.0f MB)", swapped, added / 1e6)
    return added
