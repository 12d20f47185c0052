"""``gristmill pack RUN --out DIR``: pack a run's tokenized documents again (another sequence length, another
mixture, another shard size) without recomputing anything upstream.

The documents are the parts of the run's committed tokenized segment, exactly as its ``_SUCCESS`` lists them
(checked against the listing first); the packing is the run's own ``mixture.pack_v1`` step with its parameters,
overridden by the options given. ``DIR`` becomes a run-like directory: ``plan.json`` (no segments; where the
documents came from), ``tokenizer/`` (the run's tokenizer, copied), ``shards/`` and ``manifest.json``, which
``verify``, ``show``, ``inspect``, ``sql`` and ``export`` read like any run's.

It packs as the run's own step does, fanned out over the executor's workers: the run's executor setting unless
``--executor`` is given, on the Ray cluster at ``--address`` (or ``$RAY_ADDRESS``), else an embedded local Ray.
The shards are the same whichever executor and however many workers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from typing import Any

from gristmill.core.layout import RunLayout
from gristmill.core.runtime import LocalRuntime, Runtime
from gristmill.core.storage import Location, resolve
from gristmill.mixtures.stages import MixturePack
from gristmill.pipeline.api import EXECUTORS, RunOptionsError, init_ray
from gristmill.pipeline.plan import PLAN_VERSION, dependency_versions
from gristmill.pipeline.rundir import RunDir
from gristmill.pipeline.spec import ExecutionSpec
from gristmill.pipeline.stats import GlobalStepStats, write_global_stats
from gristmill.stages.base import GlobalContext

PACK_STAGE = "mixture.pack_v1"
TOKENIZE_STAGE = "tokenize.bbpe_v1"


class RepackError(ValueError):
    """A run that cannot be packed again; the message names the run and what is missing."""


def steps(plan: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(segment, step) for every step of ``plan.json``, in plan order."""
    return [(seg, step) for seg in plan.get("segments", []) for step in seg.get("steps", [])]


def tokenized_segment(plan: dict[str, Any], run: str) -> dict[str, Any]:
    """The segment whose parts hold the tokenized documents: the one the packing step reads, or (a plan that
    does not pack) the last one with the tokenize step."""
    segments = plan.get("segments", [])
    for i, seg in enumerate(segments):
        if i and any(step["stage_name"] == PACK_STAGE for step in seg.get("steps", [])):
            return segments[i - 1]
    with_tokens = [seg for seg, step in steps(plan) if step["stage_name"] == TOKENIZE_STAGE]
    if not with_tokens:
        raise RepackError(f"{run}: the run has no tokenized segment (its plan.json has no {TOKENIZE_STAGE} step)")
    return with_tokens[-1]


def pack_params(plan: dict[str, Any], overrides: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The run's packing parameters (if it packed) with ``overrides`` on top, and the step's position."""
    packing = [step for _, step in steps(plan) if step["stage_name"] == PACK_STAGE]
    params = dict(packing[-1]["params"]) if packing else {}
    if "mixture" in overrides or "ratios" in overrides:
        params.pop("mixture", None)
        params.pop("ratios", None)
    params.pop("tokenizer", None)  # the copy in the output directory is the one packed with
    params.update({k: v for k, v in overrides.items() if v is not None})
    return params, packing[-1]["position"] if packing else 1


def parse_special_tokens(plan: dict[str, Any]) -> bool:
    """Whether the run's tokenize step encoded special-token strings in a text as special tokens."""
    for _, step in steps(plan):
        if step["stage_name"] == TOKENIZE_STAGE:
            return bool(step.get("params", {}).get("parse_special_tokens", False))
    return bool(plan.get("repacked_from", {}).get("parse_special_tokens", False))


def committed_parts(rd: RunDir, segment: dict[str, Any], run: str) -> list[Location]:
    marker = rd.committed(segment["name"], segment["hash"])
    if marker is None:
        raise RepackError(f"{run}: the tokenized segment segments/{segment['name']} is not committed "
                          "(the run has not finished tokenizing)")
    problems = rd.check_parts(segment["name"], marker, upstream=True)  # its text and sources live upstream
    if problems:
        raise RepackError(f"{run}: segments/{segment['name']} differs from its _SUCCESS: " + "; ".join(problems))
    parts = [resolve(p) for p in rd.segment_parts(segment["name"], marker)]
    if parts and "tokens" not in parts[0].read_parquet_schema().names:
        raise RepackError(f"{parts[0]}: no `tokens` column: segments/{segment['name']} is not tokenized")
    return parts


def source_tokenizer(rd: RunDir, params: dict[str, Any]) -> Location:
    """The tokenizer the run packed with (its manifest's), else the one its packing step names, else the run's."""
    layout = rd.layout
    if layout.manifest.is_file():
        return layout.file(layout.manifest.read_json()["tokenizer"]["path"])
    return resolve(params["tokenizer"]) if params.get("tokenizer") else layout.tokenizer


def source_seed(rd: RunDir, plan: dict[str, Any]) -> int:
    if rd.layout.manifest.is_file():
        return int(rd.layout.manifest.read_json()["seed"])
    return int((plan.get("pipeline") or {}).get("seed", 0))


def executor_name(plan: dict[str, Any], executor: str | None, address: str | None) -> str:
    """The executor to pack with: ``executor`` if given, else the run's own setting; a Ray address needs Ray."""
    setting = ((plan.get("pipeline") or {}).get("execution") or {}).get("executor", ExecutionSpec().executor)
    name = executor or setting
    if name not in EXECUTORS:
        raise RunOptionsError(f"executor {name!r}: expected one of {', '.join(EXECUTORS)}")
    if address and name == "local":
        raise RunOptionsError(f"a Ray address ({address}) needs the ray executor, not local")
    return name


def start_runtime(name: str, address: str | None) -> Runtime:
    """In this process for ``local``; Ray tasks on the cluster at ``address`` (else an embedded Ray) for ``ray``."""
    if name == "local":
        return LocalRuntime()
    from gristmill.pipeline.executors import RayExecutor

    init_ray(address)
    return RayExecutor().runtime


def prepare_output(out: RunLayout, run: RunLayout, force: bool) -> bool:
    """Check ``out`` may be written; True when it holds nothing yet (a failed pack then removes it)."""
    if out.root == run.root:
        raise RepackError(f"{out.root}: --out must be another directory than the run")
    fresh = not (out.root.exists() and out.root.iterdir())
    if not fresh and not force:
        raise RepackError(f"{out.root}: exists and is not empty (--force replaces what a previous pack wrote)")
    out.root.mkdir()
    return fresh


def repack(run: str, out: str, overrides: dict[str, Any], seed: int | None = None, force: bool = False,
           executor: str | None = None, address: str | None = None) -> dict[str, Any]:
    """Pack ``run``'s tokenized segment into ``out`` with ``executor`` (default: the run's; see the module
    docstring); returns the new manifest."""
    rd = RunDir(run)
    plan = rd.read_plan()
    if plan is None:
        raise RepackError(f"{run}: no plan.json (not a run directory)")
    segment = tokenized_segment(plan, run)
    parts = committed_parts(rd, segment, run)
    params, position = pack_params(plan, overrides)
    seed = source_seed(rd, plan) if seed is None else seed
    MixturePack(params).params.solver()  # bad options fail here, before anything is written
    address = address or os.environ.get("RAY_ADDRESS")
    name = executor_name(plan, executor, address)
    target = RunLayout(out)
    fresh = prepare_output(target, rd.layout, force)
    try:
        runtime = start_runtime(name, address)
        write_and_pack(rd, plan, segment, parts, target, params, position, seed, runtime, name)
    except BaseException:
        if fresh:  # an infeasible mixture leaves nothing behind, as if never run
            target.root.delete_tree()
        raise
    return target.manifest.read_json()


def write_and_pack(rd: RunDir, plan: dict[str, Any], segment: dict[str, Any], parts: list[Location],
                   target: RunLayout, params: dict[str, Any], position: int, seed: int, runtime: Runtime,
                   executor: str) -> None:
    original_params = next((dict(s["params"]) for _, s in steps(plan) if s["stage_name"] == PACK_STAGE), {})
    tokenizer = source_tokenizer(rd, original_params)
    target.tokenizer.write_bytes(tokenizer.read_bytes())
    meta = tokenizer.with_name(target.tokenizer_meta.name)
    if meta.is_file():  # what the tokenizer was trained on, for the report
        target.tokenizer_meta.write_bytes(meta.read_bytes())
    origin = {"run": rd.layout.root.uri, "plan_hash": plan.get("plan_hash"), "segment": segment["name"],
              "segment_hash": segment["hash"], "parse_special_tokens": parse_special_tokens(plan)}
    key = {"from": origin, "params": params, "seed": seed}
    target.plan.write_json({
        "plan_version": PLAN_VERSION,
        "plan_hash": hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16],
        "pipeline": {"name": f"{(plan.get('pipeline') or {}).get('name', 'run')} (repacked)", "seed": seed,
                     "execution": {"executor": executor}},
        "segments": [],
        "repacked_from": origin,
        "pack_params": params,
        "versions": dependency_versions(),
    })
    ctx = GlobalContext.for_step(target, PACK_STAGE, position, parts, runtime, seed)
    MixturePack(params).build(ctx)
    # what the packing recorded goes where a run's global steps' statistics go (the report and inspect read it)
    label = next((s["label"] for _, s in steps(plan) if s["stage_name"] == PACK_STAGE), "pack")
    step = GlobalStepStats(position, label, PACK_STAGE, ctx.stats)
    write_global_stats(RunDir(target.root).stats_dir, [(segment["name"], step)])


def pack_cli(args: argparse.Namespace) -> int:
    """``gristmill pack`` (its arguments are parsed in cli.py)."""
    overrides = {"seq_len": args.seq_len, "mixture": args.mixture, "rows_per_shard": args.rows_per_shard,
                 "total_tokens": args.total_tokens}
    try:
        m = repack(args.run_dir, args.out, {k: v for k, v in overrides.items() if v is not None}, args.seed,
                   args.force, args.executor, args.address)
    except ValueError as exc:  # RepackError, RunOptionsError, a bad option (pydantic's ValidationError), a preset
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"packed {args.run_dir} into {args.out}: {len(m['shards'])} shards, {m['rows']:,} rows x seq_len "
          f"{m['seq_len']} = {m['tokens']:,} tokens; mixture {m['mixture']['name'] or '(own ratios)'}")
    return 0
