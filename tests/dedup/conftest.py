"""Shared builders for the dedup tests: real sentences, perturbed copies, Parquet parts like a segment's."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runtimes import runtime_for

from gristmill.stages.base import DOCUMENT_SCHEMA, PART_COLUMN, GlobalContext

DATA = Path(__file__).resolve().parents[1] / "data" / "dedup"


@pytest.fixture(scope="session")
def en_sentences() -> list[str]:
    return (DATA / "en_sentences.txt").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="session")
def zh_sentences() -> list[str]:
    return (DATA / "zh_sentences.txt").read_text(encoding="utf-8").splitlines()


def edit_words(text: str, n_edits: int, rng: random.Random) -> str:
    words = text.split(" ")
    for _ in range(n_edits):
        words[rng.randrange(len(words))] = rng.choice(["alpha", "omega", "zulu", "delta"])
    return " ".join(words)


def document_table(rows: list[tuple[int, str, str | None]], part: int) -> pa.Table:
    """rows of (doc_id, text, url) -> a document table (sorted by doc_id) with the internal _part column."""
    rows = sorted(rows)
    table = pa.table(
        {
            "doc_id": pa.array([r[0] for r in rows], pa.uint64()),
            "source": pa.array(["common_crawl"] * len(rows), pa.string()),
            "text": pa.array([r[1] for r in rows], pa.large_string()),
            "url": pa.array([r[2] for r in rows], pa.string()),
            "origin": pa.array([f"test:{r[0]}" for r in rows], pa.string()),
        },
        schema=DOCUMENT_SCHEMA,
    )
    return table.append_column(PART_COLUMN, pa.array([part] * len(rows), pa.uint64()))


def write_parts(tmp_path: Path, parts: list[list[tuple[int, str, str | None]]]) -> list[str]:
    seg = tmp_path / "segment"
    seg.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, rows in enumerate(parts):
        path = seg / f"part-{i:016x}.parquet"
        pq.write_table(document_table(rows, i), path)
        paths.append(str(path))
    return paths


def context(tmp_path: Path, parts: list[str], executor: str = "local", step: int = 3) -> GlobalContext:
    """A dedup step's context in ``tmp_path/run``; its state goes to ``ctx.state`` (run/dedup/NN-step)."""
    return GlobalContext.for_step(tmp_path / "run", "dedup.step_v1", step, parts, runtime_for(executor), seed=0)


def run_global(stage, ctx: GlobalContext) -> tuple[list[int], dict[int, str], dict[int, str]]:
    """build + apply over every part: (surviving doc_ids, reason per dropped doc_id, text per survivor)."""
    state = stage.build(ctx)
    kept, dropped, texts = [], {}, {}
    for path in ctx.input_parts:
        table = pq.read_table(path)
        out = stage.apply(table, state)
        assert out.table.num_rows == table.num_rows
        assert out.table.column_names == table.column_names
        reasons = out.reject_reason.to_pylist() if out.reject_reason is not None else [None] * table.num_rows
        for doc, text, reason in zip(out.table["doc_id"].to_pylist(), out.table["text"].to_pylist(), reasons):
            if reason is None:
                kept.append(doc)
                texts[doc] = text
            else:
                dropped[doc] = reason
    return sorted(kept), dropped, texts


@pytest.fixture(scope="session")
def build():
    """The builders above, for test modules (conftest modules are not importable under importlib mode)."""
    import types

    return types.SimpleNamespace(
        edit_words=edit_words, document_table=document_table, write_parts=write_parts, context=context,
        run_global=run_global,
    )


@pytest.fixture(scope="session")
def near_dup_corpus(en_sentences):
    """Three parts of real documents (6 sentences each) with known duplicates:
    * docs 1000+i for i in range(40): originals (part 1);
    * 2000+i for i < 10: one word edited (near duplicates of 1000+i; part 2);
    * 10+i for i in 10..14: two words edited, placed in part 0 with a *smaller* doc_id than the original;
    * 3000+i for i in 20..24: the original re-cased and re-punctuated (part 2: exact after normalization);
    * 4000+i for i in 30..34: half of the original's sentences, half others (Jaccard ~1/3: distinct).
    Returns (parts rows, {duplicate doc_id: doc_id it duplicates}, distinct doc_ids)."""
    rng = random.Random(7)
    originals = {1000 + i: " ".join(en_sentences[6 * i : 6 * i + 6]) for i in range(40)}
    part0, part1, part2 = [], [], []
    dups = {}
    for i in range(40):
        part1.append((1000 + i, originals[1000 + i], f"https://example.org/a/{i}"))
    for i in range(10):
        part2.append((2000 + i, edit_words(originals[1000 + i], 1, rng), f"https://example.org/b/{i}"))
        dups[2000 + i] = 1000 + i
    for i in range(10, 15):
        part0.append((10 + i, edit_words(originals[1000 + i], 2, rng), f"https://example.org/a/{i}"))
        dups[1000 + i] = 10 + i  # the copy has the smaller doc_id: it is the one kept
    for i in range(20, 25):
        text = originals[1000 + i].upper().replace(".", " !").replace(",", " ;")
        part2.append((3000 + i, text, None))
        dups[3000 + i] = 1000 + i
    for i in range(30, 35):
        half = en_sentences[6 * i : 6 * i + 3] + en_sentences[250 + 6 * (i - 30) : 250 + 6 * (i - 30) + 3]
        part2.append((4000 + i, " ".join(half), f"https://example.org/d/{i}"))
    return [part0, part1, part2], dups
