"""``gristmill train-quality``: train the fastText quality classifier on a sample of a run or of Parquet inputs."""

from __future__ import annotations

import argparse
import json
import sys

from gristmill.pipeline.rundir import RunDir
from gristmill.stages.quality import training


def segment_parts(run_dir: str, segment: str | None = None) -> list[str]:
    """The parts one committed segment of a run lists (default: the last committed segment)."""
    rd = RunDir(run_dir)
    names = [s.name for s in rd.committed_segments()]
    if not names:
        raise training.TrainingDataError(f"{rd.root} is not a run directory with a committed segment")
    if segment is None:
        segment = names[-1]
    elif segment not in names:
        raise training.TrainingDataError(f"run {rd.root} has no committed segment {segment!r}; segments: {names}")
    parts = rd.segment_parts(segment)
    if not parts:
        raise training.TrainingDataError(f"segment {segment} of {rd.root} holds no parts")
    return parts


def _sources(value: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in value.split(",") if s.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of source names")
    return names


def build_parser() -> argparse.ArgumentParser:
    d = training.TrainConfig()
    parser = argparse.ArgumentParser(
        prog="gristmill train-quality",
        description="Train a fastText classifier telling reference text (--positive sources) from crawl "
                    "(--negative sources), LLaMA-style. Writes MODEL and MODEL.json (metadata + held-out "
                    "precision/recall).",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--run-dir", help="a run directory: reads RUN_DIR/segments/SEGMENT/part-*.parquet")
    where.add_argument("--input", nargs="+", metavar="GLOB", help="Parquet files with doc_id, source, text")
    parser.add_argument("--segment", help="segment folder name (e.g. 01-clean); default: the last segment")
    parser.add_argument("--output", "-o", required=True, help="model path to write (e.g. quality.bin)")
    parser.add_argument("--positive", type=_sources, default=d.positive_sources,
                        help="reference-quality sources (default: %(default)s)")
    parser.add_argument("--negative", type=_sources, default=d.negative_sources,
                        help="crawl sources (default: %(default)s)")
    parser.add_argument("--max-per-class", type=int, default=d.max_per_class)
    parser.add_argument("--holdout", type=float, default=d.holdout, help="held-out share for evaluation")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--threads", type=int, default=d.threads,
                        help="fastText threads; 1 (default) gives a byte-identical model on every run")
    parser.add_argument("--epoch", type=int, default=d.epoch)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--word-ngrams", type=int, default=d.word_ngrams)
    parser.add_argument("--dim", type=int, default=d.dim)
    parser.add_argument("--min-count", type=int, default=d.min_count)
    parser.add_argument("--max-chars", type=int, default=d.max_chars, help="characters of each document used")
    return parser


def train_quality_cli(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not 0.0 <= args.holdout < 1.0:
        print("error: --holdout must be in [0, 1)", file=sys.stderr)
        return 2
    overlap = set(args.positive) & set(args.negative)
    if overlap:
        print(f"error: source(s) {sorted(overlap)} are both --positive and --negative", file=sys.stderr)
        return 2
    config = training.TrainConfig(
        positive_sources=args.positive, negative_sources=args.negative, max_per_class=args.max_per_class,
        holdout=args.holdout, seed=args.seed, threads=args.threads, epoch=args.epoch, lr=args.lr,
        word_ngrams=args.word_ngrams, dim=args.dim, min_count=args.min_count, max_chars=args.max_chars,
    )
    try:
        files = segment_parts(args.run_dir, args.segment) if args.run_dir else training.expand_globs(args.input)
        metadata = training.train(files, args.output, config)
    except (training.TrainingDataError, ImportError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    heldout = metadata["heldout"]
    print(f"model: {args.output} (metadata: {args.output}.json)")
    print(f"trained on {metadata['train_documents']}, held out {metadata['heldout_documents']}")
    if heldout:
        print(f"held-out precision {heldout['precision']:.3f} recall {heldout['recall']:.3f} "
              f"f1 {heldout['f1']:.3f} accuracy {heldout['accuracy']:.3f} (threshold {heldout['threshold']})")
    print(json.dumps({"heldout": heldout}, sort_keys=True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(train_quality_cli(sys.argv[1:]))
