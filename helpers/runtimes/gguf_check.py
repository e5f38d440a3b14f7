"""Check a GGUF file before llama.cpp or gguf-py loads it: missing, not GGUF, or truncated/damaged, each with
one line that says what to do (a truncated file otherwise fails deep inside with "cannot reshape array").

Used by the workbook's server, the runtimes that load a GGUF and the quantization helpers (notebook 08).
"""

from __future__ import annotations

from pathlib import Path

GGUF_MAGIC = b"GGUF"
_FIX = ("restore the shipped file with `git checkout -- data/gguf` or rebuild it with `python -m helpers export` "
        "(`python -m helpers doctor` checks every shipped file)")


class DamagedGGUFError(ValueError):
    """The file starts like GGUF but its header or tensor data is cut short or garbled."""


def check_gguf_file(path: str | Path, deep: bool = True) -> Path:
    """`path` if it is a complete GGUF file; FileNotFoundError, IsADirectoryError or ValueError otherwise.

    `deep` reads the tensor table (gguf-py, memory-mapped: milliseconds for the workbook's model) and checks
    that every tensor's bytes lie inside the file.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a GGUF file: give the .gguf file inside it")
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}: check the path; {_FIX}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ValueError(f"{path.name} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r}): give a "
                         f".gguf model file; {_FIX}")
    if not deep:
        return path
    import gguf  # llama.cpp's own reader (a dependency of the workbook); a missing package is not a damaged file

    try:
        reader = gguf.GGUFReader(path)
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    except Exception as exc:  # noqa: BLE001 - gguf-py fails in many ways on a cut file (reshape, struct, index)
        raise DamagedGGUFError(f"{path.name} is damaged or truncated ({size:,} bytes; gguf-py: "
                               f"{type(exc).__name__}): {_FIX}") from None
    if end > size or not reader.tensors:
        raise DamagedGGUFError(f"{path.name} is truncated: its tensors need {end:,} bytes, the file has {size:,}: "
                               f"{_FIX}")
    return path


__all__ = ["DamagedGGUFError", "check_gguf_file"]
