"""Real documents for the mixture tests: corpus.en lines grouped into documents of every LLaMA source,
tokenized with a small byte-level BPE trained on the same text (HF ``tokenizers``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runtimes import runtime_for

from gristmill.stages.base import GlobalContext

CORPUS = Path(__file__).parent / "data" / "mixtures" / "corpus.en"
# Slots per cycle of documents: sources get uneven amounts of text (common_crawl most, the rest less).
SOURCE_CYCLE = ["common_crawl"] * 8 + ["c4"] * 3 + ["github", "wikipedia", "books", "arxiv", "stackexchange"]


def train_tokenizer(path: Path, lines: list[str]) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def documents(tokenizer_path: Path) -> pa.Table:
    """The document table after tokenization: doc_id, source, text, url, origin, _part, tokens, n_tokens."""
    from tokenizers import Tokenizer

    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    texts, origins, pos, i = [], [], 0, 0
    while pos < len(lines):
        k = 1 + i % 4
        texts.append("\n".join(lines[pos : pos + k]))
        origins.append(f"corpus.en:{pos + 1}")
        pos, i = pos + k, i + 1
    n = len(texts)
    tok = Tokenizer.from_file(str(tokenizer_path))
    ids = [e.ids for e in tok.encode_batch(texts)]
    doc_id = (np.arange(n, dtype=np.uint64) * np.uint64(7919)) + np.uint64(1000)  # not dense, not from 0
    return pa.table(
        {
            "doc_id": pa.array(doc_id, pa.uint64()),
            "source": pa.array([SOURCE_CYCLE[j % len(SOURCE_CYCLE)] for j in range(n)]),
            "text": pa.array(texts, pa.large_string()),
            "url": pa.array([f"https://example.org/doc/{j}" if j % 3 else None for j in range(n)]),
            "origin": pa.array(origins),
            "_part": pa.array(np.arange(n) % 3, pa.uint64()),
            "tokens": pa.array(ids, pa.list_(pa.int32())),
            "n_tokens": pa.array([len(x) for x in ids], pa.int32()),
        }
    )


@pytest.fixture(scope="session")
def corpus_lines() -> list[str]:
    return CORPUS.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="session")
def tokenizer_file(tmp_path_factory, corpus_lines) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json", corpus_lines)


@pytest.fixture(scope="session")
def doc_table(tokenizer_file) -> pa.Table:
    return documents(tokenizer_file)


def make_run_dir(root: Path, docs: pa.Table, tokenizer_file: Path, n_parts: int = 3) -> Path:
    """A run directory as the executor leaves it before the mixture step: segment parts + tokenizer."""
    seg = root / "segments" / "02-tokenize"
    seg.mkdir(parents=True)
    bounds = np.linspace(0, docs.num_rows, n_parts + 1).astype(int)
    for p in range(n_parts):
        pq.write_table(docs.slice(bounds[p], bounds[p + 1] - bounds[p]), seg / f"part-{p:05d}.parquet")
    (seg / "_SUCCESS").write_text("")
    (root / "tokenizer").mkdir()
    shutil.copy(tokenizer_file, root / "tokenizer" / "tokenizer.json")
    return root


def input_parts(run_dir: Path) -> list[str]:
    return sorted(str(p) for p in (run_dir / "segments" / "02-tokenize").glob("part-*.parquet"))


def run_pack(run_dir: Path, params: dict, seed: int = 0, executor: str = "local"):
    from gristmill.mixtures.stages import MixturePack

    ctx = GlobalContext.for_step(run_dir, MixturePack.name, 3, input_parts(run_dir), runtime_for(executor), seed)
    return MixturePack(params).build(ctx)


@pytest.fixture
def run_dir(tmp_path, doc_table, tokenizer_file) -> Path:
    return make_run_dir(tmp_path / "run", doc_table, tokenizer_file)


@pytest.fixture(name="make_run_dir")
def make_run_dir_fixture():
    """``make_run_dir(root, docs, tokenizer_file)``: a fresh run directory (tests import no conftest)."""
    return make_run_dir


@pytest.fixture(name="run_pack")
def run_pack_fixture():
    """``run_pack(run_dir, params, seed=0, executor="local")``: build the mixture step on a run directory."""
    return run_pack
