"""The ONNX Runtime GenAI generation loop behind the workbook's service (notebook 13 writes it out in cells).

`GenAIEngine` loads an exported ORT GenAI folder once and generates for many requests, each with its own
`og.Generator` (the model and tokenizer are shared): the prompt is the workbook's chat template
(`helpers.domain.chat_format.render`), the loop is `append_tokens` then `generate_next_token` until an
end-of-sequence id, a length limit, a deadline or a cancel. When tools are offered, `tool_guidance` builds a Lark
grammar of the workbook's tool-call format with each tool's JSON schema, and `GeneratorParams.set_guidance`
makes the model's reply follow it token by token (constrained decoding).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helpers.domain.chat_format import CALL_END, CALL_START, render
from helpers.runtimes.llama_chat import check_context
from helpers.runtimes.wire import normalize_messages

TOOL_CHOICES = ("none", "auto", "required")


class GenerationTimeout(TimeoutError):
    """A generation ran past its deadline."""


class GenerationCancelled(RuntimeError):
    """A generation was cancelled (the client went away)."""


class GuidanceError(ValueError):
    """The tools' grammar could not be compiled for constrained decoding."""


def model_id(model_dir: str | Path) -> str:
    """The id an ORT GenAI folder is served under: `edge-slm-<folder name>` (notebooks 01 and 13)."""
    return f"edge-slm-{Path(model_dir).name}"


def check_folder(model_dir: str | Path) -> Path:
    """An ORT GenAI folder that looks loadable, or a FileNotFoundError/ValueError saying what to do."""
    folder = Path(model_dir)
    fix = "run `python -m helpers export`, or pass the folder of an ORT GenAI export (data/onnx/int4)"
    if not folder.is_dir():
        raise FileNotFoundError(f"No ORT GenAI model folder at {folder}: {fix}.")
    cfg = folder / "genai_config.json"
    if not cfg.exists():
        raise FileNotFoundError(f"{folder} has no genai_config.json, so it is not an ORT GenAI export: {fix}.")
    try:
        decoder = json.loads(cfg.read_text(encoding="utf-8"))["model"]["decoder"]["filename"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{cfg} is not a valid ORT GenAI config (no model.decoder.filename): {fix}.") from None
    if not (folder / decoder).exists():
        raise FileNotFoundError(f"{folder} has no {decoder}, the model its genai_config.json names: {fix}.")
    return folder


def tool_guidance(tools: list[dict[str, Any]] | None, tool_choice: Any = "auto") -> tuple[str, str] | None:
    """(`"lark_grammar"`, grammar) for `GeneratorParams.set_guidance`, or None when nothing is constrained.

    The grammar is the workbook's tool-call format, `<tool_call>[{"name":...,"parameters":{...}}]</tool_call>`,
    with one alternative per tool whose arguments follow that tool's JSON schema (`%json`). `tool_choice`
    "auto" also allows plain text (which never starts with `<`), "required" allows only calls, a
    `{"type": "function", "function": {"name": N}}` only calls of N, and "none" (or no tools) constrains nothing.
    """
    if not tools or tool_choice == "none":
        return None
    funcs = [t.get("function", t) for t in tools]
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        funcs = [f for f in funcs if f["name"] == wanted]
        if not funcs:
            raise ValueError(f"tool_choice names {wanted!r}, which is not among the offered tools.")
        tool_choice = "required"
    elif tool_choice not in TOOL_CHOICES:
        raise ValueError(f"tool_choice must be one of {TOOL_CHOICES} or a named function, not {tool_choice!r}.")
    alts = []
    for i, f in enumerate(funcs):
        schema = f.get("parameters") or {"type": "object"}
        head = json.dumps('{"name":"%s","parameters":' % f["name"])
        alts.append(f"call_{i}: {head} %json {json.dumps(schema)} \"}}\"")
    lines = [f"call: {' | '.join(f'call_{i}' for i in range(len(funcs)))}",
             f'calls: {json.dumps(CALL_START + "[")} call ("," call)* {json.dumps("]" + CALL_END)}', *alts]
    if tool_choice == "required":
        lines.insert(0, "start: calls")
    else:
        lines.insert(0, "start: calls | TEXT")
        lines.append("TEXT: /[^<]+/")  # plain text never contains a tag, so it cannot be a broken call
    return "lark_grammar", "\n".join(lines)


class GenAIEngine:
    """One loaded ORT GenAI model that generates for many requests (notebook 13)."""

    def __init__(self, model_dir: str | Path, threads: int | None = None) -> None:
        from helpers.runtimes.base import default_threads

        self.model_dir = check_folder(model_dir)
        self.threads = threads or default_threads()  # ONNX Runtime's intra-op threads (EDGEAI_THREADS, default 1)
        self.model_id = model_id(self.model_dir)
        self.og_model = self.tokenizer = None
        self.eos: set[int] = set()
        self.context_length = 2048
        self.load_seconds: float | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self.og_model is not None

    def load(self) -> GenAIEngine:
        """Load the model and tokenizer (once); a corrupt folder is a ValueError naming the folder."""
        with self._lock:
            if self.og_model is not None:
                return self
            import onnxruntime_genai as og

            t0 = time.perf_counter()
            try:
                config = og.Config(str(self.model_dir))
                config.overlay(json.dumps({"model": {"decoder": {"session_options": {
                    "intra_op_num_threads": self.threads, "inter_op_num_threads": 1}}}}))
                model = og.Model(config)
                tokenizer = og.Tokenizer(model)
            except Exception as exc:  # onnxruntime-genai raises RuntimeError/OrtException with a long message
                first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                raise ValueError(f"ONNX Runtime GenAI could not load {self.model_dir} ({first}): the export is "
                                 "damaged or incomplete; run `python -m helpers export` to rebuild it.") from None
            cfg = json.loads((self.model_dir / "genai_config.json").read_text(encoding="utf-8"))
            self.context_length = int(cfg["model"].get("context_length") or cfg["search"].get("max_length") or 2048)
            self.eos = set(tokenizer.eos_token_ids)
            self.og_model, self.tokenizer = model, tokenizer
            self.load_seconds = time.perf_counter() - t0
        return self

    def prompt_ids(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                   max_tokens: int) -> list[int]:
        """Token ids of the rendered chat; ContextOverflow when the prompt and the reply cannot both fit."""
        self.load()
        ids = list(self.tokenizer.encode(render(normalize_messages(messages), tools, add_generation_prompt=True)))
        check_context(len(ids), max_tokens, self.context_length)  # ContextOverflow, worded once for every runtime
        return ids

    def begin(self, prompt_ids: list[int], *, max_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
              seed: int = 123, guidance: tuple[str, str] | None = None):
        """An `og.Generator` with the prompt appended (the prefill: one forward pass over the whole prompt).

        A grammar that ONNX Runtime GenAI cannot compile is a GuidanceError (the request's tools are wrong)."""
        import onnxruntime_genai as og

        self.load()
        params = og.GeneratorParams(self.og_model)
        opts: dict[str, Any] = {"max_length": len(prompt_ids) + max_tokens, "do_sample": temperature > 0}
        if temperature > 0:
            opts.update(temperature=temperature, top_p=top_p, top_k=40, random_seed=seed)
        params.set_search_options(**opts)
        if guidance is not None:
            try:
                params.set_guidance(*guidance)
                generator = og.Generator(self.og_model, params)
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise GuidanceError(f"the tools' JSON schemas could not be made into a grammar ({first}): "
                                    "simplify the `parameters` schemas") from None
        else:
            generator = og.Generator(self.og_model, params)
        generator.append_tokens(prompt_ids)
        return generator

    def run(self, generator, *, cancel: threading.Event | None = None, deadline: float | None = None,
            record=None) -> Iterator[tuple[str, str | None]]:
        """(text piece, None) for each generated token, then ("", finish reason "stop" or "length").

        Raises GenerationCancelled when `cancel` is set and GenerationTimeout past `deadline`
        (`time.monotonic()`), checked before every token, so a request never holds the model longer. `record`
        (a metrics RequestRecord) counts the output tokens and marks the first one."""
        stream = self.tokenizer.create_stream()  # decodes token by token, holding back incomplete characters
        n = 0
        while not generator.is_done():
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("the client went away")
            if deadline is not None and time.monotonic() > deadline:
                raise GenerationTimeout(f"{n} tokens generated")
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            if token in self.eos:
                yield "", "stop"
                return
            n += 1
            if record is not None:
                record.first_token()
                record.output_tokens = n
            yield stream.decode(token), None
        yield "", "length"

    def generate(self, prompt_ids: list[int], *, max_tokens: int = 256, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 123, guidance: tuple[str, str] | None = None,
                 cancel: threading.Event | None = None, deadline: float | None = None,
                 ) -> Iterator[tuple[str, str | None]]:
        """`begin` then `run`: the whole loop for one prompt."""
        generator = self.begin(prompt_ids, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
                               guidance=guidance)
        yield from self.run(generator, cancel=cancel, deadline=deadline)

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                 tool_choice: Any = "auto", max_tokens: int = 256, temperature: float = 0.0, seed: int = 123,
                 guided: bool = True) -> dict[str, Any]:
        """One whole generation in this process: the same work the service does for a request, without HTTP
        (notebook 13 measures the service's overhead against it)."""
        ids = self.prompt_ids(messages, tools, max_tokens)
        guidance = tool_guidance(tools, tool_choice) if guided else None
        text, finish, n = "", "stop", 0
        for piece, fin in self.generate(ids, max_tokens=max_tokens, temperature=temperature, seed=seed,
                                        guidance=guidance):
            text += piece
            n += fin is None
            finish = fin or finish
        return {"text": text, "finish_reason": finish, "prompt_tokens": len(ids), "completion_tokens": n}
