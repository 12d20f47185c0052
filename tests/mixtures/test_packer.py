from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from gristmill.mixtures import packer

SEP, PAD = 0, 1


@pytest.fixture
def docs(doc_table):
    """wikipedia documents of the real corpus: token lists, ids, spans (tokens + separator)."""
    wiki = doc_table.filter(pa.compute.equal(doc_table["source"], "wikipedia"))
    tokens = wiki.column("tokens").combine_chunks()
    spans = np.array(wiki.column("n_tokens").to_pylist()) + 1
    return tokens, wiki.column("doc_id").to_numpy(), spans


def reference_rows(tokens, stream, seq_len, limit):
    """The plain definition: documents in stream order, each followed by the separator, cut every seq_len."""
    flat = []
    for i in stream:
        flat += tokens[int(i)].as_py() + [SEP]
    flat = flat[:limit]
    return [flat[i : i + seq_len] for i in range(0, len(flat) - seq_len + 1, seq_len)], flat


def pack(tokens, doc_ids, stream, seq_len, rows, stream_tokens, chunk_tokens=packer.DEFAULT_CHUNK_TOKENS):
    tables = list(packer.pack_source(tokens, doc_ids, stream, "wikipedia", seq_len, rows, stream_tokens,
                                     SEP, PAD, chunk_tokens))
    return pa.concat_tables(tables)


@pytest.mark.parametrize("chunk_tokens", [packer.DEFAULT_CHUNK_TOKENS, 100, 1])
def test_rows_are_the_documents_joined_by_the_separator(docs, chunk_tokens):
    tokens, doc_ids, spans = docs
    seq_len, needed = 37, int(spans.sum() * 1.7)  # one whole epoch and most of a second
    stream = packer.draw_stream(doc_ids, spans, needed, seed=5)
    rows = needed // seq_len
    table = pack(tokens, doc_ids, stream, seq_len, rows, rows * seq_len, chunk_tokens)
    expected, _ = reference_rows(tokens, stream, seq_len, rows * seq_len)
    assert table.num_rows == rows
    assert table.schema.field("input_ids").type == pa.list_(pa.int32(), seq_len)
    assert table.column("input_ids").to_pylist() == expected
    assert set(table.column("source").to_pylist()) == {"wikipedia"}


def test_provenance_gives_each_documents_slice_of_the_row(docs):
    tokens, doc_ids, spans = docs
    seq_len = 50
    stream = packer.draw_stream(doc_ids, spans, int(spans.sum()), seed=1)
    rows = int(spans.sum()) // seq_len
    table = pack(tokens, doc_ids, stream, seq_len, rows, rows * seq_len, chunk_tokens=64)
    by_id = {int(d): tokens[i].as_py() + [SEP] for i, d in enumerate(doc_ids)}
    position = {}  # how far into each document the rows so far have read
    for row in table.to_pylist():
        offsets = row["doc_offsets"] + [seq_len]
        assert offsets[0] == 0 and offsets == sorted(offsets)
        for d, a, b in zip(row["doc_ids"], offsets, offsets[1:]):
            at = position.get(d, 0)
            assert row["input_ids"][a:b] == by_id[d][at : at + b - a]
            position[d] = at + b - a
    # Every document before the last one in the stream was read whole.
    assert all(position[int(doc_ids[i])] == len(by_id[int(doc_ids[i])]) for i in stream[:-1])


def test_down_sampling_takes_a_hash_ordered_prefix_and_the_seed_changes_it(docs):
    tokens, doc_ids, spans = docs
    needed = int(spans.sum()) // 3
    a = packer.draw_stream(doc_ids, spans, needed, seed=0)
    b = packer.draw_stream(doc_ids, spans, needed, seed=1)
    for stream in (a, b):
        assert spans[stream].sum() >= needed > spans[stream[:-1]].sum()  # the shortest prefix that covers
        assert len(set(stream)) == len(stream)
    assert set(a) != set(b)
    assert np.array_equal(a, packer.draw_stream(doc_ids, spans, needed, seed=0))
    # The draw depends on doc ids, not on where documents sit: permuting the input draws the same documents.
    perm = np.random.default_rng(3).permutation(len(doc_ids))
    c = packer.draw_stream(doc_ids[perm], spans[perm], needed, seed=0)
    assert list(doc_ids[perm][c]) == list(doc_ids[a])


def test_epochs_repeat_every_document_then_a_fraction(docs):
    tokens, doc_ids, spans = docs
    stream = packer.draw_stream(doc_ids, spans, int(spans.sum() * 2.5), seed=0)
    counts = np.bincount(stream, minlength=len(doc_ids))
    assert counts.min() == 2 and counts.max() == 3
    n = len(doc_ids)
    assert not np.array_equal(stream[:n], stream[n : 2 * n])  # each epoch has its own order


def test_short_last_row_is_padded_only_when_planned(docs):
    tokens, doc_ids, spans = docs
    seq_len, stream_tokens = 64, int(spans.sum())
    stream = packer.draw_stream(doc_ids, spans, stream_tokens, seed=0)
    rows = -(-stream_tokens // seq_len)
    table = pack(tokens, doc_ids, stream, seq_len, rows, stream_tokens)
    last = table.column("input_ids")[rows - 1].as_py()
    tail = stream_tokens % seq_len
    _, flat = reference_rows(tokens, stream, seq_len, stream_tokens)
    assert last[:tail] == flat[-tail:]
    assert last[tail:] == [PAD] * (seq_len - tail)
    with pytest.raises(RuntimeError, match="packed .* rows but the plan needs"):
        pack(tokens, doc_ids, stream, seq_len, rows + 1, stream_tokens)


def test_join_documents_handles_empty_lists():
    tokens = pa.array([[5, 6], [], [7]], pa.list_(pa.int32()))
    flat, starts = packer.join_documents(tokens, SEP)
    assert flat.tolist() == [5, 6, SEP, SEP, 7, SEP]
    assert starts.tolist() == [0, 3, 4]
