"""Exports of the workbook model: GGUF (llama.cpp's converter and quantizer) and ONNX Runtime GenAI.

Introduced in notebook 01; `python -m helpers export` reproduces every shipped file. The GGUF converter
is not on PyPI as a module: it ships inside the llama-cpp-python source distribution, so `converter_dir`
fetches that sdist with pip (from the package index, like any install) and unpacks the converter into
build/. Nothing of it is committed to this repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Callable

from helpers.paths import BUILD, MODEL_NAME

LLAMA_CPP_PYTHON_VERSION = "0.3.36"

# llama.cpp file types (LLAMA_FTYPE_MOSTLY_*), by the names the course and llama.cpp's tools use.
GGUF_TYPES: dict[str, str] = {
    "F16": "LLAMA_FTYPE_MOSTLY_F16", "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "Q6_K": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "Q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M", "Q5_K_S": "LLAMA_FTYPE_MOSTLY_Q5_K_S", "Q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
    "Q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0", "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "Q4_K_S": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "Q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1", "Q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "Q3_K_L": "LLAMA_FTYPE_MOSTLY_Q3_K_L",
    "Q3_K_M": "LLAMA_FTYPE_MOSTLY_Q3_K_M", "Q3_K_S": "LLAMA_FTYPE_MOSTLY_Q3_K_S", "Q2_K": "LLAMA_FTYPE_MOSTLY_Q2_K",
}


CONFIG = "genai_config.json"
HOW_TO_BUILD = ("build one with `python -m helpers export`, or in Python with "
                "`helpers.model.export.hf_to_onnx_genai(MODEL_DIR, out_dir, 'fp32')`")


class ExportError(RuntimeError):
    """An export step failed; the message says which command and why."""


def llama_cpp_sdist(cache: Path | None = None) -> Path:
    """The llama-cpp-python source distribution (it vendors llama.cpp's full source), fetched once with pip."""
    cache = cache or BUILD / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
    if not sdist.exists():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python", "-q",
               f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(cache)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0 or not sdist.exists():
            raise ExportError("Could not fetch the llama-cpp-python sdist that carries llama.cpp's source "
                              f"({' '.join(cmd)}):\n{res.stderr[-2000:]}\nCheck that pip can reach the package index.")
    return sdist


def llama_cpp_vocab(name: str, fetch: bool = False) -> Path:
    """A general model family's tokenizer as a vocab-only GGUF (`ggml-vocab-<name>.gguf`: "qwen2", "phi-3",
    "llama-bpe", ...) from llama.cpp's test models in the llama-cpp-python sdist, unpacked once under
    build/cache/vocab (notebook 03 counts tokens with it). Load it with `llama_cpp.Llama(path, vocab_only=True)`.

    The sdist is already in build/cache where `python -m helpers build-llama-server` ran; `fetch=True` lets pip
    download it (76 MB) otherwise."""
    dest = BUILD / "cache" / "vocab" / f"ggml-vocab-{name}.gguf"
    if dest.exists():
        return dest
    sdist = BUILD / "cache" / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
    if not sdist.exists() and not fetch:
        raise FileNotFoundError(f"No llama-cpp-python sdist at {sdist}: run `python -m helpers build-llama-server` "
                                "(it fetches the sdist), or call llama_cpp_vocab(name, fetch=True).")
    sdist = llama_cpp_sdist()
    member = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/models/ggml-vocab-{name}.gguf"
    with tarfile.open(sdist) as tar:
        try:
            src = tar.extractfile(member)
        except KeyError:
            names = sorted(m.name.rsplit("ggml-vocab-", 1)[1][:-5] for m in tar.getmembers()
                           if "/models/ggml-vocab-" in m.name and m.name.endswith(".gguf"))
            raise KeyError(f"No vocabulary {name!r} in llama.cpp's models; there are {names}.") from None
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        tmp.write_bytes(src.read())
        os.replace(tmp, dest)
    return dest


def vocab_tokenizer(name: str, fetch: bool = False) -> Callable[[str], list[int]]:
    """A function text -> token ids with a general model family's tokenizer (`llama_cpp_vocab`), for counting
    what a prompt costs that model (notebook 03). llama.cpp's note that a vocab-only file has no training
    context goes to /dev/null, not to the notebook."""
    path = llama_cpp_vocab(name, fetch=fetch)
    from llama_cpp import Llama

    import contextlib
    import io

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # C code writes to fd 2; llama-cpp-python's log callback writes to sys.stderr (a
    try:                  # notebook's stream, not fd 2): both are silenced while the file loads
        with contextlib.redirect_stderr(io.StringIO()):
            vocab = Llama(str(path), vocab_only=True, verbose=False)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return lambda text: vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False)


def converter_dir(cache: Path | None = None) -> Path:
    """The folder holding `convert_hf_to_gguf.py` and `gguf-py`, unpacked from the llama-cpp-python sdist."""
    dest = BUILD / "converter"
    if (dest / "convert_hf_to_gguf.py").exists() and (dest / "gguf-py").is_dir():
        return dest
    sdist = llama_cpp_sdist(cache)
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"
    wanted = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")
    tmp = dest.with_name("converter.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(sdist) as tar:
        members = []
        for m in tar.getmembers():
            if m.name.startswith(prefix) and m.name[len(prefix):].startswith(wanted) and (m.isfile() or m.isdir()):
                m.name = m.name[len(prefix):]
                members.append(m)
        tar.extractall(tmp, members=members, filter="data")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def hf_to_gguf(hf_dir: str | Path, out_file: str | Path, outtype: str = "f16") -> Path:
    """Convert a transformers model folder to GGUF with llama.cpp's own converter."""
    conv = converter_dir()
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(conv / "gguf-py") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               NO_LOCAL_GGUF="")
    tmp = out_file.with_name(out_file.name + ".tmp")  # the shipped file is replaced only on success
    cmd = [sys.executable, str(conv / "convert_hf_to_gguf.py"), str(hf_dir), "--outfile", str(tmp),
           "--outtype", outtype]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise ExportError(f"GGUF conversion failed ({' '.join(cmd)}):\n{res.stderr[-3000:]}")
    os.replace(tmp, out_file)
    return out_file


def quantize_gguf(src: str | Path, dst: str | Path, qtype: str, threads: int = 2) -> Path:
    """Quantize a GGUF file to `qtype` (e.g. Q4_K_M) with llama.cpp's quantizer, in-process."""
    key = qtype.upper()
    if key not in GGUF_TYPES:
        raise ValueError(f"Unknown GGUF type {qtype!r}; choose one of {', '.join(GGUF_TYPES)}.")
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise FileNotFoundError(f"No GGUF file at {src}: run `python -m helpers export` first.")
    with open(src, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{src} is not a GGUF file (it does not start with the GGUF magic bytes).")
    free = shutil.disk_usage(dst.parent if dst.parent.exists() else Path.cwd()).free
    if free < src.stat().st_size:
        raise OSError(f"Not enough free disk for {dst}: {free} bytes free, up to {src.stat().st_size} needed.")
    import llama_cpp

    dst.parent.mkdir(parents=True, exist_ok=True)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, GGUF_TYPES[key])
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0 or not dst.exists():
        raise ExportError(f"llama.cpp could not quantize {src} to {key} (return code {rc}).")
    return dst


def quantized_path(qtype: str, out_dir: str | Path | None = None, stem: str = MODEL_NAME) -> Path:
    """Where the quantized file of `qtype` goes, the workbook's one naming scheme (notebook 08):
    <out_dir, default build/quant>/<stem>-<type in lower case>.gguf, e.g. build/quant/edge-slm-q4_k_m.gguf."""
    return Path(out_dir or BUILD / "quant") / f"{stem}-{qtype.lower()}.gguf"


def quantized_gguf(src: str | Path, qtype: str, out_dir: str | Path | None = None, threads: int = 2,
                   force: bool = False, quantizer: Callable[..., Any] | None = None) -> Path:
    """`src` quantized to `qtype` at `quantized_path(qtype, out_dir)`, made once and remade when `src` is newer
    (notebooks 04, 08-10). `quantizer(src, dst, qtype, threads=...)` defaults to `quantize_gguf`; notebook 08's
    checked `helpers.quant.quantize` is passed by the quantization notebooks. The file appears atomically: a
    process that has an old copy open keeps reading it intact."""
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"No GGUF file at {src}: restore data/gguf from git or run `python -m helpers export`.")
    dst = quantized_path(qtype, out_dir)
    if not force and dst.exists() and dst.stat().st_size > 0 and dst.stat().st_mtime >= src.stat().st_mtime:
        return dst
    tmp = dst.parent / f".tmp-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        (quantizer or quantize_gguf)(src, tmp / dst.name, qtype.upper(), threads=threads)
        os.replace(tmp / dst.name, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


def hf_to_onnx_genai(hf_dir: str | Path, out_dir: str | Path, precision: str = "int4",
                     execution_provider: str = "cpu", cache_dir: str | Path | None = None) -> Path:
    """Build an ONNX Runtime GenAI model folder with onnxruntime-genai's model builder, in this process.

    The same as `python -m onnxruntime_genai.models.builder -i hf_dir -o out_dir -p precision -e
    execution_provider`, without a second import of torch and transformers (seconds on a small machine)
    and without the builder's per-MatMul log lines. `out_dir` is replaced only when the build succeeds.
    The builder writes its own tokenizer_config.json without the chat template, so the model's own file
    is copied over it.
    """
    import contextlib
    import io
    import logging

    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    if not (hf_dir / "config.json").exists():
        raise FileNotFoundError(f"No transformers model at {hf_dir} (no config.json): pass a folder written by "
                                "save_pretrained, such as helpers.paths.MODEL_DIR.")
    if precision not in ("fp32", "fp16", "bf16", "int8", "int4"):
        raise ValueError(f"precision must be fp32, fp16, bf16, int8 or int4, not {precision!r}.")
    cache = Path(cache_dir) if cache_dir else BUILD / "cache" / f"ortgenai-{out_dir.name}-{precision}"
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    log = io.StringIO()
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), root.manager.disable)  # the builder sets the root logger to INFO
    logging.disable(logging.INFO)  # the int4 quantizer logs every MatMul at INFO
    try:
        from onnxruntime_genai.models.builder import create_model, parse_extra_options

        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            extra = parse_extra_options(None, str(hf_dir), str(tmp), precision, execution_provider, str(cache), [])
            create_model(None, str(hf_dir), str(tmp), precision, execution_provider, str(cache), **extra)
        if (hf_dir / "tokenizer_config.json").exists():
            shutil.copy2(hf_dir / "tokenizer_config.json", tmp / "tokenizer_config.json")
        check_genai_folder(tmp)
    except (Exception, SystemExit) as exc:  # the builder exits through argparse on some bad options
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError(f"The ORT GenAI builder failed for {hf_dir} ({precision}, {execution_provider}): {exc}\n"
                          f"{log.getvalue()[-2000:]}") from exc
    finally:
        logging.disable(saved[2])
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


# ----------------------------------------------------------------------------------------- ORT GenAI folders
def check_onnx_file(path: str | Path) -> Path:
    """`path` if it is an ONNX model file, else a clear error saying what to pass instead (notebook 10)."""
    import onnx

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No ONNX file at {path}: {HOW_TO_BUILD}.")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; pass the model file inside it (usually {path / 'model.onnx'}).")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ValueError(f"{path} is not an ONNX model ({type(exc).__name__}). Pass a model.onnx written by "
                         f"the ORT GenAI builder or torch.onnx.export; {HOW_TO_BUILD}.") from None
    if not model.graph.node:
        raise ValueError(f"{path} parsed as ONNX but holds no graph nodes: it is not an ONNX model. {HOW_TO_BUILD}.")
    return path


def check_genai_folder(path: str | Path) -> Path:
    """`path` if it is an ORT GenAI model folder, else a clear error saying how to make one (notebook 10)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No ORT GenAI folder at {path}: {HOW_TO_BUILD}.")
    if path.is_file():
        raise NotADirectoryError(f"{path} is a file; pass the ORT GenAI folder that holds {CONFIG} "
                                 f"(for example {path.parent}).")
    if not (path / CONFIG).exists():
        raise FileNotFoundError(f"{path} is not an ORT GenAI folder: it has no {CONFIG}. {HOW_TO_BUILD[0].upper()}"
                                f"{HOW_TO_BUILD[1:]}.")
    check_onnx_file(path / model_filename(path))
    return path


def model_filename(folder: str | Path) -> str:
    """The ONNX file an ORT GenAI folder's config names (`model.onnx` as the builder writes it) (notebook 10)."""
    cfg = json.loads((Path(folder) / CONFIG).read_text(encoding="utf-8"))
    return cfg["model"]["decoder"]["filename"]
