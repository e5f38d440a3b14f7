"""Environment check: `python -m helpers doctor` and notebook 00 print the same report.

Python and package versions, CPU and memory, GPU if any, which runtimes are reachable and which model
each serves, where the workbook's data lives (every shipped file with its checksum), and what to do for each
missing piece. `python -m helpers doctor` exits 1 when a shipped file is missing or differs from
data/manifest.json (a runtime that is not installed is advice, not a failure).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from typing import Any

from helpers.paths import BUILD, DATA

PACKAGES = ("torch", "transformers", "tokenizers", "sentencepiece", "llama-cpp-python", "onnxruntime",
            "onnxruntime-genai", "foundry-local-sdk", "openai", "ollama", "agent-framework-core",
            "agent-framework-openai", "prometheus-client", "opentelemetry-sdk", "jupyterlab", "ipywidgets",
            "papermill", "nbval", "matplotlib", "psutil", "gguf")


def package_versions() -> dict[str, str | None]:
    """Installed version of each package the workbook uses (None if missing)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine() -> dict[str, Any]:
    """CPU, memory and GPU facts."""
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    try:
        import psutil

        vm = psutil.virtual_memory()
        info["ram_gb"] = round(vm.total / 2**30, 1)
        info["ram_available_gb"] = round(vm.available / 2**30, 1)
    except ImportError:
        info["ram_gb"] = None
    gpu = "none found"
    if shutil.which("nvidia-smi"):
        try:
            res = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            if res.returncode == 0 and res.stdout.strip():
                gpu = res.stdout.strip().replace("\n", "; ")
        except (OSError, subprocess.TimeoutExpired):
            pass
    info["gpu"] = gpu
    info["disk_free_gb"] = round(shutil.disk_usage(DATA if DATA.exists() else ".").free / 2**30, 1)
    return info


def report() -> dict[str, Any]:
    """Everything the doctor checks, as plain data."""
    from helpers.registry import verify
    from helpers.runtimes import survey
    from helpers.runtimes.base import default_threads

    runtimes = survey()
    return {"machine": machine(), "packages": package_versions(),
            "runtimes": [{"name": r.name, "ok": r.ok, "detail": r.detail, "fix": r.fix, "models": r.models}
                         for r in runtimes],
            "data_dir": str(DATA), "build_dir": str(BUILD), "artefacts": verify(),
            "selected": os.environ.get("EDGEAI_RUNTIME", "auto"), "threads": default_threads()}


def format_report(rep: dict[str, Any]) -> str:
    """The report as text, with a 'what to do' line for each missing piece."""
    m = rep["machine"]
    lines = ["== machine", f"python {m['python']} on {m['platform']}",
             f"cpus {m['cpu_count']}, ram {m.get('ram_gb')} GB ({m.get('ram_available_gb')} GB free), "
             f"disk free {m['disk_free_gb']} GB", f"gpu: {m['gpu']}", "", "== packages"]
    todo: list[str] = []
    for name, ver in rep["packages"].items():
        lines.append(f"{name:<24}{ver or 'MISSING'}")
        if ver is None:
            todo.append(f"{name} is missing: `pip install -e '.[all]'` installs every package the workbook uses")
    lines += ["", f"== runtimes (EDGEAI_RUNTIME={rep['selected']}, llama.cpp threads "
                  f"EDGEAI_THREADS={rep['threads']})"]
    for r in rep["runtimes"]:
        mark = "yes" if r["ok"] else "no "
        models = f" serves {', '.join(r['models'][:3])}" if r["ok"] and r["models"] else ""
        lines.append(f"{r['name']:<14}{mark} {r['detail']}{models}")
        if not r["ok"]:
            todo.append(f"{r['name']}: {r['fix']}")
    lines += ["", f"== data in {rep['data_dir']} (every shipped file, checked against data/manifest.json)"]
    width = max([len(a["name"]) for a in rep["artefacts"]] + [12]) + 2
    for a in rep["artefacts"]:
        size = f"{a['bytes'] / 1e3:.0f} kB" if a.get("bytes") else ""
        lines.append(f"{a['name']:<{width}}{'ok ' if a['ok'] else 'BAD'} {a['path']:<34}{size:>10} "
                     f"{a.get('sha256', '')} {a['note']}")
        if not a["ok"]:
            todo.append(f"{a['path']}: {a['note']}")
    lines += ["", "== what to do"]
    lines += [f"- {t}" for t in todo] or ["- nothing: everything the workbook needs is here"]
    return "\n".join(lines)
