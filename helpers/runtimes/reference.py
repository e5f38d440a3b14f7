"""Two reference runtimes for measuring exports side by side (notebook 01):
`transformers` (the trained weights in PyTorch) and `ortgenai` (ONNX Runtime GenAI directly, no Foundry).

They share the workbook's prompt rendering and reply parsing with the embedded runtime, so a difference
in their answers is a difference of the numerics of the export, nothing else.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

from helpers.domain.chat_format import parse_reply, render
from helpers.runtimes.base import Availability, ChatResult, Runtime, Timer
from helpers.runtimes.llama_chat import check_context
from helpers.runtimes.wire import normalize_messages


class _RenderedRuntime(Runtime):
    """Render with the workbook template, generate token ids, parse the reply."""

    model_dir: Path
    marker: str  # the file that must exist in model_dir
    engine: str  # what runs the model, for the availability line

    def availability(self) -> Availability:
        if not (self.model_dir / self.marker).exists():
            return Availability(self.name, False, f"no {self.marker} in {self.model_dir}",
                                "run `python -m helpers export`")
        return Availability(self.name, True, f"{self.engine} on {self.model_dir}", models=[self.model])

    @abstractmethod
    def generate_ids(self, prompt_ids: list[int], max_tokens: int, temperature: float, seed: int) -> list[int]:
        """Generated token ids after `prompt_ids` (stops at <|end|>, which is not included)."""

    @abstractmethod
    def context_length(self) -> int:
        """Tokens the model's context window holds (prompt plus reply)."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of a prompt text."""

    @abstractmethod
    def decode(self, ids: list[int]) -> str:
        """Text of generated ids."""

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
             temperature: float = 0.0, max_tokens: int = 256, seed: int = 123) -> ChatResult:
        from helpers.runtimes.wire import decode_calls

        timer = Timer()
        prompt = self.encode(render(normalize_messages(messages), tools, add_generation_prompt=True))
        check_context(len(prompt), max_tokens, self.context_length())
        out = self.generate_ids(prompt, max_tokens, temperature, seed)
        raw = self.decode(out)
        parsed = parse_reply(raw, known_tools=[t.get("function", t)["name"] for t in tools or []])
        calls, err = decode_calls([{"id": f"call_{i}", "function": {"name": c["name"], "arguments": c["arguments"]}}
                                   for i, c in enumerate(parsed.tool_calls)], tools)
        return ChatResult(runtime=self.name, model=self.model, content=raw if parsed.error else parsed.content,
                          tool_calls=calls, error=parsed.error or err,
                          finish_reason="tool_calls" if calls else "length" if len(out) >= max_tokens else "stop",
                          prompt_tokens=len(prompt),
                          completion_tokens=len(out), total_s=timer.elapsed, raw=raw)


class TransformersRuntime(_RenderedRuntime):
    """The trained weights in transformers + PyTorch (the reference every export is compared with)."""

    name = "transformers"
    marker, engine = "model.safetensors", "transformers"

    def __init__(self, model_dir: str | Path | None = None) -> None:
        from helpers.paths import MODEL_DIR

        self.model_dir = Path(model_dir) if model_dir else MODEL_DIR
        self._tok = self._model = None

    @classmethod
    def from_loaded(cls, model, tokenizer) -> "TransformersRuntime":
        """A runtime around a model and tokenizer already in memory (e.g. during training)."""
        rt = cls()
        rt._model, rt._tok = model, tokenizer
        return rt

    @property
    def model(self) -> str:
        return "edge-slm-hf"


    def _load(self) -> None:
        if self._model is None:
            import torch
            from transformers import AutoTokenizer, LlamaForCausalLM
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # keep notebook outputs free of progress bars
            torch.manual_seed(0)
            self._tok = AutoTokenizer.from_pretrained(str(self.model_dir))
            self._model = LlamaForCausalLM.from_pretrained(str(self.model_dir)).eval()

    def context_length(self) -> int:
        self._load()
        return int(self._model.config.max_position_embeddings)

    def encode(self, text: str) -> list[int]:
        self._load()
        return self._tok(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        self._load()
        return self._tok.decode(ids, skip_special_tokens=False)

    def generate_ids(self, prompt_ids: list[int], max_tokens: int, temperature: float, seed: int) -> list[int]:
        import torch

        self._load()
        torch.manual_seed(seed)
        ids = torch.tensor([prompt_ids])
        with torch.no_grad():
            out = self._model.generate(ids, max_new_tokens=max_tokens, do_sample=temperature > 0,
                                       temperature=temperature if temperature > 0 else None, top_k=None, top_p=None,
                                       eos_token_id=self._tok.eos_token_id, pad_token_id=self._tok.eos_token_id)
        gen = out[0, len(prompt_ids):].tolist()
        return gen[:-1] if gen and gen[-1] == self._tok.eos_token_id else gen


class OrtGenAIRuntime(_RenderedRuntime):
    """ONNX Runtime GenAI on an exported folder (int4 by default), with its own generation loop."""

    name = "ortgenai"
    marker, engine = "genai_config.json", "onnxruntime-genai"

    def __init__(self, model_dir: str | Path | None = None) -> None:
        from helpers.registry import artefact_path

        self.model_dir = Path(model_dir) if model_dir else artefact_path("onnx-int4").parent
        self._og_model = self._tok = None

    @property
    def model(self) -> str:
        return f"edge-slm-{self.model_dir.name}"


    def _load(self) -> None:
        if self._og_model is None:
            import onnxruntime_genai as og

            self._og_model = og.Model(str(self.model_dir))
            self._tok = og.Tokenizer(self._og_model)

    def context_length(self) -> int:
        import json

        return int(json.loads((self.model_dir / "genai_config.json").read_text())["model"]["context_length"])

    def encode(self, text: str) -> list[int]:
        self._load()
        return list(self._tok.encode(text))

    def decode(self, ids: list[int]) -> str:
        self._load()
        return self._tok.decode(ids) if ids else ""

    def generate_ids(self, prompt_ids: list[int], max_tokens: int, temperature: float, seed: int) -> list[int]:
        import onnxruntime_genai as og

        self._load()
        params = og.GeneratorParams(self._og_model)
        opts: dict[str, Any] = {"max_length": len(prompt_ids) + max_tokens, "do_sample": temperature > 0}
        if temperature > 0:
            opts.update(temperature=temperature, random_seed=seed, top_k=40)
        params.set_search_options(**opts)
        gen = og.Generator(self._og_model, params)
        gen.append_tokens(prompt_ids)
        out: list[int] = []
        eos = set(self._tok.eos_token_ids) if hasattr(self._tok, "eos_token_ids") else set()
        while not gen.is_done():
            gen.generate_next_token()
            tok = int(gen.get_next_tokens()[0])
            if tok in eos:
                break
            out.append(tok)
        return out
