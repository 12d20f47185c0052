"""``gristmill train-tokenizer``: train the BBPE tokenizer from a run directory or from input files.

    gristmill train-tokenizer RUN_DIR                       # last committed segment -> RUN_DIR/tokenizer/
    gristmill train-tokenizer --input code='src/**/*.py' --input web=pages.jsonl --output tok/

From a run directory it samples the Parquet parts of the last committed segment
(``RUN_DIR/segments/NN-name/part-*.parquet`` with ``_SUCCESS``). From ``--input [SOURCE=]GLOB`` it reads text
files (each file one document), JSONL (one document per line, ``--text-field``) and Parquet (``text`` column),
all under the source name given (else the data's own ``source`` field, else ``default``), stages them as
Parquet parts in a temporary directory and trains exactly as the pipeline step does.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gristmill.core.layout import TOKENIZER_FILE, TOKENIZER_META_FILE, RunLayout
from gristmill.core.runtime import LocalRuntime, Runtime
from gristmill.core.storage import resolve
from gristmill.pipeline.rundir import RunDir
from gristmill.stages.base import GlobalContext
from gristmill.stages.tokenize.bbpe import BbpeParams
from gristmill.stages.tokenize.train import TrainBbpeV1, train_tokenizer

DEFAULT_SOURCE = "default"
_PART_BYTES = 64 * 1024 * 1024
PARTS_SCHEMA = pa.schema([("doc_id", pa.uint64()), ("source", pa.string()), ("text", pa.large_string())])


class InputError(ValueError):
    """Bad input for train-tokenizer; the message names the file, line or key."""


def run_dir_parts(run_dir: str) -> list[str]:
    """The parts the last committed segment of a run (local or remote) lists."""
    rd = RunDir(run_dir)
    done = rd.committed_segments()
    if not done:
        raise InputError(f"{rd.root}: no committed segment (a segment with _SUCCESS) to train on")
    parts = rd.segment_parts(done[-1].name)
    if not parts:
        raise InputError(f"{done[-1]}: committed segment holds no parts")
    return parts


def parse_input(spec: str) -> tuple[str | None, str]:
    """``SOURCE=GLOB`` or ``GLOB``. A glob that exists as a path is never split at '='."""
    name, sep, pattern = spec.partition("=")
    if sep and name.isidentifier() and not os.path.exists(spec):
        return name, pattern
    return None, spec


def _docs_text_file(path: str) -> Iterator[tuple[str | None, str]]:
    with open(path, "rb") as f:
        raw = f.read()
    # Undecodable bytes become U+FFFD: one bad byte should not cost the whole file.
    yield None, raw.decode("utf-8", errors="replace")


def _docs_jsonl(path: str, text_field: str) -> Iterator[tuple[str | None, str]]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not JSON: {exc}") from None
            text = record.get(text_field) if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise InputError(f"{path}:{lineno}: no string field {text_field!r}")
            source = record.get("source")
            yield (source if isinstance(source, str) else None), text


def _parquet_table(path: str, text_field: str, file_index: int, label: str | None) -> pa.Table:
    schema = pq.read_schema(path)
    if text_field not in schema.names:
        raise InputError(f"{path}: no column {text_field!r} (columns: {schema.names})")
    columns = [text_field] + [c for c in ("source",) if c in schema.names and label is None]
    table = pq.read_table(path, columns=columns)
    n = table.num_rows
    source = table["source"] if "source" in columns else pa.array([label or DEFAULT_SOURCE] * n, pa.string())
    return pa.table(
        {
            "doc_id": pa.array([(file_index << 32) | i for i in range(n)], pa.uint64()),
            "source": pc.fill_null(source.cast(pa.string()), DEFAULT_SOURCE),
            "text": table[text_field].cast(pa.large_string()),
        },
        schema=PARTS_SCHEMA,
    )


def _file_table(path: str, text_field: str, file_index: int, label: str | None) -> pa.Table:
    if path.endswith(".parquet"):
        return _parquet_table(path, text_field, file_index, label)
    docs = _docs_jsonl(path, text_field) if path.endswith((".jsonl", ".ndjson")) else _docs_text_file(path)
    sources, texts = [], []
    for source, text in docs:
        sources.append(label or source or DEFAULT_SOURCE)
        texts.append(text)
    # doc_id as at ingest: (file index << 32) | record ordinal, so the sample is stable for the same inputs.
    ids = [(file_index << 32) | i for i in range(len(texts))]
    return pa.table({"doc_id": pa.array(ids, pa.uint64()), "source": sources, "text": texts}, schema=PARTS_SCHEMA)


def expand_inputs(specs: list[str]) -> list[tuple[str | None, str]]:
    """(source label, path) for every file the specs match, in a stable order; a spec matching nothing fails."""
    files: list[tuple[str | None, str]] = []
    for spec in specs:
        label, pattern = parse_input(spec)
        matched = sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(p))
        if not matched:
            raise InputError(f"--input {spec!r}: no file matches {pattern!r}")
        files.extend((label, p) for p in matched)
    return files


def stage_inputs(specs: list[str], text_field: str, parts_dir: str) -> list[str]:
    """Write the input files as Parquet parts (doc_id, source, text) of about 64 MiB each."""
    parts: list[str] = []
    pending: list[pa.Table] = []
    pending_bytes = 0

    def flush() -> None:
        nonlocal pending, pending_bytes
        if pending:
            path = os.path.join(parts_dir, f"part-{len(parts):05d}.parquet")
            pq.write_table(pa.concat_tables(pending), path)
            parts.append(path)
        pending, pending_bytes = [], 0

    for index, (label, path) in enumerate(expand_inputs(specs)):
        table = _file_table(path, text_field, index, label)
        pending.append(table)
        pending_bytes += table.nbytes
        if pending_bytes >= _PART_BYTES:
            flush()
    flush()
    return parts


def _source_weight(spec: str) -> tuple[str, float]:
    name, sep, value = spec.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--source-weight wants SOURCE=WEIGHT, got {spec!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gristmill train-tokenizer",
        description="Train a byte-level BPE tokenizer on a mixture-proportioned sample of a corpus.",
    )
    p.add_argument("run_dir", nargs="?", help="run directory: train on its last committed segment")
    p.add_argument("--input", action="append", default=[], metavar="[SOURCE=]GLOB",
                   help="text/JSONL/Parquet files to train on instead of a run directory (repeatable)")
    p.add_argument("--text-field", default="text", help="JSONL field / Parquet column holding the text")
    p.add_argument("--output", help="directory for tokenizer.json and tokenizer_meta.json "
                                    "(default: RUN_DIR/tokenizer)")
    p.add_argument("--vocab-size", type=int, default=32000)
    p.add_argument("--min-frequency", type=int, default=2)
    p.add_argument("--sample-bytes", type=int, default=1_000_000_000,
                   help="bytes of text in the training sample (default 1e9)")
    p.add_argument("--source-weight", action="append", type=_source_weight, default=[], metavar="SOURCE=W",
                   help="target share of a source (repeatable; default: the LLaMA shares when every source is "
                        "a LLaMA source, else proportional to what is present)")
    p.add_argument("--max-epochs", type=float, default=1.0, help="max repeats of a source short of its share")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--special-token", action="append", default=[], metavar="TOKEN",
                   help="extra special token after <|endoftext|> and <|pad|> (repeatable)")
    p.add_argument("--reserved-special-tokens", type=int, default=0)
    p.add_argument("--no-individual-digits", action="store_true", help="let digits merge into multi-digit tokens")
    p.add_argument("--max-token-length", type=int)
    p.add_argument("--superword-share", type=float, default=BbpeParams.model_fields["superword_share"].default,
                   help="share of the merges learned by the second stage, whose tokens may span several words "
                        "(default %(default)s; 0: one stage, within-word merges only)")
    p.add_argument("--executor", choices=["local", "ray"], default="local")
    p.add_argument("--address", help="Ray cluster address (with --executor ray; default: start a local Ray)")
    return p


def _params(args: argparse.Namespace) -> BbpeParams:
    return BbpeParams(
        vocab_size=args.vocab_size,
        min_frequency=args.min_frequency,
        sample_bytes=args.sample_bytes,
        source_weights=dict(args.source_weight) or None,
        max_epochs=args.max_epochs,
        seed=args.seed,
        special_tokens=("<|endoftext|>", "<|pad|>", *args.special_token),
        reserved_special_tokens=args.reserved_special_tokens,
        individual_digits=not args.no_individual_digits,
        max_token_length=args.max_token_length,
        superword_share=args.superword_share,
    )


def _runtime(args: argparse.Namespace) -> Runtime:
    if args.executor != "ray":
        return LocalRuntime()
    import ray

    from gristmill.pipeline._internal.ray_runtime import RayRuntime
    from gristmill.pipeline.executors import init_local_ray

    if not ray.is_initialized():
        if args.address:
            ray.init(address=args.address, log_to_driver=False)
        else:
            init_local_ray()
    return RayRuntime()


def _train(args: argparse.Namespace, params: BbpeParams, parts: list[str], out_dir: str, run_dir: str) -> dict:
    ctx = GlobalContext.for_step(run_dir, TrainBbpeV1.name, 0, parts, _runtime(args), args.seed)
    return train_tokenizer(ctx, params, resolve(out_dir))


def train_tokenizer_cli(argv: list[str]) -> int:
    """Entry point of ``gristmill train-tokenizer``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.run_dir) == bool(args.input):
        parser.error("give either RUN_DIR or --input (not both)")
    if args.input and not args.output:
        parser.error("--output is required with --input")
    try:
        params = _params(args)
    except ValueError as exc:
        parser.error(str(exc))
    out_dir = args.output or str(RunLayout(args.run_dir).tokenizer_dir)
    try:
        if args.run_dir:
            meta = _train(args, params, run_dir_parts(args.run_dir), out_dir, args.run_dir)
        else:
            with tempfile.TemporaryDirectory(prefix="gristmill-tok-") as parts_dir:
                parts = stage_inputs(args.input, args.text_field, parts_dir)
                meta = _train(args, params, parts, out_dir, parts_dir)
    except (InputError, ValueError, OSError) as exc:
        print(f"gristmill train-tokenizer: error: {exc}", file=sys.stderr)
        return 2
    sample = meta["sample"]
    print(
        f"wrote {resolve(out_dir) / TOKENIZER_FILE} and {TOKENIZER_META_FILE}: vocab {meta['vocab_size']}, "
        f"sample {sample['bytes']:,} bytes / {sample['documents']:,} documents, "
        f"{meta['training_seconds']:.1f} s, sha256 {meta['tokenizer_sha256'][:16]}"
    )
    for name, s in sample["sources"].items():
        print(f"  {name}: {s['share']:.1%} of sample (target {s['target_share']:.1%}), {s['bytes']:,} bytes")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(train_tokenizer_cli(sys.argv[1:]))
