"""Commands of `python -m helpers`: a thin face over functions the notebooks also call."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_train_model(a: argparse.Namespace) -> int:
    from helpers.model.pipeline import prepare_tokenizer
    from helpers.model.train import ModelShape, TrainConfig, train

    out = Path(a.out)
    tok_dir = out / "tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        if a.tokenizer or a.init_from:  # continuing a model: keep its tokenizer
            import shutil

            tok_dir.mkdir(parents=True, exist_ok=True)
            for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "chat_template.jinja"):
                shutil.copy2(Path(a.tokenizer or a.init_from) / name, tok_dir / name)
        else:
            prepare_tokenizer(tok_dir, n_dialogues=a.tokenizer_dialogues, vocab_size=a.vocab_size, seed=a.seed)
    cfg = TrainConfig(steps=a.steps, max_minutes=a.minutes, lr=a.lr, batch_tokens=a.batch_tokens, seed=a.seed,
                      eval_every=a.eval_every, threads=a.threads,
                      compile=a.compile, value_weight=a.value_weight, init_from=a.init_from,
                      grow_layers=a.grow_layers, copy_share=a.copy_share, realistic_share=a.realistic_share,
                      workers=a.workers, device=a.device, bf16=a.bf16, tokenizer=a.tokenizer)
    shape = ModelShape(num_hidden_layers=a.layers, hidden_size=a.hidden, intermediate_size=a.intermediate)

    def log(msg: str) -> None:
        print(msg, flush=True)

    from helpers.eval import transformers_exact_match

    record = train(out, tok_dir, cfg, shape, log=log, evaluate=transformers_exact_match)
    print(json.dumps({k: v for k, v in record.items() if k != "history"}))
    return 0


def _cmd_extend_tokenizer(a: argparse.Namespace) -> int:
    from helpers.data.realistic_synth import korean_characters
    from helpers.model.pipeline import extend_tokenizer

    added = extend_tokenizer(a.src, korean_characters(a.min_count), a.out)
    shown = f" ({''.join(added[:20])}...)" if added else " (it had them all)"
    print(f"{a.out}: {len(added)} pieces added to the tokenizer of {a.src}{shown}")
    return 0


def _cmd_serve(a: argparse.Namespace) -> int:
    from helpers.registry import default_gguf
    from helpers.runtimes.server import serve

    return serve(a.model or default_gguf(), host=a.host, port=a.port, n_threads=a.threads, n_ctx=a.ctx,
                 api_key_file=a.api_key_file, cors_origins=tuple(a.cors_origin), allowed_hosts=tuple(a.allowed_host),
                 max_queue=a.max_queue, max_body_bytes=a.max_body_bytes)


def _cmd_serve_ortgenai(a: argparse.Namespace) -> int:
    from helpers.paths import ONNX_DIR
    from helpers.runtimes.ortgenai_service import ServiceSettings, serve
    from helpers.runtimes.server import read_api_key

    settings = ServiceSettings(model_dir=Path(a.model_dir) if a.model_dir else ONNX_DIR / "int4",
                               api_key=read_api_key(a.api_key_file) if a.api_key_file else None,
                               max_concurrency=a.max_concurrency,
                               max_queue=a.max_queue, request_timeout_s=a.timeout)
    serve(settings, host=a.host, port=a.port, exit_with_parent=a.exit_with_parent)
    return 0


def _cmd_eval_toolcalls(a: argparse.Namespace) -> int:
    from helpers.eval import format_table, load_cases, predict, summarize
    from helpers.runtimes import check_runtime_name, get_runtime

    if a.runtime is not None:
        check_runtime_name(a.runtime)
    cases = load_cases(a.path)
    _check_model_arg(a.model)
    if a.constrained and (a.runtime or "").lower() != "embedded":
        raise ValueError("--constrained applies to the embedded runtime only: add --runtime embedded")
    rt = get_runtime(a.runtime, a.model, **({"constrained": a.constrained} if a.constrained else {}))
    name, model = rt.name, rt.model
    try:
        preds = predict(rt, cases, progress=sys.stderr.isatty())
    finally:
        rt.close()
    summary = summarize(cases, preds)
    print(f"runtime={name} model={model} decoding=greedy" + (f", {a.constrained}-constrained" if a.constrained
                                                              else ", unconstrained"))
    print(format_table(summary))
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            for c, p in zip(cases, preds):
                f.write(json.dumps({"id": c["id"], "predicted": p}, ensure_ascii=False) + "\n")
    return 0


def _cmd_build_llama_server(a: argparse.Namespace) -> int:
    from helpers.runtimes.llama_build import LlamaBuildError, build_llama_server, recorded_build_seconds

    try:
        b = build_llama_server(jobs=a.jobs)
    except LlamaBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    took = b.build_seconds if not b.cached else recorded_build_seconds()
    print(f"llama-server: {b.server}\nllama-bench: {b.bench}\n"
          + (f"already built (the build took {took:.0f} s)" if b.cached and took else f"built in {took:.0f} s"))
    return 0


def _check_model_arg(model: str | None) -> None:
    """A --model that names a .gguf file is checked (missing, a folder, truncated) before a runtime loads it."""
    if model and model.lower().endswith(".gguf"):
        from helpers.runtimes.gguf_check import check_gguf_file

        check_gguf_file(model)


def _cmd_interpolate_run(a: argparse.Namespace) -> int:
    from helpers.model.pipeline import interpolate_run

    out = interpolate_run(a.run, a.alpha, a.out, a.start)
    print(f"{out}: weights (1 - {a.alpha:g}) * start + {a.alpha:g} * final; package it with "
          f"`python -m helpers export --from-run {out}`")
    return 0


def _cmd_export(a: argparse.Namespace) -> int:
    from helpers.agents.evaluate import agent_cases, write_cases
    from helpers.agents.toolbox import build_shop_db
    from helpers.model.pipeline import export_all
    from helpers.registry import artefact_path

    # the agents' data first (it does not depend on the model), then the model's files and the manifest
    print(f"shop-db: {build_shop_db()}")
    print(f"agent-dev-set: {write_cases(agent_cases(100, 123), artefact_path('agent-dev-set'))}")
    res = export_all(a.from_run)
    print(json.dumps(res["timings_s"]))
    return 0


def _cmd_doctor(a: argparse.Namespace) -> int:
    import os

    from helpers.doctor import format_report, report
    from helpers.runtimes import check_runtime_name

    if a.fit:
        from dataclasses import asdict

        from helpers.preflight import fit_file

        fr = fit_file(a.fit, ctx=a.ctx, parallel=a.parallel)
        print(json.dumps(asdict(fr), indent=1) if a.json else fr.text())
        return 0 if fr.verdict == "fits" else 1
    check_runtime_name(os.environ.get("EDGEAI_RUNTIME", "auto"))

    rep = report()
    print(json.dumps(rep, indent=1) if a.json else format_report(rep))
    bad = [x["path"] for x in rep["artefacts"] if not x["ok"]]
    if bad:
        print(f"error: {len(bad)} shipped file(s) missing or changed ({', '.join(bad[:4])}"
              f"{' ...' if len(bad) > 4 else ''}): see 'what to do' above", file=sys.stderr)
        return 1
    return 0


def _cmd_contract(a: argparse.Namespace) -> int:
    from helpers.contract import FAIL, format_contract, run_contract
    from helpers.runtimes import check_runtime_name

    names = [check_runtime_name(n) for n in a.runtimes.split(",")] if a.runtimes else None
    table = run_contract(names, log=print if a.verbose else None)
    print(format_contract(table))
    return 1 if any(o.status == FAIL for row in table.values() for o in row.values()) else 0


def _cmd_run_all(a: argparse.Namespace) -> int:
    import os

    from helpers.runner import run_all
    from helpers.runtimes import check_runtime_name

    check_runtime_name(os.environ.get("EDGEAI_RUNTIME", "auto"))  # fail before running anything

    if a.jobs < 1:
        raise ValueError(f"run-all: --jobs must be 1 or more, not {a.jobs}")
    doc = run_all([Path(p) for p in a.notebooks] or None, smoke=a.smoke, jobs=a.jobs)
    for r in doc["notebooks"]:
        who = ", ".join(r["runtimes"]) or "-"
        print(f"{r['status']:<7}{r['seconds']:>8.1f} s  {r['notebook']}  answered by: {who}")
        if r["status"] != "ok":
            cell = "\n".join("    " + x for x in r.get("failing_cell", "").splitlines())
            print(f"  {r['error']}\n  failing cell:\n" + cell)
    print(f"{doc['passed']} passed, {doc['failed']} failed in {doc['seconds']} s; report: build/run-report.json")
    return 1 if doc["failed"] else 0


def _cmd_compare(a: argparse.Namespace) -> int:
    from helpers.compare import compare_runtimes, format_rows
    from helpers.eval import load_cases

    cases = load_cases(a.path)[: a.limit or None]
    rows = compare_runtimes(cases, a.runtimes.split(","), progress=sys.stderr.isatty())
    print(format_rows(rows))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


def _cmd_quantize(a: argparse.Namespace) -> int:
    import warnings

    from helpers.model.export import quantized_path
    from helpers.paths import BUILD
    from helpers.quant.quantize import quantize
    from helpers.registry import default_gguf

    from helpers.runtimes.gguf_check import check_gguf_file

    src = check_gguf_file(Path(a.src) if a.src else default_gguf())
    out = Path(a.out) if a.out else BUILD / "quant"
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file: give a folder for the quantized files (default build/quant)")
    stem = src.stem.removesuffix("-f16")
    for qt in a.types:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = quantize(src, quantized_path(qt, out, stem), qt, threads=a.threads)
        print(f"{r.qtype:<7}{r.size_mb:7.2f} MB {r.seconds:6.2f} s  {r.type_counts}  -> {r.path}")
        for w in caught:
            print(f"  warning: {w.message}", file=sys.stderr)
    return 0


def _cmd_bench_quant(a: argparse.Namespace) -> int:
    from helpers.quant.measure import bench_quant

    return bench_quant(a)


def _cmd_bench_onnx(a: argparse.Namespace) -> int:
    from helpers.quant.onnx import bench_onnx

    return bench_onnx(a)


def _cmd_eval_agent(a: argparse.Namespace) -> int:
    from helpers.agents.evaluate import eval_agent

    _check_model_arg(a.model)
    return eval_agent(a)


def _eval_agent_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of `eval-agent` (notebook 03)."""
    from helpers.agents.evaluate import DEFAULT_PATH

    p.add_argument("path", nargs="?", default=DEFAULT_PATH, help=f"JSONL agent eval file (default {DEFAULT_PATH})")
    p.add_argument("--runtime", default=None, help="auto or a runtime name (default: EDGEAI_RUNTIME or auto)")
    p.add_argument("--model", default=None, help="model name, or a GGUF path for embedded/llamacpp")
    p.add_argument("--out", default=None, help="write one row per case (turns, answers, calls) as JSONL")
    p.add_argument("--limit", type=int, default=0, help="only the first N cases")
    p.add_argument("--max-steps", type=int, default=4, help="model calls per request (step limit)")
    p.add_argument("--max-retries", type=int, default=1, help="retries after a broken or invalid call")
    p.add_argument("--constrained", choices=["schema", "extractive"], default=None,
                   help="embedded only: grammar-constrained decoding (see helpers/runtimes/constrained.py)")
    p.add_argument("--write", action="store_true", help="(re)generate the eval file at PATH instead of running it")
    p.add_argument("--n", type=int, default=100, help="with --write: how many cases")
    p.add_argument("--seed", type=int, default=123, help="with --write: the seed")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    from helpers.cli_tracks import add_commands

    add_commands(sub)  # the tracks' commands: guardrails, outputs, drift, serving, monitoring, deploy, lab
    d = sub.add_parser("doctor", help="check the environment: packages, machine, runtimes, data")
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.add_argument("--fit", metavar="MODEL.gguf", help="preflight: will this GGUF fit in free RAM/VRAM? (reads only "
                   "its header; exits 1 unless it fits as it is)")
    d.add_argument("--ctx", type=int, help="with --fit: context tokens per sequence (default: the model's)")
    d.add_argument("--parallel", type=int, default=1, help="with --fit: sequences served at once (default 1)")
    d.set_defaults(func=_cmd_doctor)

    c = sub.add_parser("contract", help="one contract, every runtime: the same checks on each runtime here")
    c.add_argument("--runtimes", help="comma-separated runtime names (default: every registered runtime)")
    c.add_argument("-v", "--verbose", action="store_true", help="print each check as it runs")
    c.set_defaults(func=_cmd_contract)


    r = sub.add_parser("run-all", help="execute every notebook and lab solution headless (papermill)")
    r.add_argument("notebooks", nargs="*", help="only these notebooks (default: all)")
    r.add_argument("--smoke", action="store_true", help="pass SMOKE=True to each notebook's parameters cell")
    r.add_argument("--jobs", type=int, default=1,
                   help="lanes run side by side, each a process running its notebooks one after the other; a lesson "
                        "and its lab share a lane (default 1; timings printed by notebooks are noisier with 2)")
    r.set_defaults(func=_cmd_run_all)


    t = sub.add_parser("train-model", help="train the workbook's SLM from scratch (CPU)")
    t.add_argument("--out", default="build/train", help="run folder (resumes from its checkpoint)")
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--minutes", type=float, default=None, help="wall-clock budget; the LR schedule follows it")
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--batch-tokens", type=int, default=6144)
    t.add_argument("--layers", type=int, default=4)
    t.add_argument("--hidden", type=int, default=256)
    t.add_argument("--intermediate", type=int, default=768)
    t.add_argument("--vocab-size", type=int, default=1024)
    t.add_argument("--tokenizer-dialogues", type=int, default=40000)
    t.add_argument("--eval-every", type=int, default=500)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--seed", type=int, default=123)
    t.add_argument("--compile", action="store_true", help="torch.compile the training step")
    t.add_argument("--init-from", default=None, help="continue from these weights, e.g. data/model")
    t.add_argument("--grow-layers", type=int, default=None,
                   help="with --init-from: deepen the model to this many layers, starting from the same function")
    t.add_argument("--value-weight", type=float, default=1.0,
                   help="loss weight of the argument values in tool calls (what the model must copy)")
    t.add_argument("--copy-share", type=float, default=0.0,
                   help="share of training free texts and cities made of the tokenizer's own pieces, so that "
                        "the model learns to copy every word piece (the shipped model: 0.3)")
    t.add_argument("--realistic-share", type=float, default=0.0,
                   help="share of dialogues of issue 21's realistic kinds (spoken times, stories, Korean...)")
    t.add_argument("--tokenizer", default=None,
                   help="train with this tokenizer folder (e.g. one from `extend-tokenizer`) instead of a new one "
                        "or --init-from's")
    t.add_argument("--workers", type=int, default=0, help="data processes that write and encode dialogues")
    t.add_argument("--device", default="cpu", help="cpu, or cuda on a machine with a GPU")
    t.add_argument("--bf16", action="store_true", help="bfloat16 autocast (GPU)")
    t.set_defaults(func=_cmd_train_model)
    et = sub.add_parser("extend-tokenizer",
                        help="a tokenizer copy with Hangul syllables added as pieces (issue 21; run 7's tokenizer)")
    et.add_argument("--from", dest="src", default="data/model", help="tokenizer folder to extend")
    et.add_argument("--out", required=True, help="folder for the new tokenizer (for train-model --tokenizer)")
    et.add_argument("--min-count", type=int, default=2,
                    help="add the syllables used at least this often in data/text/synth_korean.txt")
    et.set_defaults(func=_cmd_extend_tokenizer)

    s = sub.add_parser("serve", help="run the workbook's OpenAI-compatible llama.cpp server")
    s.add_argument("--model", default=None, help="GGUF file (default: the shipped f16 model)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--ctx", type=int, default=2048, help="context size in tokens (default 2048, the model's)")
    s.add_argument("--api-key-file", default=None,
                   help="require this key (first line of the file) on every route but /health; the environment "
                        "variable EDGE_SLM_API_KEY does the same")
    s.add_argument("--cors-origin", action="append", default=[],
                   help="let a web page from this origin call the server (repeatable; default: none)")
    s.add_argument("--allowed-host", action="append", default=[],
                   help="another Host header name to answer (default: 127.0.0.1, localhost, ::1 and --host)")
    s.add_argument("--max-queue", type=int, default=16, help="requests that may wait for the model (more get 503)")
    s.add_argument("--max-body-bytes", type=int, default=1_000_000, help="largest request body (more get 413)")
    s.set_defaults(func=_cmd_serve)

    bl = sub.add_parser("build-llama-server", help="build llama.cpp's llama-server and llama-bench once (CPU, ~10 min)")
    bl.add_argument("--jobs", type=int, default=None, help="parallel compile jobs (default: all cores)")
    bl.set_defaults(func=_cmd_build_llama_server)

    so = sub.add_parser("serve-ortgenai", help="run the ONNX Runtime GenAI service (OpenAI API, /health, /metrics)")
    so.add_argument("--model-dir", default=None, help="ORT GenAI folder (default: data/onnx/int4)")
    so.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    so.add_argument("--port", type=int, default=8766)
    so.add_argument("--api-key-file", default=None, help="file whose first line is the API key clients must send")
    so.add_argument("--max-concurrency", type=int, default=1, help="generations at once (default 1)")
    so.add_argument("--max-queue", type=int, default=8, help="requests that may wait; more get 503 (default 8)")
    so.add_argument("--timeout", type=float, default=60.0, help="seconds per request, waiting included (default 60)")
    so.add_argument("--exit-with-parent", action="store_true", help="stop when the starting process is gone")
    so.set_defaults(func=_cmd_serve_ortgenai)

    w = sub.add_parser("interpolate-run", help="mix a run's final weights with the weights it started from")
    w.add_argument("run", help="a training run folder (train-model --init-from ... --out RUN)")
    w.add_argument("--alpha", type=float, required=True, help="share of the run's final weights, 0 to 1")
    w.add_argument("--start", default=None, help="weights to mix with (default: the run's --init-from)")
    w.add_argument("--out", default=None, help="output run folder (default: RUN-aALPHA beside RUN)")
    w.set_defaults(func=_cmd_interpolate_run)

    x = sub.add_parser("export", help="rebuild GGUF (f16, Q8_0), ONNX GenAI (int4, fp32), dev sets, shop db, manifest")
    x.add_argument("--from-run", default=None, help="package this training run into data/model first")
    x.set_defaults(func=_cmd_export)

    c = sub.add_parser("compare-runtimes", help="exact match and output agreement of runtimes, side by side")
    c.add_argument("path", help="JSONL eval file (data/eval/dev.jsonl)")
    c.add_argument("--runtimes", default="transformers,embedded,ortgenai,foundry")
    c.add_argument("--limit", type=int, default=0, help="only the first N cases")
    c.add_argument("--json", default=None, help="also write the rows to this JSON file")
    c.set_defaults(func=_cmd_compare)

    e = sub.add_parser("eval-toolcalls", help="tool-call exact match of a runtime on a JSONL eval file")
    e.add_argument("path", help="JSONL file: {id, messages, expected} per line (data/eval/dev.jsonl)")
    e.add_argument("--runtime", default=None, help="auto or a runtime name (default: EDGEAI_RUNTIME or auto)")
    e.add_argument("--model", default=None, help="model name, or a GGUF path for embedded/llamacpp")
    e.add_argument("--out", default=None, help="write one prediction per case as JSONL")
    e.add_argument("--constrained", choices=["schema", "extractive"], default=None,
                   help="embedded only: grammar-constrained decoding (see helpers/runtimes/constrained.py)")
    e.set_defaults(func=_cmd_eval_toolcalls)

    q = sub.add_parser("quantize", help="quantize a GGUF with llama.cpp (checks type, file, disk; warns on fallbacks)")
    q.add_argument("types", nargs="+", help="e.g. Q8_0 Q4_K_M Q2_K")
    q.add_argument("--src", help="f16/f32 GGUF (default: data/gguf/edge-slm-f16.gguf)")
    q.add_argument("--out", help="output folder (default: build/quant)")
    q.add_argument("--threads", type=int, default=2)
    q.set_defaults(func=_cmd_quantize)

    b = sub.add_parser("bench-quant", help="quantize the workbook model to several GGUF types and measure each")
    b.add_argument("--types", default="Q2_K,Q3_K_M,Q4_0,Q4_K_M,Q5_K_S,Q5_K_M,Q6_K,Q8_0",
                   help="comma-separated GGUF types (F16 is the base; default: helpers.quant.measure.DEFAULT_TYPES)")
    b.add_argument("--model", default=None, help="f16 GGUF to quantize (default: data/gguf/edge-slm-f16.gguf)")
    b.add_argument("--cases", default="data/eval/dev.jsonl", help="JSONL eval file for tool-call exact match")
    b.add_argument("--limit", type=int, default=0, help="only the first N cases (0: all)")
    b.add_argument("--dialogues", type=int, default=60, help="held-out dialogues for perplexity and KLD")
    b.add_argument("--ctx", type=int, default=256, help="chunk size in tokens (half of each chunk is scored)")
    b.add_argument("--runs", type=int, default=3, help="speed runs per type (the median is reported)")
    b.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    b.add_argument("--json", default=None, help="also write the rows to this JSON file")
    b.set_defaults(func=_cmd_bench_quant)

    o = sub.add_parser("bench-onnx", help="ONNX Runtime fp32/int8/int4 beside GGUF: size, speed, PPL, KLD, tool calls")
    o.add_argument("--out", default="build/onnx-bench", help="folder for the ONNX folders and GGUF files")
    o.add_argument("--gguf", default="F16,Q8_0,Q4_K_M", help="comma-separated GGUF types to compare ('' for none)")
    o.add_argument("--cases", default="data/eval/dev.jsonl", help="JSONL eval file for tool-call exact match")
    o.add_argument("--limit", type=int, default=0, help="only the first N cases (0: all)")
    o.add_argument("--dialogues", type=int, default=60, help="held-out dialogues for perplexity and KLD")
    o.add_argument("--runs", type=int, default=3, help="speed runs per model (the median is reported)")
    o.add_argument("--threads", type=int, default=1, help="CPU threads for ONNX Runtime and llama.cpp")
    o.set_defaults(func=_cmd_bench_onnx)


    g = sub.add_parser("eval-agent", help="task completion of the single agent on scripted multi-step requests")
    _eval_agent_arguments(g)
    g.set_defaults(func=_cmd_eval_agent)
    return p


def one_line(exc: BaseException) -> str:
    """An exception as one line for the terminal: the message (its lines joined), never a traceback."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises
        text = ""
    text = " | ".join(x.strip() for x in text.splitlines() if x.strip())[:800]
    return text or type(exc).__name__


# Errors whose message already says what to do; anything else is unexpected (exit 1, a hint to see the traceback).
def _expected_errors() -> tuple[type[BaseException], ...]:
    from helpers.runtimes.base import RuntimeUnavailable

    return (RuntimeUnavailable, OSError, ValueError, LookupError)


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors end as one line on stderr (EDGEAI_DEBUG=1 shows the traceback instead)."""
    import os

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's promise: one line, never a traceback
        if os.environ.get("EDGEAI_DEBUG"):
            raise
        if isinstance(exc, ImportError):
            print(f"error: a package is missing ({one_line(exc)}): install the workbook with `pip install -e .` "
                  "(`python -m helpers doctor` lists what is missing)", file=sys.stderr)
            return 2
        if isinstance(exc, _expected_errors()):
            print(f"error: {one_line(exc)}", file=sys.stderr)
            return 2
        print(f"error: unexpected {type(exc).__name__}: {one_line(exc)} (run again with EDGEAI_DEBUG=1 to see "
              "where; please report it)", file=sys.stderr)
        return 1
