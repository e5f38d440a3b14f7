"""helpers.quant.measure: the quality metrics, the recommender and their errors (small inputs, no timing asserts)."""

import math

import numpy as np
import pytest

from helpers.quant import measure as m


def _rows():
    # a small synthetic table: bigger files are better
    spec = [("F16", 7.4, 0.0, 0.50), ("Q8_0", 3.9, 0.001, 0.50), ("Q4_K_M", 2.3, 0.02, 0.49),
            ("Q4_0", 2.2, 0.05, 0.47), ("Q2_K", 1.5, 0.40, 0.30)]
    return [{"type": t, "size_mb": s, "kld": k, "exact_match": e, "ratio_vs_f16": 7.4 / s} for t, s, k, e in spec]


def test_kld_of_identical_logits_is_zero_and_top1_is_one():
    x = np.random.default_rng(123).normal(size=(50, 32)) * 5
    kld, top1 = m.kl_and_top1(x, x.copy())
    assert kld == pytest.approx(0.0, abs=1e-12)
    assert top1 == 1.0


def test_kld_matches_a_direct_computation_and_is_shift_invariant():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(20, 16)), rng.normal(size=(20, 16))
    p = np.exp(a) / np.exp(a).sum(1, keepdims=True)
    q = np.exp(b) / np.exp(b).sum(1, keepdims=True)
    want = float(np.mean((p * np.log(p / q)).sum(1)))
    kld, top1 = m.kl_and_top1(a, b)
    assert kld == pytest.approx(want, rel=1e-9)
    assert kld > 0
    assert top1 == pytest.approx(float(np.mean(a.argmax(1) == b.argmax(1))))
    assert m.kl_and_top1(a + 100.0, b - 3.0)[0] == pytest.approx(kld, rel=1e-9)  # logits, not probabilities


def test_perplexity_of_uniform_logits_is_the_vocabulary_size():
    targets = np.random.default_rng(1).integers(0, 40, size=30)
    assert m.perplexity(np.zeros((30, 40)), targets) == pytest.approx(40.0)


def test_perplexity_of_a_confident_right_model_is_near_one():
    targets = np.array([3, 1, 4, 1, 5])
    x = np.full((5, 8), -30.0)
    x[np.arange(5), targets] = 30.0
    assert m.perplexity(x, targets) == pytest.approx(1.0, abs=1e-6)
    assert m.token_logprobs(x, targets).shape == (5,)


def test_scored_positions_are_the_second_half_of_each_chunk():
    pos = m.scored_positions(20, 8)  # two whole chunks of 8, the rest dropped
    assert pos.tolist() == [5, 6, 7, 13, 14, 15]


def test_metric_errors_are_clear():
    with pytest.raises(ValueError, match="same shape"):
        m.kl_and_top1(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="2-D"):
        m.kl_and_top1(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        m.perplexity(np.array([[0.0, np.nan]]), [0])
    with pytest.raises(ValueError, match="one id per row"):
        m.perplexity(np.zeros((3, 4)), [0, 1])
    with pytest.raises(ValueError, match="vocabular"):
        m.perplexity(np.zeros((2, 4)), [0, 9])


def test_recommend_picks_the_best_that_fits():
    rows = _rows()
    assert m.recommend(rows, 100)["type"] == "F16"
    assert m.recommend(rows, 3.0)["type"] == "Q4_K_M"
    assert m.recommend(rows, 3.0, prefer="size")["type"] == "Q2_K"
    assert m.recommend(rows, 3.0, min_exact_match=0.45, prefer="size")["type"] == "Q4_0"
    assert m.recommend(rows, 3.0, max_kld=0.03, prefer="size")["type"] == "Q4_K_M"
    assert m.recommend(rows, 2.25)["type"] == "Q4_0"


def test_recommend_says_what_would_fit():
    rows = _rows()
    with pytest.raises(ValueError, match=r"Q8_0 \(3.90 MB\).*raise the budget.*within 3.00 MB the best is Q4_K_M"):
        m.recommend(rows, 3.0, min_exact_match=0.5)
    with pytest.raises(ValueError, match="smallest file is Q2_K"):
        m.recommend(rows, 1.0)
    with pytest.raises(ValueError, match="no measured type meets"):
        m.recommend(rows, 10, min_exact_match=0.9)
    with pytest.raises(ValueError, match="positive"):
        m.recommend(rows, 0)
    with pytest.raises(ValueError, match="measure_types"):
        m.recommend([], 10)
    with pytest.raises(ValueError, match="lacks"):
        m.recommend([{"type": "Q4_0", "size_mb": 2.0}], 10)


def test_frontier_and_table():
    rows = _rows()
    rows.append({"type": "Q3_K_M", "size_mb": 2.5, "kld": 0.06, "exact_match": 0.4, "ratio_vs_f16": 3.0})
    front = m.frontier(rows, "kld")
    assert "Q3_K_M" not in front and front[0] == "Q2_K" and front[-1] == "F16"
    table = m.format_rows(rows)
    assert table.splitlines()[0].split()[0] == "type" and len(table.splitlines()) == len(rows) + 1
    with pytest.raises(ValueError, match="quality must be"):
        m.frontier(rows, "speed")


def test_target_sentence_is_built_from_the_rows():
    rows = _rows()
    rows[0].update(n_cases=100, passed=[True] * 50 + [False] * 50)
    rows[2].update(n_cases=100, passed=[True] * 49 + [False] * 51)
    s = m.target_sentence(rows)
    assert "3.22x smaller" in s and "met" in s and "-1.0 points" in s and "1 cases pass on f16 only" in s


def test_unknown_type_and_missing_file_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="Unknown GGUF type 'Q9_X'"):
        m.measure_types(["Q9_X"])
    with pytest.raises(FileNotFoundError, match="export"):
        m.measure_types(["Q4_0"], src=tmp_path / "missing.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file")
    with pytest.raises(ValueError, match="magic"):
        m.speed(bad)


def test_held_out_text_comes_from_the_dev_split():
    text = m.held_out_text(3, seed=5)
    assert text.startswith("<s>") and text.count("<s>") == 3
    assert text == m.held_out_text(3, seed=5)
    with pytest.raises(ValueError):
        m.held_out_text(0)


def test_bench_quant_parser_defaults():
    from helpers.cli import build_parser

    a = build_parser().parse_args(["bench-quant"])
    assert a.types.split(",") == list(m.DEFAULT_TYPES)
    assert math.isclose(a.runs, 3)
