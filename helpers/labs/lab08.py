"""Auto-checks for lab 08 (how quantization works): each `check_*` raises AssertionError with a hint.

Introduced in lab 08. The learner's functions are tested on fresh random inputs against
`helpers.quant.blocks`, the NumPy port of ggml's reference code.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from helpers.quant import blocks


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def _fresh(seed: int, n_blocks: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n_blocks, 32)) * rng.uniform(0.001, 0.2, (n_blocks, 1))).astype(np.float32)
    x[0] = 0.0  # an all-zero block: the scale is 0 and no division may fail
    x[1, 5] = -3.0  # a negative outlier
    # a block whose scale is exactly 1 (Q8_0) with values half-way between integers: C's roundf rounds them away
    # from zero, np.round to even (2.5 -> 3 against 2)
    x[2] = np.resize(np.array([127.0, 0.5, 1.5, 2.5, -0.5, -2.5, 3.5, -6.5], np.float32), 32)
    return x.astype(np.float16).astype(np.float32)  # f16 values, as in the model file


def _check_format(name: str, quantize_fn: Callable, dequantize_fn: Callable, seed: int, scale_hint: str,
                  value_hint: str, dequant_hint: str) -> None:
    """Compare a learner's block quantize/dequantize with the reference of `name` on fresh blocks."""
    ref_q = getattr(blocks, f"quantize_{name.lower()}")
    ref_dq = getattr(blocks, f"dequantize_{name.lower()}")
    x = _fresh(seed)
    for i, block in enumerate(x):
        d, q = quantize_fn(block.copy())
        want_d, want_q = ref_q(block)
        assert np.float16(d) == want_d[0], f"block {i}: scale {float(d)} != {float(want_d[0])}; {scale_hint}"
        q = np.asarray(q)
        assert q.shape == (32,), f"return 32 values per block, got shape {q.shape}"
        bad = np.flatnonzero(q.astype(np.int32) != want_q[0].astype(np.int32))
        assert not len(bad), (f"block {i}: value {x[i, bad[0]]} -> {q[bad[0]]}, expected {want_q[0][bad[0]]}; "
                              f"{value_hint}")
        back = np.asarray(dequantize_fn(d, q), np.float32)
        assert np.allclose(back, ref_dq(want_d, want_q), rtol=0, atol=1e-7), f"dequantize: {dequant_hint}"
    _ok(f"{name} matches ggml's reference on {len(x)} fresh blocks (zero block and outlier included)")


def check_q8_0(quantize_fn: Callable, dequantize_fn: Callable, seed: int = 8) -> None:
    """Lab 08, task 1: Q8_0 quantize/dequantize of one block of 32 matches ggml's reference."""
    _check_format("Q8_0", quantize_fn, dequantize_fn, seed, "use d = max|x| / 127 in float32, stored as float16",
                  "round halves away from zero like C's roundf (np.round rounds them to even), in float32",
                  "multiply the float16 scale (as float32) by the integers")


def check_q4_0(quantize_fn: Callable, dequantize_fn: Callable, seed: int = 4) -> None:
    """Lab 08, task 2: Q4_0 quantize/dequantize of one block of 32 matches ggml's reference."""
    _check_format("Q4_0", quantize_fn, dequantize_fn, seed,
                  "d = m / -8 where m is the value with the largest magnitude, sign kept",
                  "nibble = min(15, trunc(x / d + 8.5)), in float32", "float16 scale * (nibble - 8)")


def check_block_errors(fn: Callable, seed: int = 32) -> None:
    """Lab 08, task 3: RMS error per block of 32 between weights and their read-back values."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(32 * 50).astype(np.float32)
    x_hat = blocks.dequantize_q4_0(*blocks.quantize_q4_0(x))
    got = np.asarray(fn(x, x_hat), np.float64)
    want = blocks.block_errors(x, x_hat)["rmse"]
    assert got.shape == want.shape, f"return one number per block of 32: shape {want.shape}, got {got.shape}"
    assert np.allclose(got, want, rtol=1e-5), "RMS error per block: sqrt(mean((x_hat - x)**2)) over each 32 values"
    _ok(f"RMS error per block matches on {len(want)} fresh blocks")


def check_fallback_prediction(predicted: set[str], path, requested_type: str) -> None:
    """Lab 08, task 4: the predicted set of fallback tensors equals what llama.cpp did to the file at `path`."""
    from helpers.quant.gguf_file import fallback_tensors

    actual = {f.name for f in fallback_tensors(path, requested_type)}
    missing, extra = sorted(actual - set(predicted)), sorted(set(predicted) - actual)
    assert not missing and not extra, (f"{len(missing)} fallbacks not predicted (e.g. {missing[:3]}), {len(extra)} "
                                       f"predicted wrongly (e.g. {extra[:3]}): a 2-D tensor falls back when its row "
                                       "size (last dimension) is not a multiple of 256")
    _ok(f"predicted all {len(actual)} fallback tensors of {requested_type} before quantizing")
