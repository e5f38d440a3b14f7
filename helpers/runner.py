"""Headless runner: `python -m helpers run-all [--smoke]` executes every notebook and lab solution.

Introduced in the README. Each notebook runs with papermill (SMOKE=True goes into its `parameters` cell),
an executed copy lands in build/executed/ (signed as trusted, so JupyterLab renders its widgets; see
helpers/nbfiles.py), and build/run-report.json records per notebook the status,
the wall seconds and the runtime that answered (read from the `answered by: runtime/model` lines the
notebooks print).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helpers.nbfiles import finish_executed
from helpers.paths import BUILD, ROOT

ANSWERED = re.compile(r"answered by:? ([\w.-]+/[\w.:/-]+(?:, [\w.-]+/[\w.:/-]+)*)")  # one, or a comma list
# Notebooks that share one machine-wide resource run in one lane, one after the other, under `--jobs`:
# Foundry Local keeps one app directory (build/foundry) for every process that uses it.
SHARED_LANES = {"foundry": ("01", "12", "17", "18")}

# The environment of a headless run's kernels: no progress bars in the saved outputs. transformers and the
# ONNX Runtime GenAI builder draw theirs with huggingface_hub's tqdm, which reads HF_HUB_DISABLE_PROGRESS_BARS
# when it is imported; TQDM_DISABLE turns off other plain tqdm bars (tqdm reads TQDM_* variables as defaults;
# tqdm.notebook's widget bars ignore it, and they are widgets, not text, in a saved notebook).
# A bar's carriage returns are kept in the executed copy as "Loading weights:   0%" lines: noise for a reader.
KERNEL_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}


@contextlib.contextmanager
def kernel_env(extra: dict[str, str] | None = None) -> Iterator[None]:
    """Set KERNEL_ENV (and `extra`) in this process while papermill starts kernels, then restore it."""
    values = {**KERNEL_ENV, **(extra or {})}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def kernel_config():
    """traitlets config for the kernel manager: encrypt the kernel's ZeroMQ sockets with CurveZMQ keys.

    A kernel listens on loopback TCP ports; ipykernel 7 warns "Kernel is running over TCP without encryption"
    unless the manager provisions CurveZMQ keys, which jupyter_client 8.8+ does with
    `KernelManager.transport_encryption` ("auto": when the kernelspec declares `supported_encryption: curve`,
    as ipykernel's does). Where pyzmq lacks Curve (libzmq without libsodium) or jupyter_client is older, the
    kernel uses Unix-domain sockets instead (`transport = "ipc"`, POSIX only), which the warning also accepts;
    elsewhere the default stays and so does the warning."""
    import zmq
    from jupyter_client import KernelManager
    from traitlets.config import Config

    c = Config()
    if zmq.has("curve") and "transport_encryption" in KernelManager.class_trait_names():
        c.KernelManager.transport_encryption = "auto"
    elif os.name == "posix":
        c.KernelManager.transport = "ipc"
    return c


def discover() -> list[Path]:
    """The notebooks run-all executes, in order: notebooks/ then labs/solutions/."""
    nbs = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "labs" / "solutions").glob("*.ipynb"))
    return [p for p in nbs if ".ipynb_checkpoints" not in p.parts]


def has_parameters_cell(path: Path) -> bool:
    """Whether a notebook has a cell tagged `parameters` (papermill injects values after it)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.get("cells", []))


def runtimes_in(executed: Path) -> list[str]:
    """The `runtime/model` pairs an executed notebook printed as having answered."""
    nb = json.loads(executed.read_text(encoding="utf-8"))
    found: list[str] = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            text = out.get("text") or "".join(out.get("data", {}).get("text/plain", ""))
            if isinstance(text, list):
                text = "".join(text)
            for m in ANSWERED.findall(text or ""):
                for who in m.split(", "):
                    if who not in found:
                        found.append(who)
    return found


def executed_path(path: Path) -> Path:
    """Where the executed copy of `path` goes."""
    return BUILD / "executed" / path.relative_to(ROOT)


def run_one(path: Path, smoke: bool, timeout: int = 1800) -> dict[str, Any]:
    """Execute one notebook; return its report row (never raises for a failing notebook)."""
    import papermill as pm

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No notebook at {path}. Notebooks live in notebooks/ and labs/solutions/.")
    out = executed_path(path.resolve()) if path.resolve().is_relative_to(ROOT) else BUILD / "executed" / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {"SMOKE": True} if smoke and has_parameters_cell(path) else {}
    t0 = time.perf_counter()
    row: dict[str, Any] = {"notebook": str(path.resolve().relative_to(ROOT)) if path.resolve().is_relative_to(ROOT)
                           else str(path), "executed": str(out.relative_to(ROOT) if out.is_relative_to(ROOT) else out),
                           "smoke": bool(params)}
    try:
        with kernel_env():
            pm.execute_notebook(str(path), str(out), parameters=params, kernel_name="python3", cwd=str(path.parent),
                                progress_bar=False, execution_timeout=timeout, log_output=False,
                                config=kernel_config())
        row["status"] = "ok"
    except pm.PapermillExecutionError as exc:
        row["status"] = "failed"
        row["error"] = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
        row["failing_cell"] = exc.source[-2000:]
    except Exception as exc:  # kernel died, timeout, bad notebook JSON ...
        row["status"] = "failed"
        row["error"] = f"{type(exc).__name__}: {exc}"
    row["seconds"] = round(time.perf_counter() - t0, 1)
    if out.exists():  # the kernel metadata JupyterLab writes, and trusted: widgets render, nothing asks to save
        row["trusted"] = finish_executed(out)
    row["runtimes"] = runtimes_in(out) if out.exists() else []
    return row


def run_all(paths: list[Path] | None = None, smoke: bool = False, report: Path | None = None,
            progress: bool = True, jobs: int = 1) -> dict[str, Any]:
    """Execute notebooks (all of them by default) and write the run report; `jobs` lanes run side by side."""
    from tqdm.auto import tqdm

    paths = [Path(p) for p in paths] if paths else discover()
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"No notebook at {p}. Notebooks live in notebooks/ and labs/solutions/.")
    rows = []
    t0 = time.perf_counter()
    if jobs > 1 and len(paths) > 1:
        rows = _run_lanes(lanes(paths, jobs, report or BUILD / "run-report.json"), smoke, progress)
    else:
        bar = tqdm(paths, desc="run-all", unit="nb", disable=not progress)
        for p in bar:
            bar.set_postfix_str(p.name)
            rows.append(run_one(p, smoke))
    doc = {"smoke": smoke, "seconds": round(time.perf_counter() - t0, 1),
           "passed": sum(r["status"] == "ok" for r in rows), "failed": sum(r["status"] != "ok" for r in rows),
           "notebooks": rows}
    write_report(rows, smoke, report or BUILD / "run-report.json")
    return doc


def group_key(path: Path) -> str:
    """Which lane group a notebook belongs to: a lesson and its lab share their number, so they run in one
    lane (a lab may reuse its lesson's files); the numbers of a `SHARED_LANES` entry share that entry."""
    number = path.name.split("-", 1)[0]
    return next((name for name, numbers in SHARED_LANES.items() if number in numbers), number)


def lanes(paths: list[Path], jobs: int, report: Path | None = None) -> list[list[Path]]:
    """Split `paths` into at most `jobs` lanes of groups (`group_key`), balanced by the seconds each notebook
    took in the last report (1 s when unknown); the longest groups are placed first, each in the lane with the
    least work so far, and every lane keeps the notebooks' own order."""
    known: dict[str, float] = {}
    if report is not None and report.exists():
        try:
            known = {r["notebook"]: float(r.get("seconds") or 1) for r in json.loads(report.read_text())["notebooks"]}
        except (ValueError, KeyError, TypeError):
            known = {}
    order = {p: i for i, p in enumerate(paths)}
    groups: dict[str, list[Path]] = {}
    for p in paths:
        groups.setdefault(group_key(p), []).append(p)

    def cost(group: list[Path]) -> float:
        return sum(known.get(str(p.resolve().relative_to(ROOT)) if p.resolve().is_relative_to(ROOT) else str(p), 1.0)
                   for p in group)

    work = [0.0] * max(1, min(jobs, len(groups)))
    chosen: list[list[Path]] = [[] for _ in work]
    for group in sorted(groups.values(), key=cost, reverse=True):
        i = work.index(min(work))
        chosen[i] += group
        work[i] += cost(group)
    return [sorted(lane, key=order.__getitem__) for lane in chosen if lane]


def _run_lane(paths: list[Path], smoke: bool) -> list[dict[str, Any]]:
    return [run_one(p, smoke) for p in paths]


def _run_lanes(chosen: list[list[Path]], smoke: bool, progress: bool) -> list[dict[str, Any]]:
    """Each lane in a process of its own; the rows come back in the notebooks' order."""
    from concurrent.futures import ProcessPoolExecutor

    if progress:
        for i, lane in enumerate(chosen, 1):
            print(f"lane {i}: " + " ".join(p.name.split("-", 1)[0] + ("L" if "labs" in p.parts else "") for p in lane))
    with ProcessPoolExecutor(len(chosen)) as pool:
        results = list(pool.map(_run_lane, chosen, [smoke] * len(chosen)))
    flat = [p for lane in chosen for p in lane]
    rows = [row for lane in results for row in lane]
    index = {p.resolve(): i for i, p in enumerate(discover())}
    ranked = sorted(range(len(flat)), key=lambda j: (index.get(flat[j].resolve(), len(index)), j))
    return [rows[j] for j in ranked]


def write_report(rows: list[dict[str, Any]], smoke: bool, report: Path) -> dict[str, Any]:
    """Merge this run's rows into the report: a notebook run now replaces its own entry, the others stay.

    Each entry carries `finished` (UTC) and `smoke`; the totals count every entry in the report. A report
    that cannot be read (hand-edited, cut) is moved aside to `run-report.json.bad`, not silently lost."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    entries: dict[str, dict[str, Any]] = {}
    if report.exists():
        try:
            old = json.loads(report.read_text(encoding="utf-8"))
            entries = {r["notebook"]: r for r in old.get("notebooks", []) if isinstance(r, dict) and "notebook" in r}
        except (ValueError, AttributeError, TypeError):
            report.replace(report.with_name(report.name + ".bad"))
    for r in rows:
        entries[r["notebook"]] = {**r, "smoke": r.get("smoke", smoke), "finished": stamp}
    order = {str(p.relative_to(ROOT)): i for i, p in enumerate(discover())}
    merged = sorted(entries.values(), key=lambda r: (order.get(r["notebook"], len(order)), r["notebook"]))
    doc = {"updated": stamp, "passed": sum(r["status"] == "ok" for r in merged),
           "failed": sum(r["status"] != "ok" for r in merged), "last_run": [r["notebook"] for r in rows],
           "notebooks": merged}
    report.parent.mkdir(parents=True, exist_ok=True)
    tmp = report.with_name(report.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(report)  # atomic: a run killed midway never leaves half a report
    return doc
