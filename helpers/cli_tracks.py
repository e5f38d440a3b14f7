"""More commands of `python -m helpers`: the tracks' (guardrails, notebook outputs, drift, the gateway and load
tests, alerts, serving benchmarks, deploy checks, JupyterLab and the contents page). `cli.py` registers them
with `add_commands`; like it, a thin face over functions the notebooks also call."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_drift_check(a: argparse.Namespace) -> int:
    from helpers.drift import DriftError, Options, drift_check

    o = Options(skip=[x for s in a.skip for x in s.split(",") if x], fresh=a.fresh, notebooks=a.notebooks,
                smoke=not a.no_smoke, contract=not a.no_contract, bisect=not a.no_bisect,
                allow_source_builds=a.allow_source_builds, index_url=a.index_url, out=Path(a.out),
                publish=Path(a.publish) if a.publish else None)
    try:
        doc = drift_check(o, log=lambda m: print(m, flush=True))
    except DriftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in doc["packages"]:
        print(f"{p['name']:<44}{p['baseline'] or '-':>12} -> {p['newest'] or '-':<12} {p['status']}")
    print(f"{doc['verdict']}; report: {doc['report']}")
    if doc["interrupted"]:
        print("interrupted: the report holds what ran before", file=sys.stderr)
        return 130
    return 1 if doc["findings"] else 0


def _cmd_guard_eval(a: argparse.Namespace) -> int:
    from helpers.agents.guard_eval import CachedRuntime, ObedientModel, format_table, load_guard_cases, measure
    from helpers.registry import artefact_path
    from helpers.runtimes import get_runtime

    cases = load_guard_cases(smoke=a.smoke)
    which = "SMOKE subset" if a.smoke else "full set"
    shop = artefact_path("shop-db")
    print(format_table(measure(cases, ObedientModel(), shop), f"obedient model (scripted), {which}"))
    if a.runtime != "none":
        rt = CachedRuntime(get_runtime(a.runtime))
        try:
            rows = measure(cases, rt, shop)
        finally:
            rt.close()
        print()
        print(format_table(rows, f"{rows[0]['outcomes'][0]['answered_by']} (temperature 0), {which}"))
    return 0


def _cmd_check_outputs(a: argparse.Namespace) -> int:
    from helpers.output_check import check_executed
    from helpers.paths import BUILD, ROOT

    try:
        findings = check_executed(Path(a.executed) if a.executed else BUILD / "executed", ROOT)
    except FileNotFoundError as exc:
        print(exc)
        return 2
    for f in findings:
        print(f)
    print(f"{len(findings)} broken output(s)" if findings else "no broken outputs")
    return 1 if findings else 0


def _cmd_gateway(a: argparse.Namespace) -> int:
    from helpers.serving.server import run_gateway, run_passthrough
    from helpers.serving.settings import GatewaySettings, read_key_file

    fields = {"upstreams": a.upstream, "api_keys": [read_key_file(a.api_key_file)], "host": a.host, "port": a.port}
    fields.update({k: v for k, v in (("concurrency", a.concurrency), ("max_queue", a.max_queue),
                                     ("rate_limit", a.rate_limit), ("deadline_s", a.deadline)) if v is not None})
    from pydantic import ValidationError

    try:
        settings = GatewaySettings(**fields)
    except ValidationError as exc:  # one line per problem
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    (run_passthrough if a.passthrough else run_gateway)(settings)
    return 0


def _cmd_loadtest(a: argparse.Namespace) -> int:
    from helpers.serving.loadtest import loadtest_command

    return loadtest_command(a.url, a.users, a.seconds, a.api_key_file, a.requests, a.prompts, a.model, a.max_tokens)


def _loadtest_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of `loadtest` (notebook 22)."""
    p.add_argument("--url", required=True, help="the gateway's address, e.g. http://127.0.0.1:8780")
    p.add_argument("--users", type=int, required=True, help="concurrent users (1-64)")
    p.add_argument("--seconds", type=float, required=True, help="longest run, seconds (1-600)")
    p.add_argument("--api-key-file", required=True, help="the file holding the gateway's key")
    p.add_argument("--requests", type=int, default=200, help="most requests to send (default 200)")
    p.add_argument("--prompts", type=int, default=8, help="distinct prompts from data/eval/dev.jsonl (default 8)")
    p.add_argument("--model", default=None, help="model id (default: the first the gateway lists)")
    p.add_argument("--max-tokens", type=int, default=64)


def _cmd_check_alerts(a: argparse.Namespace) -> int:
    from helpers import monitoring as mon

    if not mon.installed():
        print(f"error: {mon.INSTALL_HINT}", file=sys.stderr)
        return 2
    for path, run in ((a.rules, mon.promtool_check_rules), (a.tests, mon.promtool_test_rules)):
        try:
            print(run(path).splitlines()[-1].strip(), "-", path)
        except mon.PromtoolError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


def _cmd_bench_serve(a: argparse.Namespace) -> int:
    from helpers.bench_serve import cmd_bench_serve

    return cmd_bench_serve(a)


def _cmd_build_bench_model(a: argparse.Namespace) -> int:
    from helpers.bench_model import BenchShape, build_bench_model, decode_tokens_per_s
    from helpers.preflight import memory_bandwidth

    paths = build_bench_model(BenchShape(hidden=a.hidden, layers=a.layers, intermediate=a.intermediate))
    bw = memory_bandwidth() / 1e9
    print(f"copy bandwidth {bw:.1f} GB/s; random-weight model (answers mean nothing), decode with "
          f"{a.threads} thread(s):")
    for q, p in paths.items():
        size = p.stat().st_size
        tps = decode_tokens_per_s(p, a.threads)
        print(f"  {q:7} {size / 1e6:8.1f} MB  {tps:7.1f} tokens/s  bound {bw * 1e9 / size:7.1f} tokens/s  {p}")
    return 0


def _cmd_check_deploy(a: argparse.Namespace) -> int:
    from helpers.deploy_check import cmd_check_deploy

    return cmd_check_deploy(a)


def _cmd_lab(a: argparse.Namespace) -> int:
    from helpers.lab import run_lab

    return run_lab(port=a.port, open_browser=not a.no_browser)


def _cmd_contents(a: argparse.Namespace) -> int:
    from helpers.nbfiles import sync

    stale = sync(write=not a.check, nav=not a.metadata_only)
    for line in stale:
        print(("stale: " if a.check else "updated: ") + line)
    if a.check and stale:
        print(f"{len(stale)} file(s) stale: run `python -m helpers contents` to regenerate them", file=sys.stderr)
        return 1
    print(f"{'checked' if a.check else 'generated'}: contents page, nav cells and kernel metadata"
          + ("" if stale else " (all up to date)"))
    return 0


def add_commands(sub) -> None:
    """Register the tracks' subcommands on `sub` (the subparsers of `cli.build_parser`)."""
    g = sub.add_parser("guard-eval", help="notebook 06's table: false refusals and attacks that worked, per "
                       "guardrail layer and stacked, on data/eval/guardrails.jsonl")
    g.add_argument("--smoke", action="store_true", help="12 harmless + 12 attacks instead of the full set")
    g.add_argument("--runtime", default="embedded", help="the model's runtime (default embedded); 'none' measures "
                   "only the obedient scripted proposer")
    g.set_defaults(func=_cmd_guard_eval)
    dr = sub.add_parser("drift-check", help="newest releases of the fast-moving dependencies in a separate venv: "
                        "contract suite + SMOKE workbook there, report of what broke")
    dr.add_argument("--skip", action="append", default=[], metavar="PKG",
                    help="keep this fast-moving package at its pin (repeatable or comma-separated)")
    dr.add_argument("--fresh", action="store_true", help="rebuild the drift venv (default: reuse build/drift/venv)")
    dr.add_argument("--notebooks", nargs="+", default=[], metavar="NB",
                    help="SMOKE only these notebooks (default: every notebook and lab solution)")
    dr.add_argument("--no-smoke", action="store_true", help="skip the SMOKE workbook (contract suite only)")
    dr.add_argument("--no-contract", action="store_true", help="skip the contract suite")
    dr.add_argument("--no-bisect", action="store_true", help="do not re-pin suspects one at a time for ambiguous "
                    "failures")
    dr.add_argument("--allow-source-builds", action="store_true",
                    help="also try newest releases that have no wheel here (compiled: llama-cpp-python, 5-60 min)")
    dr.add_argument("--index-url", default=None, help="package index to ask (default: pip's configuration)")
    dr.add_argument("--out", default="build/drift", help="venv, logs and report.md/.json (default build/drift)")
    dr.add_argument("--publish", default=None, metavar="DIR",
                    help="also write drift-DATE.md/.json into DIR (e.g. docs/drift, to commit)")
    dr.set_defaults(func=_cmd_drift_check)
    co = sub.add_parser("check-outputs", help="executed notebooks: no chat markup in answers, no unacknowledged "
                        "cut answers, no promise of a notebook that does not exist")
    co.add_argument("--executed", help="folder of executed notebooks (default: build/executed)")
    co.set_defaults(func=_cmd_check_outputs)
    gw = sub.add_parser("gateway", help="an API-key gateway with rate limits, queue, deadlines and failover")
    gw.add_argument("--upstream", required=True, help="OpenAI-compatible base URL(s), comma-separated, tried in order")
    gw.add_argument("--port", type=int, default=8780)
    gw.add_argument("--api-key-file", required=True, help="file holding the one key clients must send")
    gw.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    gw.add_argument("--concurrency", type=int, default=None, help="requests sent upstream at once (default 1)")
    gw.add_argument("--max-queue", type=int, default=None, help="requests that may wait for a turn (default 32)")
    gw.add_argument("--rate-limit", default=None, help="per key, e.g. 20/second (default)")
    gw.add_argument("--deadline", type=float, default=None, help="seconds a request may take (default 30)")
    gw.add_argument("--passthrough", action="store_true",
                    help="serve a bare forwarder to the first upstream instead: the key check and nothing else, to "
                         "measure what the hop costs (notebook 21); not a gateway")
    gw.set_defaults(func=_cmd_gateway)
    lt = sub.add_parser("loadtest", help="Locust against a gateway on 127.0.0.1: what was accepted, refused, lost")
    _loadtest_arguments(lt)
    lt.set_defaults(func=_cmd_loadtest)
    bs = sub.add_parser("bench-serve", help="every runtime side by side: TTFT, TPOT, ITL, E2E, tokens/s, goodput")
    bs.add_argument("--runtimes", default=None, help="comma-separated names (default: every runtime it knows)")
    bs.add_argument("--concurrency", default="1,2,4,8", help="concurrency levels, e.g. 1,2,4,8")
    bs.add_argument("--requests", type=int, default=16, help="requests per level (the same prompts everywhere)")
    bs.add_argument("--max-tokens", type=int, default=32)
    bs.add_argument("--slo-ttft-ms", type=float, default=None, help="goodput SLO on time to first token")
    bs.add_argument("--slo-tpot-ms", type=float, default=None, help="goodput SLO on time per output token")
    bs.add_argument("--json", default=None, help="also write rows and skip reasons to this JSON file")
    bs.set_defaults(func=_cmd_bench_serve)
    bm = sub.add_parser("build-bench-model",
                        help="build a random-weight Llama (speed only) and measure decode vs bandwidth")
    bm.add_argument("--hidden", type=int, default=1024)
    bm.add_argument("--layers", type=int, default=24)
    bm.add_argument("--intermediate", type=int, default=2816)
    bm.add_argument("--threads", type=int, default=1)
    bm.set_defaults(func=_cmd_build_bench_model)
    cd = sub.add_parser("check-deploy", help="validate deploy/ compose files and Dockerfiles offline")
    cd.add_argument("paths", nargs="*", help="files to check (default: everything under deploy/)")
    cd.set_defaults(func=_cmd_check_deploy)
    lb = sub.add_parser("lab", help="JupyterLab on 127.0.0.1 with a token, opened at the contents page")
    lb.add_argument("--port", type=int, default=None, help="port to listen on (default: a free one)")
    lb.add_argument("--no-browser", action="store_true", help="only print the address to open")
    lb.set_defaults(func=_cmd_lab)
    ct = sub.add_parser("contents", help="regenerate CONTENTS.ipynb, each notebook's prev/next cell and the kernel "
                        "metadata JupyterLab writes")
    ct.add_argument("--check", action="store_true", help="change nothing; list what is stale and exit 1 if any")
    ct.add_argument("--metadata-only", action="store_true", help="only the kernel metadata and cell ids")
    ct.set_defaults(func=_cmd_contents)
    from helpers.monitoring.alerts import RULE_TESTS, RULES

    k = sub.add_parser("check-alerts", help="promtool check rules and promtool test rules on the alerting rules")
    k.add_argument("--rules", default=str(RULES), help="rule file (default: deploy/prometheus/alerts.yml)")
    k.add_argument("--tests", default=str(RULE_TESTS), help="promtool test file (default: its alerts_test.yml)")
    k.set_defaults(func=_cmd_check_alerts)
