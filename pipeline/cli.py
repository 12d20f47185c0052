"""The ``gristmill`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gristmill.pipeline.cli_errors import EXIT_USAGE, require_run_dir


def _load(path: str):
    """The plan of a pipeline file; a file with several problems names them all, as ``validate`` does, rather
    than only the first one that planning meets."""
    from gristmill.pipeline.api import load_plan
    from gristmill.pipeline.spec import SpecError

    try:
        return load_plan(Path(path))
    except SpecError:
        from gristmill.pipeline.validation import validate_file

        problems = validate_file(path)
        if len(problems) < 2:
            raise
        raise SpecError("\n".join(problem.format(path) for problem in problems)) from None


def _warn(plan) -> None:
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def cmd_validate(args) -> int:
    from gristmill.pipeline.validation import validate_file

    problems = validate_file(args.pipeline)
    for problem in problems:
        print(problem.format(args.pipeline), file=sys.stderr)
    if problems:
        return EXIT_USAGE
    plan = _load(args.pipeline)
    _warn(plan)
    print(f"ok: {args.pipeline}: {len(plan.spec.inputs)} inputs, {len(plan.input_files)} files, "
          f"{len(plan.units)} ingest units, {len(plan.steps) - 1} steps, {len(plan.segments)} segments")
    return 0


def cmd_plan(args) -> int:
    plan = _load(args.pipeline)
    _warn(plan)
    print(f"pipeline {plan.spec.name}  plan hash {plan.plan_hash}  seed {plan.spec.seed}")
    for i, inp in enumerate(plan.spec.inputs):
        files = [f for f in plan.input_files if f["input"] == i]
        mb = sum(f["bytes"] for f in files) / 1e6
        trial = "".join(f", {key} {value}" for key, value in (("sample", inp.sample), ("limit", inp.limit))
                        if value is not None)
        print(f"  input[{i}] {inp.source:<14} {inp.format:<8} {len(files)} files, {mb:.2f} MB{trial}")
    for seg in plan.segments:
        print(f"segment {seg.name}  (hash {seg.hash})")
        for step in seg.steps:
            kind = "global" if step.position and step.is_global else "stream"
            params = "" if not step.params else " " + ", ".join(f"{k}={v}" for k, v in step.params.items())
            print(f"  {step.position:>2} {step.label:<10} {kind:<6} {step.stage_name}{params}")
    return 0


def cmd_run(args) -> int:
    from gristmill.pipeline.api import execute
    from gristmill.pipeline.progress import Progress
    from gristmill.pipeline.timeline import RunClock

    clock = RunClock.from_process_start()  # the run's wall time: imports, plan build and Ray start included
    with clock.phase("plan build", "start"):
        plan = _load(args.pipeline)
    result = execute(plan, args.run_dir, args.executor, address=args.address, force=args.force,
                     force_unlock=args.force_unlock, progress=None if args.quiet else Progress(),
                     log=lambda m: print(m, file=sys.stderr), clock=clock)
    for segment in result.stats:
        for s in segment.stages:
            print(f"{segment.segment:<24} {s.label:<10} {s.stage:<22} {s.source:<14} in {s.rows_in:>8} "
                  f"out {s.rows_out:>8} dropped {s.rows_dropped:>7}")
    print(f"run directory: {result.run_dir}  ({result.seconds:.1f}s, plan {result.plan_hash})")
    if not args.quiet:
        from gristmill.pipeline.run_summary import format_totals, run_totals

        print(format_totals(run_totals(result.stats, result.run_dir)))
    return 0


def cmd_inspect(args) -> int:
    from gristmill.pipeline.inspection import inspect_run

    print(inspect_run(require_run_dir(args.run_dir)))
    return 0


def cmd_sql(args) -> int:
    from gristmill.pipeline.inspection import connect, format_result, views

    con = connect(require_run_dir(args.run_dir))
    if not args.query:
        print("views: " + ", ".join(views(con)))
        return 0
    print(format_result(con, args.query, args.format))
    return 0


def cmd_report(args) -> int:
    from gristmill.pipeline.report import report_cli

    return report_cli(require_run_dir(args.run_dir))


def cmd_show(args) -> int:
    from gristmill.pipeline.shards_cli import show_row

    print(show_row(require_run_dir(args.run_dir), args.row))
    return 0


def cmd_stages(args) -> int:
    from gristmill.pipeline.stages_cli import stages_cli

    print(stages_cli(args.json))
    return 0


def cmd_verify(args) -> int:
    from gristmill.pipeline.rundir import RunDir
    from gristmill.pipeline.shards_cli import has_shards, verify

    run_dir = RunDir(args.run_dir)
    plan = run_dir.read_plan()
    problems = run_dir.verify_segments(plan)
    packed = has_shards(str(run_dir.root))
    if packed:
        problems += verify(str(run_dir.root), plan)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) in {args.run_dir}", file=sys.stderr)
        return 1
    what = "every segment's parts match its _SUCCESS" + (", shards match manifest.json" if packed else
                                                         " (no shards: the plan packs none)")
    print(f"ok: {args.run_dir}: {what}")
    return 0


def cmd_export(args) -> int:
    from gristmill.pipeline.export_cli import export_cli

    return export_cli(args)


def cmd_pack(args) -> int:
    from gristmill.pipeline.pack_cli import pack_cli

    return pack_cli(args)


# Commands with argument parsers of their own: (module, function(argv) -> exit code, help).
DELEGATED = {
    "train-tokenizer": ("gristmill.pipeline.tokenizer_cli", "train_tokenizer_cli", "train a byte-level BPE tokenizer"),
    "train-quality": ("gristmill.pipeline.quality_cli", "train_quality_cli", "train a fastText quality classifier"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gristmill", description="Pretraining data pipelines on Ray.")
    parser.add_argument("--version", action="version", version=f"gristmill {_version()}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a pipeline file")
    p.add_argument("pipeline")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="print the resolved steps and segments")
    p.add_argument("pipeline")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("run", help="run a pipeline (embedded local Ray unless --address / RAY_ADDRESS)")
    p.add_argument("pipeline")
    p.add_argument("--run-dir", help="run directory (default: output.run_dir or runs/NAME)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else an embedded local Ray)")
    p.add_argument("--executor", choices=["local", "ray"], help="override execution.executor")
    p.add_argument("--force", action="store_true", help="rebuild segments committed by a different plan")
    p.add_argument("--force-unlock", action="store_true",
                   help="take over the run directory's lease left by a run that died (refused while it looks alive)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("inspect", help="summarise a run directory with DuckDB")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("sql", help="run SQL over a run directory's views (no query: list the views)")
    p.add_argument("run_dir")
    p.add_argument("query", nargs="?")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("report", help="(re)compute stats/*.parquet and write RUN_DIR/report.html")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("show", help="decode a shard row back to text with its document boundaries and origins")
    p.add_argument("run_dir")
    p.add_argument("--row", type=int, required=True, help="global row number, in manifest order")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("stages", help="list every registered stage and input format with its parameters")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=cmd_stages)

    p = sub.add_parser("verify", help="check every segment's parts against its _SUCCESS, and the shards against "
                                      "manifest.json and plan.json (counts, checksums, schema, plan hash)")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("export", help="export the shards (megatron, mds, jsonl) or the tokenizer (hf-tokenizer)")
    p.add_argument("run_dir", help="a run directory with shards and manifest.json (local or a URI)")
    p.add_argument("--format", required=True, choices=["megatron", "mds", "jsonl", "hf-tokenizer"], dest="fmt")
    p.add_argument("--out", required=True, help="the export directory (local or a URI)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("pack", help="pack a run's tokenized segment again (another seq-len, mixture, shard size)")
    p.add_argument("run_dir", help="a run directory with a committed tokenized segment")
    p.add_argument("--out", required=True, help="the new run-like directory (local or a URI)")
    p.add_argument("--seq-len", type=int, help="tokens per row (default: the run's)")
    p.add_argument("--mixture", help="a mixture preset name or YAML path (default: the run's)")
    p.add_argument("--rows-per-shard", type=int, help="rows per shard (default: the run's)")
    p.add_argument("--total-tokens", type=int, help="token budget (default: the run's)")
    p.add_argument("--seed", type=int, help="sampling seed (default: the run's)")
    p.add_argument("--force", action="store_true", help="replace what an earlier pack wrote in --out")
    p.add_argument("--executor", choices=["local", "ray"], help="pack in this process or on Ray (default: the run's)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else an embedded local Ray)")
    p.set_defaults(func=cmd_pack)

    for name, (_, _, text) in DELEGATED.items():
        # Listed for --help; main() hands their arguments over untouched (they have parsers of their own).
        sub.add_parser(name, help=text, add_help=False)

    # Ray Jobs API: submit, status, logs, stop (issue 7).
    from gristmill.pipeline.jobs import add_job_commands

    add_job_commands(sub)
    return parser


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("gristmill")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    from gristmill.pipeline.cli_errors import run_handled

    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv[:1]
    if debug:
        argv = argv[1:]
    if argv and argv[0] in DELEGATED:
        import importlib

        module, func, _ = DELEGATED[argv[0]]
        return run_handled(lambda: getattr(importlib.import_module(module), func)(argv[1:]), debug)
    args = build_parser().parse_args(argv)
    return run_handled(lambda: args.func(args), debug or args.debug)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
