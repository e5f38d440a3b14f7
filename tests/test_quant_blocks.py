"""helpers.quant: NumPy Q8_0/Q4_0 against gguf-py's reference and llama.cpp's bytes, GGUF reading, the
quantize wrapper's errors and fallback warning. Small inputs, fixed seeds."""

import shutil
import warnings
from unittest import mock

import numpy as np
import pytest

from helpers.paths import GGUF_DIR
from helpers.quant import blocks
from helpers.quant.gguf_file import (NotGGUFError, check_gguf, fallback_tensors, metadata, raw_blocks, tensor_table,
                                     tensor_values, write_resized_gguf)
from helpers.quant.quantize import FallbackWarning, estimate_size, quantize, valid_types

SRC = GGUF_DIR / "edge-slm-f16.gguf"
needs_model = pytest.mark.skipif(not SRC.exists(), reason=f"{SRC} is missing: run `python -m helpers export`")


def _values(seed=0, n_blocks=256):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n_blocks, 32)) * rng.uniform(1e-3, 1.0, (n_blocks, 1))).astype(np.float16)
    x[0] = 0
    x[1, :] = 0.5  # ties and exact halves
    x[2, 7] = -4.0
    return x.astype(np.float32)


@pytest.mark.parametrize("name", ["Q8_0", "Q4_0"])
def test_blocks_match_gguf_py_reference(name):
    import gguf

    x = _values()
    qfn, pack = {"Q8_0": (blocks.quantize_q8_0, blocks.pack_q8_0),
                 "Q4_0": (blocks.quantize_q4_0, blocks.pack_q4_0)}[name]
    ours = pack(*qfn(x))
    ref = gguf.quants.quantize(x, gguf.GGMLQuantizationType[name]).reshape(ours.shape)
    assert np.array_equal(ours, ref)
    deq = gguf.quants.dequantize(ref, gguf.GGMLQuantizationType[name]).reshape(-1)
    mine = (blocks.dequantize_q8_0(*blocks.unpack_q8_0(ours)) if name == "Q8_0"
            else blocks.dequantize_q4_0(*blocks.unpack_q4_0(ours)))
    assert np.array_equal(mine, deq)


def test_q8_0_rounds_halves_away_from_zero_and_zero_block():
    x = np.zeros(32, np.float32)
    x[0], x[1], x[2] = 127.0, 2.5, -2.5  # d = 1: 2.5 -> 3 (roundf), not 2 (round half to even)
    d, q = blocks.quantize_q8_0(x)
    assert d[0] == 1 and q[0, 1] == 3 and q[0, 2] == -3 and q[0, 0] == 127
    d0, q0 = blocks.quantize_q8_0(np.zeros(32, np.float32))
    assert d0[0] == 0 and not q0.any()


def test_q4_0_largest_magnitude_maps_to_minus_8_and_errors_shrink_with_bits():
    x = _values(1)
    d, q = blocks.quantize_q4_0(x)
    idx = np.abs(x).argmax(axis=1)
    assert (q[np.arange(len(q))[3:], idx[3:]] == 0).all()  # level -8 is nibble 0
    e4 = blocks.block_errors(x, blocks.dequantize_q4_0(d, q))
    e8 = blocks.block_errors(x, blocks.dequantize_q8_0(*blocks.quantize_q8_0(x)))
    assert e4["rmse"].shape == (len(x),) and np.median(e4["rmse"]) > 5 * np.median(e8["rmse"])
    steps = np.abs(d.astype(np.float32))
    # within half a step, except the top level (+7) clips: values near +8 steps are off by up to one step
    assert (e4["max_abs"] <= steps * 1.0 + 1e-3 * np.abs(x).max(axis=1)).all()


def test_blocks_reject_partial_block():
    with pytest.raises(ValueError, match="multiple of 32"):
        blocks.quantize_q8_0(np.ones(40, np.float32))


def test_not_gguf_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(NotGGUFError, match="not a GGUF file"):
        check_gguf(bad)
    with pytest.raises(NotGGUFError):
        quantize(bad, tmp_path / "out.gguf", "Q4_0")
    with pytest.raises(FileNotFoundError):
        check_gguf(tmp_path / "missing.gguf")


def test_unknown_type_lists_valid_types(tmp_path):
    with pytest.raises(ValueError, match="Valid types: .*Q4_K_M"):
        quantize(SRC, tmp_path / "out.gguf", "Q3_0")
    assert "Q2_K" in valid_types()


@needs_model
def test_disk_space_checked_before_writing(tmp_path):
    need = estimate_size(SRC, "Q4_K_M")
    full = shutil.disk_usage(tmp_path)._replace(free=need - 1)
    with mock.patch("helpers.quant.quantize.shutil.disk_usage", return_value=full):
        with pytest.raises(OSError, match="MB needed"):
            quantize(SRC, tmp_path / "out.gguf", "Q4_K_M")
    assert not (tmp_path / "out.gguf").exists()


@needs_model
def test_llama_cpp_bytes_match_numpy(tmp_path):
    for name, qfn, pack in (("Q8_0", blocks.quantize_q8_0, blocks.pack_q8_0),
                            ("Q4_0", blocks.quantize_q4_0, blocks.pack_q4_0)):
        res = quantize(SRC, tmp_path / f"m-{name}.gguf", name)
        assert res.size_bytes == res.path.stat().st_size and res.size_bytes <= estimate_size(SRC, name)
        assert res.type_counts.get(name, 0) > 0 and res.seconds >= 0
        tensor = "blk.0.ffn_up.weight"
        typ, raw = raw_blocks(res.path, tensor)
        assert typ == name
        assert np.array_equal(pack(*qfn(tensor_values(SRC, tensor))), raw)


@needs_model
def test_metadata_and_table():
    meta = metadata(SRC)
    assert meta["general.architecture"] == "llama"
    table = tensor_table(SRC)
    assert any(t.name == "token_embd.weight" for t in table)
    assert all(t.n_bytes > 0 for t in table)


@needs_model
def test_fallback_warning_names_tensors(tmp_path):
    odd = write_resized_gguf(SRC, tmp_path / "odd-f16.gguf", hidden=320)
    assert metadata(odd)["llama.embedding_length"] == 320
    with pytest.warns(FallbackWarning, match="blk.0.ffn_up.weight"):
        res = quantize(odd, tmp_path / "odd-q2k.gguf", "Q2_K")
    assert res.fallbacks and all(f.reason.startswith("row size") for f in res.fallbacks)
    assert {f.name for f in res.fallbacks} == {f.name for f in fallback_tensors(res.path, "Q2_K")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a non-K type never warns
        q4 = quantize(odd, tmp_path / "odd-q4_0.gguf", "Q4_0")
    assert q4.fallbacks == []
