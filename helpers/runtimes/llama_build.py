"""Build llama.cpp's own `llama-server` and `llama-bench` from the source vendored in llama-cpp-python (notebook 11).

llama.cpp's C++ server is not on PyPI, but its whole source ships inside the llama-cpp-python sdist that
`helpers.model.export` already fetches. `build_llama_server()` compiles the two tools once, CPU only and
without network features, into `~/.cache/edge-slm/llama.cpp/<llama-cpp-python version>/bin/` (outside
the repository, keyed by version); a second call finds them and returns at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("llama-server", "llama-bench")
# cmake options: CPU only, no curl/OpenSSL (no model downloads), static, only the tools we need.
CMAKE_FLAGS = ("-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
               "-DGGML_NATIVE=ON", "-DGGML_CUDA=OFF", "-DGGML_VULKAN=OFF", "-DGGML_METAL=OFF",
               "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TOOLS=ON",
               "-DLLAMA_BUILD_SERVER=ON")


class LlamaBuildError(RuntimeError):
    """The llama.cpp build cannot run or failed; the message says what to install or do next."""


@dataclass
class LlamaBinaries:
    """Where the built tools are, and how long the build took (0.0 when they were already cached)."""

    bin_dir: Path
    server: Path
    bench: Path
    version: str
    build_seconds: float
    cached: bool


def _version() -> str:
    from helpers.model.export import LLAMA_CPP_PYTHON_VERSION

    return LLAMA_CPP_PYTHON_VERSION


def cache_root() -> Path:
    """`~/.cache/edge-slm/llama.cpp` (EDGEAI_LLAMA_CPP_CACHE overrides it)."""
    env = os.environ.get("EDGEAI_LLAMA_CPP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "edge-slm" / "llama.cpp"


def bin_dir(version: str | None = None) -> Path:
    return cache_root() / (version or _version()) / "bin"


def find_binaries(version: str | None = None) -> LlamaBinaries | None:
    """The cached binaries for this llama-cpp-python version, or None when they are not built yet."""
    d = bin_dir(version)
    server, bench = d / "llama-server", d / "llama-bench"
    if server.is_file() and bench.is_file() and os.access(server, os.X_OK):
        return LlamaBinaries(d, server, bench, version or _version(), 0.0, True)
    return None


def missing_build_tools() -> list[str]:
    """The build tools not on PATH: cmake, ninja and a C++ compiler (c++, g++ or clang++)."""
    missing = [t for t in ("cmake", "ninja") if shutil.which(t) is None]
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        missing.append("a C++ compiler (g++ or clang++)")
    return missing


INSTALL_HINT = ("install them, e.g. `sudo apt-get install cmake ninja-build g++` (Debian/Ubuntu), "
                "`brew install cmake ninja` + Xcode command line tools (macOS), or `pip install cmake ninja` "
                "for the first two")


def build_llama_server(jobs: int | None = None, log=print) -> LlamaBinaries:
    """Build llama-server and llama-bench once for this llama-cpp-python version; return where they are."""
    found = find_binaries()
    if found:
        return found
    missing = missing_build_tools()
    if missing:
        raise LlamaBuildError(f"Cannot build llama.cpp's server: {', '.join(missing)} not found on PATH; "
                              f"{INSTALL_HINT}. Then run `python -m helpers build-llama-server`.")
    from helpers.model.export import llama_cpp_sdist
    from helpers.paths import BUILD

    version = _version()
    t0 = time.perf_counter()
    sdist = llama_cpp_sdist()
    src = BUILD / "llama.cpp-src" / version
    if not (src / "CMakeLists.txt").exists():
        log(f"unpacking llama.cpp from {sdist.name} ...")
        prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
        tmp = src.with_name(version + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(sdist) as tar:
            members = []
            for m in tar.getmembers():
                if m.name.startswith(prefix) and len(m.name) > len(prefix) and (m.isfile() or m.isdir()):
                    m.name = m.name[len(prefix):]
                    members.append(m)
            tar.extractall(tmp, members=members, filter="data")
        shutil.rmtree(src, ignore_errors=True)
        tmp.rename(src)
    work = BUILD / "llama.cpp-build" / version
    jobs = jobs or max(1, os.cpu_count() or 1)
    steps = [["cmake", "-S", str(src), "-B", str(work), "-G", "Ninja", *CMAKE_FLAGS],
             ["cmake", "--build", str(work), "--target", *TOOLS, "-j", str(jobs)]]
    for cmd in steps:
        log("$ " + " ".join(cmd))
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            tail = (res.stdout + res.stderr)[-3000:]
            raise LlamaBuildError(f"llama.cpp build step failed ({' '.join(cmd[:3])} ...):\n{tail}\n"
                                  f"Fix the error above (often a missing package: {INSTALL_HINT}), then rerun "
                                  "`python -m helpers build-llama-server`.")
    dest = bin_dir(version)
    dest.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        built = work / "bin" / tool
        if not built.is_file():
            raise LlamaBuildError(f"The build finished but {built} is missing; delete {work} and rerun "
                                  "`python -m helpers build-llama-server`.")
        tmp_copy = dest / (tool + ".tmp")
        shutil.copy2(built, tmp_copy)
        tmp_copy.rename(dest / tool)  # atomic: a half-copied binary never looks built
    seconds = time.perf_counter() - t0
    (dest.parent / "build-seconds.txt").write_text(f"{seconds:.1f}\n")
    log(f"built {', '.join(TOOLS)} in {seconds / 60:.1f} min ({seconds:.0f} s) into {dest}")
    return LlamaBinaries(dest, dest / "llama-server", dest / "llama-bench", version, seconds, False)


def recorded_build_seconds(version: str | None = None) -> float | None:
    """How long the build that made the cached binaries took (written by `build_llama_server`)."""
    f = bin_dir(version).parent / "build-seconds.txt"
    try:
        return float(f.read_text().strip())
    except (OSError, ValueError):
        return None
