"""Fixtures for the tokenizer tests: a small real corpus as a document table, its Parquet parts, and a
tokenizer trained on it once per session (vocabulary 1000, so training takes well under a second)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runtimes import runtime_for

from gristmill.pipeline.rundir import RunDir
from gristmill.stages.base import GlobalContext
from gristmill.stages.tokenize.bbpe import BbpeParams
from gristmill.stages.tokenize.train import train_tokenizer

SMALL_VOCAB = 1000


def _documents(data: Path) -> list[tuple[str, str, str]]:
    """(source, origin, text) of every document, in a fixed order."""
    tok = data / "tokenize"
    docs = []
    en_lines = (tok / "corpus_en.txt").read_text(encoding="utf-8").splitlines()
    for i in range(0, len(en_lines), 8):  # eight lines make one web "page"
        docs.append(("common_crawl", f"corpus_en.txt:{i + 1}", "\n".join(en_lines[i : i + 8])))
    for name in ("de.txt", "zh.txt"):
        for i, line in enumerate((tok / name).read_text(encoding="utf-8").splitlines()):
            docs.append(("wikipedia", f"{name}:{i + 1}", line))
    for name in ("code_textwrap.py.txt", "code_colorsys.py.txt"):
        docs.append(("github", name, (tok / name).read_text(encoding="utf-8")))
    return docs


def document_table(data: Path) -> pa.Table:
    docs = _documents(data)
    n = len(docs)
    return pa.table(
        {
            "doc_id": pa.array([(7 << 32) | i for i in range(n)], pa.uint64()),
            "source": pa.array([d[0] for d in docs], pa.string()),
            "text": pa.array([d[2] for d in docs], pa.large_string()),
            "url": pa.nulls(n, pa.string()),
            "origin": pa.array([d[1] for d in docs], pa.string()),
            "_part": pa.array([i % 3 for i in range(n)], pa.uint64()),
        }
    )


def write_parts(table: pa.Table, directory: Path, n_parts: int) -> list[str]:
    """The table as ``n_parts`` Parquet part files, rows dealt round-robin so every part mixes sources."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n_parts):
        path = directory / f"part-{k:05d}.parquet"
        pq.write_table(table.take(pa.array(range(k, table.num_rows, n_parts), pa.int64())), path)
        paths.append(str(path))
    return paths


def local_context(parts: list[str], run_dir: Path, executor: str = "local") -> GlobalContext:
    """The tokenizer-training step's context: it writes RUN_DIR/tokenizer/."""
    return GlobalContext.for_step(run_dir, "tokenizer.train_bbpe_v1", 3, parts, runtime_for(executor), seed=17)


@pytest.fixture(scope="session")
def corpus(data_dir: Path) -> pa.Table:
    return document_table(data_dir)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, corpus: pa.Table) -> dict:
    """A run directory with the corpus as one committed segment and a tokenizer trained on it (default params)."""
    run_dir = tmp_path_factory.mktemp("run")
    parts = write_parts(corpus, run_dir / "segments" / "00-clean", 3)
    RunDir(run_dir).commit_written_parts("00-clean")
    params = BbpeParams(vocab_size=SMALL_VOCAB)
    ctx = local_context(parts, run_dir)
    meta = train_tokenizer(ctx, params, ctx.layout.tokenizer_dir)
    return {
        "run_dir": run_dir,
        "parts": parts,
        "path": str(run_dir / "tokenizer" / "tokenizer.json"),
        "meta": meta,
        "params": params,
    }


@pytest.fixture(scope="session")
def make_parts():
    return write_parts


@pytest.fixture(scope="session")
def make_context():
    return local_context
