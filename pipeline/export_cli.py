"""``gristmill export RUN --format FMT --out DIR``: a packed run's shards in the format a training stack reads
(``megatron``, ``mds``, ``jsonl``), or its tokenizer as a Hugging Face folder (``hf-tokenizer``)."""

from __future__ import annotations

import argparse
import sys

from gristmill.mixtures.export.exporter import export_run
from gristmill.mixtures.shards import ManifestError
from gristmill.pipeline.pack_cli import parse_special_tokens
from gristmill.pipeline.rundir import RunDir


def export_cli(args: argparse.Namespace) -> int:
    """``gristmill export`` (its arguments are parsed in cli.py)."""
    options = {}
    if args.fmt == "hf-tokenizer":
        # The folder must encode as the run did: special-token strings in a text as text, unless the
        # run's tokenize step parsed them.
        plan = RunDir(args.run_dir).read_plan() or {}
        options["split_special_tokens"] = not parse_special_tokens(plan)
    try:
        summary = export_run(args.run_dir, args.fmt, args.out, **options)
    except (ManifestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"exported {args.run_dir} as {args.fmt} into {args.out}: {', '.join(summary['files'])}")
    return 0
