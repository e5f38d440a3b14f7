"""Auto-checks for lab 09 (GGUF in practice): each `check_*` raises AssertionError with a hint.

Introduced in lab 09. The learner's functions are tested on fresh random logits and fresh synthetic
tables against `helpers.quant.measure`; the measured row is checked against the file it names.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from helpers.quant import measure


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def _fresh_logits(rng: np.random.Generator, n: int, vocab: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    base = rng.normal(size=(n, vocab)) * rng.uniform(0.5, 8.0)
    quant = base + rng.normal(size=(n, vocab)) * noise
    return base.astype(np.float32), quant.astype(np.float32)


def check_kl_top1(fn: Callable[[np.ndarray, np.ndarray], tuple[float, float]], seed: int = 909) -> None:
    """Lab 09, task 1: the learner's (mean KLD, top-1 agreement) equals the reference on fresh logits."""
    rng = np.random.default_rng(seed)
    cases = [_fresh_logits(rng, int(rng.integers(5, 60)), int(rng.integers(8, 300)), noise)
             for noise in (0.0, 0.05, 0.5, 3.0)]
    big = cases[-1][0].copy()
    big[0, 0] = 500.0  # a huge logit: a naive exp() overflows, a stable log-softmax does not
    cases.append((big, cases[-1][1]))
    for i, (base, quant) in enumerate(cases):
        got = fn(base.copy(), quant.copy())
        assert isinstance(got, tuple) and len(got) == 2, "return a tuple (mean_kld, top1)"
        kld, top1 = float(got[0]), float(got[1])
        want_kld, want_top1 = measure.kl_and_top1(base, quant)
        assert math.isfinite(kld), (f"case {i}: KLD is {kld}; subtract each row's maximum before exp() "
                                    "(a stable log-softmax)")
        assert math.isclose(kld, want_kld, rel_tol=1e-4, abs_tol=1e-6), (
            f"case {i}: mean KLD {kld:.6g}, expected {want_kld:.6g}; KL(P_base || P_quant) = "
            "sum p_base * (log p_base - log p_quant) per row, then the mean over rows")
        assert math.isclose(top1, want_top1, abs_tol=1e-9), (
            f"case {i}: top-1 agreement {top1}, expected {want_top1}; the share (0..1) of rows whose argmax agree")
    _ok(f"mean KLD and top-1 agreement match the reference on {len(cases)} fresh pairs of logit arrays")


def _fresh_table(rng: np.random.Generator) -> list[dict[str, Any]]:
    names = ["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K"]
    n = int(rng.integers(4, len(names) + 1))
    sizes = np.sort(rng.uniform(1.0, 8.0, n))[::-1]
    klds = np.sort(rng.uniform(0.0, 0.5, n))
    klds[0] = 0.0
    ems = np.clip(rng.uniform(0.3, 0.9) - np.sort(rng.uniform(0, 0.3, n)) + rng.normal(0, 0.02, n), 0, 1)
    return [{"type": names[i], "size_mb": round(float(sizes[i]), 3), "kld": round(float(klds[i]), 5),
             "exact_match": round(float(ems[i]), 3)} for i in range(n)]


def check_recommend(fn: Callable[[list[dict[str, Any]], float, float], str], seed: int = 919) -> None:
    """Lab 09, task 2: the learner's recommender picks what the reference picks and fails when nothing fits."""
    rng = np.random.default_rng(seed)
    picked = failed = 0
    for i in range(40):
        rows = _fresh_table(rng)
        budget = float(rng.uniform(1.0, 9.0))
        floor = float(rng.uniform(0.1, 0.7))
        try:
            want = measure.recommend(rows, budget, min_exact_match=floor)["type"]
        except ValueError:
            want = None
        try:
            got = fn([dict(r) for r in rows], budget, floor)
        except ValueError:
            got = None
        table = ", ".join(f"{r['type']} {r['size_mb']} MB em {r['exact_match']} kld {r['kld']}" for r in rows)
        if want is None:
            assert got is None, (f"table [{table}], budget {budget:.2f} MB, floor {floor:.3f}: nothing fits, so "
                                 f"raise ValueError (you returned {got!r})")
            failed += 1
        else:
            assert got == want, (f"table [{table}], budget {budget:.2f} MB, floor {floor:.3f}: expected {want!r}, "
                                 f"got {got!r}; keep rows with size_mb <= budget and exact_match >= floor, then "
                                 "take the highest exact_match (ties: lowest kld, then smallest size)")
            picked += 1
    _ok(f"recommendations match on {picked} fresh tables and ValueError raised on the {failed} where nothing fits")


def gguf_file_type(path: str | Path) -> str:
    """The type a GGUF file was quantized to, from its `general.file_type` metadata (e.g. 'Q4_K_S')."""
    import gguf

    from helpers.quant.gguf_file import metadata

    value = metadata(path).get("general.file_type")
    if value is None:
        raise AssertionError(f"{Path(path).name} has no general.file_type: write it with llama.cpp's quantizer")
    return gguf.LlamaFileType(int(value)).name.removeprefix("MOSTLY_")


def check_measured_row(row: dict[str, Any], base_logits: np.ndarray, quant_logits: np.ndarray,
                       targets: np.ndarray, f16_path: str | Path, cases: list[dict[str, Any]] | None = None,
                       em: dict[str, Any] | None = None, recheck: int = 3) -> None:
    """Lab 09, task 3: a measured row is consistent with its file (type read from the GGUF metadata, size), its
    logits (KLD, top-1, perplexity recomputed) and its exact match (the result of `qm.tool_exact_match` on `cases`,
    `recheck` of its cases run again on the file)."""
    for key in ("type", "path", "size_mb", "ratio_vs_f16", "ppl", "kld", "top1", "exact_match"):
        assert key in row, f"the row needs a {key!r} entry"
    path = Path(row["path"])
    assert path.exists(), f"{path} does not exist: quantize into it first"
    file_type = gguf_file_type(path)
    assert file_type == str(row["type"]).upper(), (
        f"{path.name} was quantized to {file_type} (its general.file_type), but the row says {row['type']}: "
        f"quantize F16 to {row['type']} into qm.quant_path({row['type']!r}, LAB) and measure that file")
    size_mb = path.stat().st_size / 1e6
    assert math.isclose(row["size_mb"], size_mb, rel_tol=1e-3), \
        f"size_mb {row['size_mb']} but the file is {size_mb:.3f} MB (bytes / 1e6)"
    ratio = Path(f16_path).stat().st_size / path.stat().st_size
    assert math.isclose(row["ratio_vs_f16"], ratio, rel_tol=1e-3), (f"ratio_vs_f16 {row['ratio_vs_f16']}, expected "
                                                                   f"{ratio:.3f} (f16 bytes / quantized bytes)")
    assert base_logits.shape == quant_logits.shape and len(targets) == len(base_logits), \
        "base_logits, quant_logits and targets must cover the same scored positions"
    assert not np.array_equal(base_logits, quant_logits), "quant_logits equal base_logits: score the quantized file"
    kld, top1 = measure.kl_and_top1(base_logits, quant_logits)
    assert math.isclose(row["kld"], kld, rel_tol=1e-4, abs_tol=1e-7), f"kld {row['kld']}, expected {kld:.6g}"
    assert math.isclose(row["top1"], top1, abs_tol=1e-9), f"top1 {row['top1']}, expected {top1:.4f}"
    ppl = measure.perplexity(quant_logits, targets)
    assert math.isclose(row["ppl"], ppl, rel_tol=1e-4), f"ppl {row['ppl']}, expected {ppl:.4f} (of the quantized model)"
    assert cases and isinstance(em, dict), (
        "pass the eval cases and the result of qm.tool_exact_match(path, cases, threads=THREADS) (`em`): "
        "check_measured_row(row, base_logits, quant_logits, targets, F16, cases, em)")
    for key in ("exact_match", "n", "answered_by", "passed"):
        assert key in em, f"`em` lacks {key!r}: pass the dict qm.tool_exact_match returned, unedited"
    assert em["n"] == len(cases) == len(em["passed"]), (
        f"`em` scored {em['n']} cases, `cases` holds {len(cases)}: run qm.tool_exact_match on the same cases")
    share = sum(map(bool, em["passed"])) / len(cases)
    assert math.isclose(em["exact_match"], share, abs_tol=1e-9), \
        f"`em` says exact match {em['exact_match']}, but {sum(map(bool, em['passed']))}/{len(cases)} cases passed"
    assert em["answered_by"] == f"embedded/{path.stem}", (
        f"the exact match was measured on {em['answered_by']}, not on {path.name}: pass the quantized file's path to "
        "qm.tool_exact_match")
    assert math.isclose(row["exact_match"], em["exact_match"], abs_tol=1e-9), (
        f"exact_match {row['exact_match']}, but the measurement `em` says {em['exact_match']}: put "
        "em['exact_match'] in the row")
    if recheck:
        passed = [bool(p) for p in em["passed"]]
        picks = sorted({0, *([passed.index(True)] if True in passed else []),
                        *([passed.index(False)] if False in passed else [])})[:recheck]
        again = measure.tool_exact_match(path, [cases[i] for i in picks])["passed"]
        for i, ok in zip(picks, again):
            assert bool(ok) == passed[i], (
                f"case {i} {'passes' if ok else 'fails'} when run again on {path.name}, but `em` says it "
                f"{'passed' if passed[i] else 'failed'}: measure the exact match of this file, on these cases")
    _ok(f"{row['type']} (the file's own type): {row['size_mb']:.2f} MB ({ratio:.2f}x smaller than f16), KLD "
        f"{kld:.4f}, top-1 {top1:.3f}, perplexity {ppl:.2f}, exact match {row['exact_match']:.3f} on {len(cases)} "
        "cases: consistent with the file, the logits and the measurement")
