"""Q8_0 and Q4_0 block quantization in NumPy, written like ggml's reference C code (introduced in notebook 08).

A block is 32 consecutive weights of one row. Q8_0 stores one float16 scale `d` and 32 int8 values
(34 bytes, 8.5 bits per weight); Q4_0 stores one float16 scale and 32 4-bit values (18 bytes, 4.5 bits
per weight). The arithmetic follows `quantize_row_q8_0_ref` and `quantize_row_q4_0_ref` in
ggml/src/ggml-quants.c step by step, in float32, so the bytes can be compared with llama.cpp's output.
"""

from __future__ import annotations

import numpy as np

QK = 32  # weights per block for Q8_0 and Q4_0
Q8_0_BYTES = 2 + QK  # float16 scale + 32 int8
Q4_0_BYTES = 2 + QK // 2  # float16 scale + 32 nibbles


def _blocks(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.size % QK:
        raise ValueError(f"{x.size} values do not fill whole blocks of {QK}: the row size must be a multiple of {QK}.")
    return x.reshape(-1, QK)


def _roundf(v: np.ndarray) -> np.ndarray:
    """C's roundf: halves round away from zero (np.round would round them to even)."""
    return np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))


def quantize_q8_0(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q8_0: (scales float16 of shape (n_blocks,), int8 values of shape (n_blocks, 32)) (notebook 08)."""
    b = _blocks(x)
    amax = np.abs(b).max(axis=1)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    q = _roundf(b * inv[:, None]).astype(np.int8)
    return d.astype(np.float16), q


def dequantize_q8_0(d: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Q8_0 back to float32: value = d * q, block by block (notebook 08)."""
    return (np.asarray(d, np.float16).astype(np.float32)[:, None] * np.asarray(q, np.float32)).reshape(-1)


def quantize_q4_0(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_0: (scales float16 (n_blocks,), unsigned 4-bit values 0..15 as uint8 (n_blocks, 32)) (notebook 08).

    The scale is d = m / -8 where m is the value of largest magnitude (its sign kept), so m maps to
    exactly -8 and the other values to round(x/d) + 8, clipped to 15."""
    b = _blocks(x)
    idx = np.abs(b).argmax(axis=1)  # first index of the largest |x|, as the C loop's strict '<' keeps
    m = b[np.arange(len(b)), idx]
    d = (m / np.float32(-8)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    v = (b * inv[:, None] + np.float32(8.5)).astype(np.float32)
    q = np.minimum(15, np.trunc(v)).astype(np.uint8)  # C: MIN(15, (int8_t)(x*id + 8.5f))
    return d.astype(np.float16), q


def dequantize_q4_0(d: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Q4_0 back to float32: value = d * (q - 8) (notebook 08)."""
    return (np.asarray(d, np.float16).astype(np.float32)[:, None]
            * (np.asarray(q, np.float32) - 8)).reshape(-1)


def pack_q8_0(d: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The bytes ggml stores for Q8_0 blocks: (n_blocks, 34) uint8 (notebook 08)."""
    d = np.asarray(d, "<f2").reshape(-1, 1).view(np.uint8)
    return np.concatenate([d, np.asarray(q, np.int8).view(np.uint8)], axis=1)


def pack_q4_0(d: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The bytes ggml stores for Q4_0 blocks: (n_blocks, 18) uint8; byte j holds value j (low nibble)
    and value j+16 (high nibble) (notebook 08)."""
    d = np.asarray(d, "<f2").reshape(-1, 1).view(np.uint8)
    q = np.asarray(q, np.uint8)
    return np.concatenate([d, q[:, :QK // 2] | (q[:, QK // 2:] << 4)], axis=1)


def unpack_q8_0(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split Q8_0 block bytes (n_blocks, 34) into (scales float16, int8 values) (notebook 08)."""
    raw = np.ascontiguousarray(np.asarray(raw, np.uint8).reshape(-1, Q8_0_BYTES))
    return raw[:, :2].copy().view("<f2").reshape(-1), raw[:, 2:].view(np.int8)


def unpack_q4_0(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split Q4_0 block bytes (n_blocks, 18) into (scales float16, 4-bit values 0..15) (notebook 08)."""
    raw = np.ascontiguousarray(np.asarray(raw, np.uint8).reshape(-1, Q4_0_BYTES))
    qs = raw[:, 2:]
    return raw[:, :2].copy().view("<f2").reshape(-1), np.concatenate([qs & 0x0F, qs >> 4], axis=1)


def block_errors(x: np.ndarray, x_hat: np.ndarray) -> dict[str, np.ndarray]:
    """Per block of 32: RMS error, largest absolute error, and RMS error relative to the block's RMS (notebook 08)."""
    b, bh = _blocks(x).astype(np.float64), _blocks(x_hat).astype(np.float64)
    err = bh - b
    rms = np.sqrt((err ** 2).mean(axis=1))
    scale = np.sqrt((b ** 2).mean(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, rms / scale, 0.0)
    return {"rmse": rms, "max_abs": np.abs(err).max(axis=1), "rel_rmse": rel}
