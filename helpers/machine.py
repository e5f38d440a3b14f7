"""Facts about this machine's processor that change how a runtime should be driven (notebooks 00 and 10).

Read from /proc/cpuinfo, so they cost nothing and need no package; off Linux the answers are empty.
"""

from __future__ import annotations

import platform
from pathlib import Path

X86_FEATURES = ("sse3", "ssse3", "avx", "f16c", "fma", "avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni")


def cpu_features() -> dict[str, bool]:
    """The x86 SIMD features llama.cpp's CPU kernels use, from /proc/cpuinfo (empty off Linux x86)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags = set(line.split(":", 1)[1].split())
            break
    if platform.machine().lower() in ("aarch64", "arm64"):
        return {"neon (asimd)": "asimd" in flags, "dotprod (asimddp)": "asimddp" in flags, "sve": "sve" in flags}
    aliases = {"sse3": "pni"}  # /proc/cpuinfo names SSE3 after its code name, Prescott New Instructions
    return {f: aliases.get(f, f) in flags for f in X86_FEATURES}



def int8_reduce_range() -> bool:
    """Whether ONNX Runtime's int8 weights should use 7 bits here (`quantize_dynamic(..., reduce_range=True)`)
    (notebook 10).

    On x86 CPUs without VNNI (AVX-512 VNNI or AVX-VNNI), ONNX Runtime multiplies uint8 activations by int8
    weights with VPMADDUBSW, which adds pairs of products into 16 bits and saturates; ONNX Runtime's
    quantization guide recommends 7-bit weights there. Measured on a 2-core AVX2 machine without VNNI: a
    64x32 MatMul came back 12.8 % off fp32 with 8-bit weights and 1.6 % off with reduce_range.
    """
    feats = cpu_features()
    if not feats or "avx2" not in feats:  # not x86 (ARM has its own int8 dot products), or unknown
        return False
    return not (feats.get("avx512_vnni") or feats.get("avx_vnni"))


def nvidia_gpus() -> tuple[list[dict], str | None]:
    """Each NVIDIA GPU through NVML (package `nvidia-ml-py`, module `pynvml`), and why there are none.

    One record per GPU: index, name, free/used/total bytes, utilisation % and temperature °C (None where the
    device does not report them). Returns ([], reason) without the package or without a driver.
    """
    try:
        import pynvml
    except ImportError:
        return [], "nvidia-ml-py is not installed (`pip install nvidia-ml-py`)"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return [], f"NVML could not start ({exc}): no NVIDIA GPU or driver here"
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            gpu = {"index": i, "name": name.decode() if isinstance(name, bytes) else str(name),
                   "free_bytes": int(mem.free), "used_bytes": int(mem.used), "total_bytes": int(mem.total),
                   "utilization_percent": None, "temperature_c": None}
            try:
                gpu["utilization_percent"] = float(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)
                gpu["temperature_c"] = float(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU))
            except pynvml.NVMLError:  # some devices (MIG slices, some vGPUs) do not report these
                pass
            out.append(gpu)
        return out, None
    finally:
        pynvml.nvmlShutdown()
