"""Training the LLaMA-style quality classifier: fastText, reference text (label ``hq``) vs random crawl (``lq``).

The sample is drawn deterministically from Parquet parts (a run directory's segment or input globs): every
document of a positive or negative source gets a hash of (seed, doc_id); the lowest hashes are taken per class
and a hash-chosen fraction is held out for evaluation. fastText trains with a fixed seed; with ``threads=1`` the
model is byte-for-byte reproducible (Hogwild threads race, so more threads trade that for speed). The model is
saved with ``MODEL.json`` next to it: sources, counts, hyperparameters, normalization and held-out metrics.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import tempfile
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gristmill.core.storage import resolve, sha256_file
from gristmill.stages.lang import fasttext_model

POSITIVE_LABEL = "__label__hq"
NEGATIVE_LABEL = "__label__lq"
METADATA_FORMAT = "gristmill.quality_fasttext/1"


class TrainingDataError(ValueError):
    """The inputs cannot give a usable training sample (no files, missing columns, an empty class)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    positive_sources: tuple[str, ...] = ("wikipedia", "books")
    negative_sources: tuple[str, ...] = ("common_crawl",)
    max_per_class: int = 50_000
    holdout: float = 0.1
    seed: int = 0
    threads: int = 1
    epoch: int = 5
    lr: float = 0.1
    word_ngrams: int = 2
    dim: int = 64
    min_count: int = 1
    max_chars: int = 10_000
    lowercase: bool = True


def expand_globs(patterns: Sequence[str]) -> list[str]:
    files: list[str] = []
    for pattern in patterns:
        matched = sorted(glob.glob(pattern, recursive=True))
        if not matched:
            raise TrainingDataError(f"input {pattern!r} matches no file")
        files.extend(matched)
    return files


def _hash(doc_id: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """splitmix64 of (doc_id, seed, salt): a deterministic per-document random number."""
    with np.errstate(over="ignore"):
        x = doc_id.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15 + salt) % 2**64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def load_sample(files: Sequence[str], config: TrainConfig) -> pa.Table:
    """doc_id, source, text, label (hq/lq) and holdout (bool) of the sampled documents, in hash order."""
    wanted = list(config.positive_sources) + list(config.negative_sources)
    tables = []
    for path in files:
        part = resolve(path)  # a run's segment part reads its columns from the segments holding them
        schema = part.read_parquet_schema()
        missing = {"doc_id", "source", "text"} - set(schema.names)
        if missing:
            raise TrainingDataError(f"{path}: missing column(s) {sorted(missing)}")
        table = part.read_parquet(columns=["doc_id", "source", "text"])
        table = table.filter(pc.is_in(table["source"], value_set=pa.array(wanted, table.schema.field("source").type)))
        tables.append(table.cast(pa.schema([("doc_id", pa.uint64()), ("source", pa.string()),
                                            ("text", pa.large_string())])))
    if not tables:
        raise TrainingDataError("no input files")
    table = pa.concat_tables(tables)
    positive = pc.is_in(table["source"], value_set=pa.array(list(config.positive_sources), pa.string()))
    label = pc.if_else(positive, POSITIVE_LABEL, NEGATIVE_LABEL)
    table = table.append_column("label", label)
    doc_id = table["doc_id"].to_numpy()
    order_key = _hash(doc_id, config.seed, 1)
    holdout = (_hash(doc_id, config.seed, 2) >> np.uint64(11)).astype(np.float64) / 2.0**53 < config.holdout
    table = table.append_column("holdout", pa.array(holdout)).append_column("_order", pa.array(order_key))
    table = table.sort_by([("_order", "ascending"), ("doc_id", "ascending")])
    picked = []
    for name in (POSITIVE_LABEL, NEGATIVE_LABEL):
        subset = table.filter(pc.equal(table["label"], name))
        if subset.num_rows == 0:
            sources = config.positive_sources if name == POSITIVE_LABEL else config.negative_sources
            raise TrainingDataError(f"no documents of source(s) {list(sources)} in the inputs")
        picked.append(subset.slice(0, config.max_per_class))
    return pa.concat_tables(picked).drop_columns(["_order"])


def _write_training_file(path: str, sample: pa.Table, config: TrainConfig) -> None:
    lines = fasttext_model.prepare_texts(sample["text"], config.max_chars, lowercase=config.lowercase)
    labelled = pc.binary_join_element_wise(sample["label"].cast(pa.large_string()), lines,
                                           pa.scalar(" ", pa.large_string()))
    with open(path, "w", encoding="utf-8") as out:
        for line in labelled.to_pylist():
            out.write(line)
            out.write("\n")


def evaluate(model: Any, sample: pa.Table, config: TrainConfig, threshold: float = 0.5) -> dict:
    """Precision / recall of the ``hq`` label on ``sample`` at ``threshold``."""
    scores = score_texts(model, sample["text"], config.max_chars, config.lowercase)
    truth = pc.equal(sample["label"], POSITIVE_LABEL).to_numpy(zero_copy_only=False)
    predicted = scores >= threshold
    tp = int(np.sum(predicted & truth))
    fp = int(np.sum(predicted & ~truth))
    fn = int(np.sum(~predicted & truth))
    tn = int(np.sum(~predicted & ~truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "documents": int(len(truth)), "positives": int(truth.sum()), "threshold": threshold,
        "precision": precision, "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "accuracy": (tp + tn) / len(truth) if len(truth) else 0.0,
        "true_positive": tp, "false_positive": fp, "false_negative": fn, "true_negative": tn,
    }


def score_texts(model: Any, text: pa.Array | pa.ChunkedArray, max_chars: int, lowercase: bool) -> np.ndarray:
    lines = fasttext_model.prepare_texts(text, max_chars, lowercase=lowercase)
    labels, probs = fasttext_model.predict(model, lines, k=-1)
    return fasttext_model.probability_of(labels, probs, POSITIVE_LABEL)


def train(files: Sequence[str], output: str, config: TrainConfig) -> dict:
    """Train, evaluate on the held-out share, save ``output`` and ``output.json``; returns the metadata."""
    fasttext = fasttext_model.import_fasttext(training=True)
    sample = load_sample(files, config)
    is_holdout = sample["holdout"]
    train_set = sample.filter(pc.invert(is_holdout))
    heldout = sample.filter(is_holdout)
    if train_set.num_rows == 0 or len(set(train_set["label"].to_pylist())) < 2:
        raise TrainingDataError("the training share must hold documents of both classes; lower --holdout")
    with tempfile.TemporaryDirectory(prefix="gristmill-quality-") as tmp:
        train_file = os.path.join(tmp, "train.txt")
        _write_training_file(train_file, train_set, config)
        model = fasttext.train_supervised(
            input=train_file, lr=config.lr, epoch=config.epoch, wordNgrams=config.word_ngrams,
            dim=config.dim, minCount=config.min_count, thread=config.threads, seed=config.seed, verbose=0,
        )
        # fastText saves only to a local file; the storage layer's atomic write puts it where ``output`` says.
        local_model = os.path.join(tmp, "model.bin")
        model.save_model(local_model)
        with open(local_model, "rb") as fh:
            resolve(output).write_bytes(fh.read())
    metadata = {
        "format": METADATA_FORMAT,
        "positive_label": POSITIVE_LABEL,
        "negative_label": NEGATIVE_LABEL,
        "config": dataclasses.asdict(config),
        "inputs": list(files),
        "train_documents": _counts(train_set),
        "heldout_documents": _counts(heldout),
        "heldout": evaluate(model, heldout, config) if heldout.num_rows else None,
        "model_sha256": sha256_file(output),
        "fasttext_module": fasttext.__file__,
    }
    write_json(f"{output}.json", metadata)
    return metadata


def _counts(table: pa.Table) -> dict[str, int]:
    labels = table["label"].to_numpy(zero_copy_only=False)
    return {"hq": int(np.sum(labels == POSITIVE_LABEL)), "lq": int(np.sum(labels == NEGATIVE_LABEL))}


def write_json(path: str, payload: dict) -> None:
    resolve(path).write_json(payload)


def read_metadata(model_path: str) -> dict | None:
    path = f"{model_path}.json"
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        metadata = json.load(f)
    if metadata.get("format") != METADATA_FORMAT:
        raise ValueError(f"{path}: not a gristmill quality model metadata file (format {metadata.get('format')!r})")
    return metadata
