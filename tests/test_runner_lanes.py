"""`run-all --jobs N`: how notebooks are split into lanes that run side by side."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.paths import ROOT
from helpers.runner import SHARED_LANES, discover, group_key, lanes


def _names(lane: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in lane]


def test_a_lesson_and_its_lab_share_a_group_and_shared_resources_share_one():
    nb = ROOT / "notebooks" / "09-gguf-in-practice.ipynb"
    lab = ROOT / "labs" / "solutions" / "09-gguf-in-practice.ipynb"
    assert group_key(nb) == group_key(lab) == "09"
    for number in SHARED_LANES["foundry"]:
        assert group_key(ROOT / "notebooks" / f"{number}-x.ipynb") == "foundry"


def test_every_notebook_lands_in_exactly_one_lane_in_order_with_its_group():
    paths = discover()
    chosen = lanes(paths, 2)
    assert len(chosen) == 2
    flat = [p for lane in chosen for p in lane]
    assert sorted(flat) == sorted(paths) and len(flat) == len(paths)
    index = {p: i for i, p in enumerate(paths)}
    where = {}
    for i, lane in enumerate(chosen):
        assert [index[p] for p in lane] == sorted(index[p] for p in lane), "a lane keeps the notebooks' order"
        for p in lane:
            where.setdefault(group_key(p), set()).add(i)
    assert all(len(lanes_of_group) == 1 for lanes_of_group in where.values()), where


def test_lanes_balance_on_the_last_report(tmp_path):
    paths = discover()
    slow = {str(p.relative_to(ROOT)): (500.0 if p.name.startswith("13-") else 1.0) for p in paths}
    report = tmp_path / "run-report.json"
    report.write_text(json.dumps({"notebooks": [{"notebook": k, "seconds": v} for k, v in slow.items()]}))
    chosen = lanes(paths, 2, report)
    heavy = next(lane for lane in chosen if any(p.name.startswith("13-") for p in lane))
    assert all(p.name.startswith("13-") for p in heavy), _names(heavy)  # the slow group alone fills one lane


def test_one_job_or_one_group_is_one_lane(tmp_path):
    one = [ROOT / "notebooks" / "02-what-is-an-agent.ipynb", ROOT / "labs" / "solutions" / "02-what-is-an-agent.ipynb"]
    assert lanes(one, 4) == [one]
    assert lanes(discover(), 1) == [discover()]
    (tmp_path / "bad.json").write_text("{cut")
    assert len(lanes(discover(), 3, tmp_path / "bad.json")) == 3  # an unreadable report: every notebook costs 1


def test_pytest_lanes_keep_a_notebook_whole_and_foundry_users_together():
    # the root conftest.py's scheduler for `pytest -n 2 --dist loadgroup` (the README's test command)
    import importlib.util

    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    group_of = module.group_of

    cells = [f"build/executed/notebooks/09-gguf-in-practice.ipynb::Cell {i}" for i in (0, 7)]
    assert {group_of(c) for c in cells} == {"build/executed/notebooks/09-gguf-in-practice.ipynb"}
    one_file = {group_of("tests/test_gateway.py::test_a"), group_of("tests/test_gateway.py::test_b")}
    assert one_file == {"tests/test_gateway.py"}
    assert group_of("tests/test_gateway.py::test_a") != group_of("tests/test_lab13.py::test_a")
    for number in SHARED_LANES["foundry"]:
        assert group_of(f"build/executed/notebooks/{number}-x.ipynb::Cell 2") == "foundry"
    assert {group_of("tests/test_foundry_local.py::test_x"), group_of("tests/test_notebooks.py::test_y[12]")} == {
        "foundry"}
