"""Drift guard: `python -m helpers drift-check` tries the newest releases of the fast-moving dependencies.

Pins protect a learner today and hide tomorrow's break from the authors. This builds a separate virtual
environment (build/drift/venv, reused; `--fresh` rebuilds it) holding the newest release of each package named
in pyproject.toml's `[tool.edge-slm.drift] fast-moving` list and every other dependency at the version the
pinned environment running this command has; runs the contract suite (tests/test_contract.py) and the SMOKE
workbook there; and writes build/drift/report.md and report.json naming each package whose new release breaks
something, with the failing call or notebook cell and the error. A failure is blamed on a package by evidence:
the import that failed, or the changed packages whose files appear in the traceback; when that is ambiguous and
cheap to settle, each suspect is put back at its pinned version one at a time and the failing item rerun.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from helpers.paths import BUILD, ROOT

NETWORK_SIGNS = ("NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
                 "Name or service not known", "Network is unreachable", "Connection refused", "ConnectTimeoutError",
                 "Read timed out", "ProxyError")
NOT_COMPARED = {"edge-slm-workbook", "pip", "setuptools", "wheel"}  # the workbook runs from this checkout
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class DriftError(Exception):
    """Stops the drift check before it can try anything; its message says what to do."""


@dataclass
class Package:
    """One fast-moving package: its pin, the version the pinned environment has, the newest release, the plan."""

    name: str
    spec: str  # as pyproject.toml writes it ("" when it is not a direct dependency)
    baseline: str | None  # installed in the pinned environment running the check
    newest: str | None = None
    status: str = "same"  # same | changed | held back | install failed
    why: str = ""

    tried = property(lambda self: self.newest if self.status == "changed" else None)  # the release the checks ran


@dataclass
class Finding:
    """Something that failed in the drift environment, and which package's new release it is blamed on."""

    where: str  # "install", "contract: <test id>" or "smoke: <notebook>"
    error: str
    call: str = ""  # the failing call (a test id) or notebook cell
    packages: list[str] = field(default_factory=list)
    evidence: str = ""
    certain: bool = False


# --- the plan: which packages move, from pyproject.toml and the pinned environment ---------------------------


def norm(name: str) -> str:
    """A distribution name in PEP 503 normal form (llama_cpp_python -> llama-cpp-python)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def drift_config(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, Any]:
    """The `[tool.edge-slm.drift]` table and the project's dependencies, read from pyproject.toml."""
    doc = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    cfg = doc.get("tool", {}).get("edge-slm", {}).get("drift", {})
    return {"fast_moving": [norm(n) for n in cfg.get("fast-moving", [])],
            "dependencies": doc["project"]["dependencies"]}


def installed_versions() -> dict[str, str]:
    """{normalized name: version} of every distribution in the running (pinned) environment."""
    import importlib.metadata as md

    return {norm(d.metadata["Name"]): d.version for d in md.distributions() if d.metadata["Name"]}


def plan_packages(fast_moving: list[str], dependencies: list[str], baseline: dict[str, str],
                  newest: dict[str, str | None], held: dict[str, str]) -> list[Package]:
    """One Package per fast-moving name: changed when the newest release differs from the pinned environment's."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    specs = {norm(Requirement(d).name): d for d in dependencies}
    out = []
    for name in fast_moving:
        p = Package(name, specs.get(name, ""), baseline.get(name), newest.get(name))
        if name in held:
            p.status, p.why = "held back", held[name]
        elif p.newest is None:
            p.status, p.why = "held back", "no release found on the index"
        elif p.baseline is None or Version(p.newest) != Version(p.baseline):
            p.status = "changed"
        out.append(p)
    return out


def requirements(dependencies: list[str], packages: list[Package], baseline: dict[str, str]) -> list[str]:
    """What the drift environment installs: each changed package at its newest release, every other direct
    dependency at the pinned environment's version (its pyproject spec when that environment lacks it)."""
    from packaging.requirements import Requirement

    moving = {p.name: p.newest for p in packages if p.status == "changed"}
    reqs, seen = [], set()
    for d in dependencies:
        r = Requirement(d)
        name, extras = norm(r.name), f"[{','.join(sorted(r.extras))}]" if r.extras else ""
        if (name, extras) in seen:  # listed twice in pyproject (pyyaml, httpx): once is enough
            continue
        seen.add((name, extras))
        marker = f"; {r.marker}" if r.marker else ""
        version = moving.pop(name, None) or baseline.get(name)
        reqs.append(f"{name}{extras}=={version}{marker}" if version else d)
    reqs += [f"{n}=={v}" for n, v in moving.items()]  # fast-moving packages the workbook gets indirectly
    return reqs


def version_diff(before: dict[str, str], after: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
    """{name: (pinned environment's version, drift environment's version)} for every distribution that differs."""
    names = sorted(set(before) | set(after))
    return {n: (before.get(n), after.get(n)) for n in names if before.get(n) != after.get(n)}


# --- pip, in a subprocess ---------------------------------------------------------------------------------------


def _pip_text(text: str) -> str:
    """pip's output without the noise of index locations that do not exist here."""
    return "\n".join(x for x in text.splitlines() if "is ignored: it is neither a file nor a directory" not in x)


def newest_releases(names: list[str], index_url: str | None = None, python: str = sys.executable
                    ) -> dict[str, dict[str, Any]]:
    """{name: {"version", "wheel"}}: the newest release of each package for this Python and platform, asked of
    the package index with pip's own resolver (no dependencies: the newest release, even if it conflicts)."""
    cmd = [python, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet", "--report", "-",
           *(["--index-url", index_url, "--retries", "0", "--timeout", "5"] if index_url else []), *names]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or not r.stdout.strip():
        if any(s in r.stderr for s in NETWORK_SIGNS) or not index_reachable(index_url):
            raise DriftError(f"cannot reach the package index{' ' + index_url if index_url else ''}: the drift check "
                             "asks it for the newest releases, so run it where PyPI is reachable")
        raise DriftError(f"pip could not list the newest releases: {install_error(r.stderr)}")
    report = json.loads(r.stdout)
    return {norm(i["metadata"]["name"]): {"version": i["metadata"]["version"],
                                          "wheel": i["download_info"]["url"].split("#")[0].endswith(".whl")}
            for i in report.get("install", [])}


def index_reachable(index_url: str | None = None, timeout: float = 10.0) -> bool:
    """Whether the package index answers at all (PIP_INDEX_URL, else PyPI's simple index)."""
    import urllib.error
    import urllib.request

    url = index_url or os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple/"
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return True  # it answered, even if with an error status
    except (OSError, ValueError):
        return False
    return True


def install_error(stderr: str) -> str:
    """The lines of a failed `pip install` that say why: the conflict and what causes it, or the build's errors."""
    lines = [x.strip() for x in _pip_text(stderr).splitlines() if x.strip() and not x.startswith("WARNING:")]
    if "The conflict is caused by:" in lines:
        i = lines.index("The conflict is caused by:")
        cause = [x for x in lines[i + 1:] if not x.startswith(("To fix", "1.", "2.", "ERROR: ResolutionImpossible"))]
        return " | ".join([x for x in lines[:i] if x.startswith("ERROR")][-1:] + cause[:6])
    errors = [x for x in lines if "error" in x.lower() or "failed" in x.lower()]
    return " | ".join(errors[-6:] or lines[-6:])


def blame_install(stderr: str, moving: list[str]) -> list[str]:
    """The moving packages a failed `pip install` names: the one that failed to build, or those in the conflict."""
    text = _pip_text(stderr)
    built = re.findall(r"(?:Failed to build|Failed building wheel for|Could not build wheels for) "
                       r"([\w.-]+(?:, [\w.-]+)*)", text) + re.findall(r"based projects \(([^)]+)\)", text)
    named = {norm(n) for b in built for n in re.split(r"[,\s]+", b) if n}
    if not named:  # a resolver conflict: the packages it names, in the lines that explain it
        conflict = text.split("The conflict is caused by:")[-1] if "The conflict is caused by" in text else text
        named = {norm(m) for m in re.findall(r"([A-Za-z0-9][\w.-]*)(?:\[[\w,]+\])?\s*(?:==|depends on|\d)", conflict)}
    return [m for m in moving if m in named]


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv(venv: Path, fresh: bool, log: Callable[[str], None]) -> Path:
    """A virtual environment at `venv` (reused when it works; rebuilt with --fresh or when broken)."""
    py = venv_python(venv)
    if fresh and venv.exists():
        shutil.rmtree(venv)
    if py.exists() and subprocess.run([str(py), "-c", "import pip"], capture_output=True).returncode == 0:
        log(f"reusing {venv} (--fresh rebuilds it)")
        for left in venv.glob("lib/python*/site-packages/~*"):  # a pip install cut short leaves these behind
            shutil.rmtree(left, ignore_errors=True)
        return py
    if venv.exists():
        shutil.rmtree(venv)  # half-built by an interrupted run
    log(f"creating {venv}")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    return py


def pip_install(py: Path, reqs: list[str], index_url: str | None, log_file: Path) -> subprocess.CompletedProcess:
    """`pip install` the requirements into the drift environment; pip's whole output goes to `log_file`."""
    cmd = [str(py), "-m", "pip", "install", "--disable-pip-version-check",
           *(["--index-url", index_url] if index_url else []), *reqs]
    r = subprocess.run(cmd, capture_output=True, text=True)
    with log_file.open("a", encoding="utf-8") as f:
        f.write(f"$ {' '.join(cmd)}\n{_pip_text(r.stdout)}\n{_pip_text(r.stderr)}\nexit {r.returncode}\n")
    return r


def venv_versions(py: Path) -> dict[str, str]:  # {normalized name: version} in the drift environment
    r = subprocess.run([str(py), "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
                       capture_output=True, text=True, check=True)
    return {norm(x["name"]): x["version"] for x in json.loads(r.stdout)}


def module_owners(py: Path) -> dict[str, list[str]]:
    """{top-level module: [distribution names]} in the drift environment."""
    code = "import importlib.metadata as m, json; print(json.dumps(m.packages_distributions()))"
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=True)
    return {k: [norm(d) for d in v] for k, v in json.loads(r.stdout).items()}


# --- attribution ----------------------------------------------------------------------------------------------


IMPORT_SIGNS = (r"No module named '([\w.]+)'", r"cannot import name '\w+' from '([\w.]+)'",
                r"module '([\w.]+)' has no attribute")


def attribute(text: str, changed: dict[str, tuple[str | None, str | None]], owners: dict[str, list[str]]
              ) -> tuple[list[str], str, bool]:
    """(packages, evidence, certain): which changed packages a failure's traceback points at, and why."""
    text = ANSI.sub("", text)

    def owner(module: str) -> list[str]:
        top = module.split(".")[0]
        return [d for d in owners.get(top, [norm(top)]) if d in changed]

    for sign in IMPORT_SIGNS:
        for m in re.findall(sign, text):
            if owner(m):
                return owner(m), f"the import of {m!r} failed ({sign.split('(')[0].strip()})", True
    hit: list[str] = []
    for mod in re.findall(r"(?:site|dist)-packages[/\\]([A-Za-z_][\w]*)", text):  # frames, outermost first
        for d in owner(mod):
            if d in hit:
                hit.remove(d)
            hit.append(d)  # innermost last
    if len(hit) == 1:
        return hit, f"the traceback runs through {hit[0]}'s files and no other changed package's", True
    if hit:
        return hit[::-1], f"ambiguous: the traceback runs through {', '.join(hit[::-1])} (innermost first)", False
    return sorted(changed), "ambiguous: no changed package appears in the traceback", False


# --- running the contract and the SMOKE workbook in the drift environment -----------------------------------


def drift_env(venv: Path, build: Path) -> dict[str, str]:
    """The environment of a process in the drift venv: its python first, this checkout on PYTHONPATH, its own
    build folder (EDGEAI_BUILD) and its own Jupyter kernel (JUPYTER_PATH), so nothing runs in the pinned env."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "CONDA_PREFIX")}
    venv = venv.resolve()
    env.update(PATH=f"{venv_python(venv).parent}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               PYTHONPATH=str(ROOT), EDGEAI_BUILD=str(build.resolve()),  # absolute: notebooks run in their folder
               JUPYTER_PATH=str(venv / "share" / "jupyter"))
    return env


def install_kernel(py: Path, venv: Path) -> None:
    """A `python3` kernelspec inside the venv that starts the venv's python (found first through JUPYTER_PATH)."""
    subprocess.run([str(py), "-m", "ipykernel", "install", "--prefix", str(venv), "--name", "python3"],
                   check=True, capture_output=True)


def contract_failures(junit_xml: Path) -> list[tuple[str, str, str]]:
    """(pytest node id, error message, traceback text) of each failed or erroring test in a JUnit XML file."""
    if not junit_xml.exists():
        return []
    out = []
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            module, name = case.get("classname") or "", case.get("name") or ""
            node = f"{module.replace('.', '/')}.py::{name}" if module else name.replace(".", "/") + ".py"
            out.append((node, (bad.get("message") or "").strip(), bad.text or ""))
    return out


def junit_counts(junit_xml: Path) -> str:
    """'N passed, N skipped, N failed' from a pytest JUnit XML file."""
    if not junit_xml.exists():
        return "no result (pytest wrote no report)"
    n = {k: 0 for k in ("tests", "skipped", "failures", "errors")}
    for suite in ET.parse(junit_xml).getroot().iter("testsuite"):
        for k in n:
            n[k] += int(suite.get(k, 0))
    bad = n["failures"] + n["errors"]
    return f"{n['tests'] - n['skipped'] - bad} passed, {n['skipped']} skipped, {bad} failed"


def run_contract(py: Path, env: dict[str, str], out: Path, node: str = "tests/test_contract.py"
                 ) -> tuple[int, list[tuple[str, str, str]]]:
    xml = out / "contract.xml"
    xml.unlink(missing_ok=True)
    r = subprocess.run([str(py), "-m", "pytest", node, "-q", "-p", "no:cacheprovider", f"--junitxml={xml}"],
                       cwd=str(ROOT), env=env, capture_output=True, text=True)
    (out / "contract.log").write_text(r.stdout + r.stderr, encoding="utf-8")
    return r.returncode, contract_failures(xml)


def notebook_traceback(executed: Path) -> str:
    """The traceback of the first error output in an executed notebook (ANSI colours removed)."""
    if not executed.exists():
        return ""
    nb = json.loads(executed.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                return ANSI.sub("", "\n".join(o.get("traceback", [])))
    return ""


def run_smoke(py: Path, env: dict[str, str], build: Path, out: Path, notebooks: list[str], log_name: str = "smoke.log"
              ) -> list[dict[str, Any]]:
    """Run `python -m helpers run-all --smoke` in the drift env; the rows of its run report for this run."""
    report = build / "run-report.json"
    report.unlink(missing_ok=True)
    with (out / log_name).open("a" if log_name != "smoke.log" else "w", encoding="utf-8") as log:
        subprocess.run([str(py), "-m", "helpers", "run-all", "--smoke", *notebooks], cwd=str(ROOT), env=env,
                       stdout=log, stderr=subprocess.STDOUT)
    if not report.exists():
        raise DriftError(f"run-all wrote no report in the drift environment: see {out / log_name}")
    rows = json.loads(report.read_text(encoding="utf-8"))["notebooks"]
    for r in rows:
        if r["status"] != "ok":
            r["traceback"] = notebook_traceback(Path(r["executed"]) if Path(r["executed"]).is_absolute()
                                                else ROOT / r["executed"])
    return rows


# --- the report -----------------------------------------------------------------------------------------------


def build_report(packages: list[Package], diff: dict[str, tuple[str | None, str | None]], findings: list[Finding],
                 steps: dict[str, Any], interrupted: bool = False) -> dict[str, Any]:
    """The report as data (report.json); `format_report` renders it as Markdown."""
    broken = sorted({p for f in findings if f.certain for p in f.packages})
    if interrupted:
        verdict = "interrupted: the results below are partial"
    elif not findings:
        verdict = "nothing broke with the newest releases tried"
    else:
        verdict = (f"{len(findings)} finding(s); broken by: {', '.join(broken) or 'not attributed for certain'}")
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "python": sys.version.split()[0],
            "platform": sys.platform, "verdict": verdict, "interrupted": interrupted,
            "packages": [asdict(p) | {"tried": p.tried} for p in packages],
            "other_changes": {n: list(v) for n, v in diff.items() if n not in {p.name for p in packages}},
            "steps": steps, "findings": [asdict(f) for f in findings]}


def format_report(doc: dict[str, Any]) -> str:
    """Markdown: the verdict, each package (pin, newest tried, status), each finding with its evidence."""
    lines = [f"# Drift check, {doc['date'][:10]}", "",
             f"**{doc['verdict']}** (Python {doc['python']}, {doc['platform']}; run at {doc['date']})", "",
             "| package | pinned spec | pinned env | newest | status |", "|---|---|---|---|---|"]
    for p in doc["packages"]:
        status = p["status"] + (f": {p['why']}" if p["why"] else "")
        lines.append(f"| {p['name']} | `{p['spec'] or '-'}` | {p['baseline'] or '-'} | {p['newest'] or '-'} "
                     f"| {status} |")
    if doc["other_changes"]:
        moved = ", ".join(f"{n} {a or '-'} -> {b or '-'}" for n, (a, b) in sorted(doc["other_changes"].items()))
        lines += ["", "Other differences from the pinned environment (dependencies that moved with the above, or "
                  f"packages one of the two has and the other lacks): {moved}."]
    lines += ["", "## Steps", ""]
    for name, s in doc["steps"].items():
        lines.append(f"- {name}: {s.get('result', '')}" + (f" ({s['seconds']} s)" if "seconds" in s else ""))
    lines += ["", "## Findings", ""]
    if not doc["findings"]:
        lines.append("None: every check that ran passed." if not doc["interrupted"] else "None before the interrupt.")
    for f in doc["findings"]:
        who = ", ".join(f["packages"]) or "no package"
        lines += [f"### {f['where']}: {who}{'' if f['certain'] else ' (ambiguous)'}", "",
                  f"- evidence: {f['evidence']}", f"- error: `{f['error'][:600]}`"]
        if f["call"]:
            lines += ["- failing call or cell:", "", "```python", f["call"].rstrip()[-1500:], "```"]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_report(doc: dict[str, Any], out: Path, publish: Path | None = None) -> Path:
    for folder in [out] + ([publish] if publish else []):  # report.md/.json, and drift-DATE.md/.json to commit
        folder.mkdir(parents=True, exist_ok=True)
        stem = "report" if folder == out else f"drift-{doc['date'][:10]}"
        (folder / f"{stem}.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        (folder / f"{stem}.md").write_text(format_report(doc), encoding="utf-8")
    return out / "report.md"


# --- the whole check ------------------------------------------------------------------------------------------


@dataclass
class Options:
    skip: list[str] = field(default_factory=list)  # fast-moving packages kept at their pins
    fresh: bool = False
    notebooks: list[str] = field(default_factory=list)  # SMOKE subset (default: every notebook and solution)
    smoke: bool = True
    contract: bool = True
    bisect: bool = True
    allow_source_builds: bool = False
    index_url: str | None = None
    out: Path = BUILD / "drift"
    publish: Path | None = None  # also write drift-DATE.md/.json here (a folder that is committed)


def check_options(o: Options, fast_moving: list[str]) -> None:
    """Bad options fail before anything is installed, with what to do."""
    unknown = [s for s in o.skip if norm(s) not in fast_moving]
    if unknown:
        raise DriftError(f"--skip {', '.join(unknown)}: not in the fast-moving list ({', '.join(fast_moving)}); "
                         "it is kept at its pin anyway")
    missing = [n for n in o.notebooks if not (ROOT / n).is_file()]
    if missing:
        raise DriftError(f"no notebook at {', '.join(missing)}: give paths like notebooks/00-setup.ipynb "
                         "relative to the repository root")
    if not (o.smoke or o.contract):
        raise DriftError("--no-smoke and --no-contract together leave nothing to run: drop one of them")


def _install(py: Path, cfg: dict[str, Any], packages: list[Package], baseline: dict[str, str], o: Options,
             findings: list[Finding], log: Callable[[str], None]) -> bool:
    """Install the plan; a release pip cannot install is a finding, held back, and the rest tried again."""
    for _ in range(len(packages) + 1):
        moving = [p.name for p in packages if p.status == "changed"]
        log(f"pip install: newest {', '.join(moving) or '(none)'}; the rest at the pinned environment's versions")
        r = pip_install(py, requirements(cfg["dependencies"], packages, baseline), o.index_url, o.out / "pip.log")
        if r.returncode == 0:
            return True
        if any(s in r.stderr for s in NETWORK_SIGNS):
            raise DriftError("cannot reach the package index while installing: run the drift check where PyPI is "
                             f"reachable (pip's output: {o.out / 'pip.log'})")
        said = r.stdout + r.stderr  # pip explains a conflict on stdout, its ERROR lines go to stderr
        blamed = blame_install(said, moving)
        if not blamed:
            findings.append(Finding("install", install_error(said), packages=moving, certain=False,
                                    evidence="ambiguous: pip failed without naming one of the moving packages"))
            return False
        for p in packages:
            if p.name in blamed:
                p.status, p.why = "install failed", f"pip could not install {p.name}=={p.newest} (see findings)"
                findings.append(Finding("install", install_error(said), call=f"pip install {p.name}=={p.newest}",
                                        packages=[p.name], certain=True,
                                        evidence=f"pip's error names {p.name}; held back at its pin and retried"))
    return False


def _bisect(f: Finding, changed: dict[str, tuple[str | None, str | None]], rerun: Callable[[], bool],
            restore: Callable[[], None], py: Path, o: Options, log: Callable[[str], None]) -> None:
    """Settle an ambiguous failure: put each suspect back at its pinned version, rerun the failing item."""
    suspects = [p for p in f.packages if changed.get(p, (None, None))[0]]
    if not suspects or len(suspects) > 4:
        f.evidence += f"; not bisected ({len(suspects)} suspects with a pinned version)"
        return
    try:
        log(f"bisect {f.where}: first a rerun as it was")
        if rerun():  # a failure that does not come back is no package's fault (a kernel that died at start ...)
            f.packages, f.certain = [], False
            f.evidence += "; passed when run again unchanged: flaky, not blamed on a package"
            return
        for s in suspects:
            log(f"bisect {f.where}: {s} back at {changed[s][0]}")
            pip_install(py, [f"{s}=={changed[s][0]}"], o.index_url, o.out / "pip.log")
            ok = rerun()
            restore()
            if ok:
                f.packages, f.certain = [s], True
                f.evidence += f"; bisected: it passes with {s} back at {changed[s][0]}, fails with {changed[s][1]}"
                return
        every = [f"{n}=={a}" for n, (a, b) in changed.items() if a]
        log(f"bisect {f.where}: every changed package back at its pin")
        pip_install(py, every, o.index_url, o.out / "pip.log")
        ok = rerun()
        restore()
        if not ok:
            f.packages, f.certain = [], True
            f.evidence += "; bisected: it fails with every changed package back at its pin too, so it is not drift"
        else:
            f.evidence += "; bisected: no single package settles it, all of them back at their pins does"
    finally:
        restore()


def drift_check(o: Options, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the drift environment, run the checks there, write the report; returns the report's data."""
    cfg = drift_config()
    check_options(o, cfg["fast_moving"])
    o.out = o.out.resolve()  # absolute: notebooks run in their own folder and must find the same build folder
    o.out.mkdir(parents=True, exist_ok=True)
    for stale in ("pip.log", "bisect.log"):
        (o.out / stale).write_text("", encoding="utf-8")
    baseline = installed_versions()
    packages: list[Package] = []
    findings: list[Finding] = []
    steps: dict[str, Any] = {}
    diff: dict[str, tuple[str | None, str | None]] = {}
    interrupted = False
    try:
        t0 = time.perf_counter()
        newest = newest_releases(cfg["fast_moving"], o.index_url)
        held = {norm(s): "kept at the pin (--skip)" for s in o.skip}
        for n, info in newest.items():
            if not info["wheel"] and n not in held and not o.allow_source_builds and info["version"] != baseline.get(n):
                held[n] = (f"{info['version']} has no wheel here: it compiles from source (5-60 min on a small "
                           "machine); --allow-source-builds tries it")
        packages = plan_packages(cfg["fast_moving"], cfg["dependencies"], baseline,
                                 {n: i["version"] for n, i in newest.items()}, held)
        steps["newest releases"] = {"result": f"{sum(p.status == 'changed' for p in packages)} of {len(packages)} "
                                              "newer than the pinned environment",
                                    "seconds": round(time.perf_counter() - t0, 1)}
        t0 = time.perf_counter()
        py = ensure_venv(o.out / "venv", o.fresh, log)
        ok = _install(py, cfg, packages, baseline, o, findings, log)
        steps["install"] = {"result": "ok" if ok else "failed: nothing was run", "venv": _shown(o.out / "venv"),
                            "seconds": round(time.perf_counter() - t0, 1)}
        if not ok:
            return _finish(packages, diff, findings, steps, interrupted, o)
        diff = {n: v for n, v in version_diff(baseline, venv_versions(py)).items() if n not in NOT_COMPARED}
        changed = {n: v for n, v in diff.items() if v[1]}
        owners = module_owners(py)
        install_kernel(py, o.out / "venv")
        env = drift_env(o.out / "venv", o.out / "build")
        restore = lambda: pip_install(py, requirements(cfg["dependencies"], packages, baseline),  # noqa: E731
                                      o.index_url, o.out / "pip.log")
        if o.contract:
            t0 = time.perf_counter()
            log("contract suite (tests/test_contract.py) in the drift environment")
            rc, fails = run_contract(py, env, o.out)
            steps["contract"] = {"result": f"{junit_counts(o.out / 'contract.xml')} (pytest exit {rc})",
                                 "log": _shown(o.out / "contract.log"), "seconds": round(time.perf_counter() - t0, 1)}
            for node, msg, tb in fails:
                who, why, certain = attribute(f"{msg}\n{tb}", changed, owners)
                f = Finding(f"contract: {node}", msg or (tb.strip().splitlines() or [""])[-1], call=node,
                            packages=who, evidence=why, certain=certain)
                findings.append(f)
                if not certain and o.bisect:
                    _bisect(f, changed, lambda n=node: run_contract(py, env, o.out, n)[0] == 0, restore, py, o, log)
        if o.smoke:
            t0 = time.perf_counter()
            log(f"SMOKE run-all ({', '.join(o.notebooks) or 'every notebook and lab solution'}) in the drift env")
            rows = run_smoke(py, env, o.out / "build", o.out, o.notebooks)
            bad = [r for r in rows if r["status"] != "ok"]
            steps["smoke"] = {"result": f"{len(rows) - len(bad)} passed, {len(bad)} failed",
                              "log": _shown(o.out / "smoke.log"), "seconds": round(time.perf_counter() - t0, 1)}
            for r in bad:
                who, why, certain = attribute(f"{r.get('error', '')}\n{r.get('traceback', '')}", changed, owners)
                f = Finding(f"smoke: {r['notebook']}", r.get("error", ""), call=r.get("failing_cell", ""),
                            packages=who, evidence=why, certain=certain)
                findings.append(f)
                if not certain and o.bisect:
                    nb = r["notebook"]
                    _bisect(f, changed, lambda nb=nb: all(x["status"] == "ok" for x in
                                                          run_smoke(py, env, o.out / "build", o.out, [nb],
                                                                                    "bisect.log")),
                            restore, py, o, log)
    except KeyboardInterrupt:
        interrupted = True
    return _finish(packages, diff, findings, steps, interrupted, o)


def _shown(path: Path) -> str:
    """A path as the report shows it: relative to the repository when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _finish(packages, diff, findings, steps, interrupted, o: Options) -> dict[str, Any]:
    doc = build_report(packages, diff, findings, steps, interrupted)
    doc["report"] = _shown(write_report(doc, o.out, o.publish))
    return doc
