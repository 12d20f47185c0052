"""``quality.fasttext_v1``: P(reference quality) from a fastText classifier trained by ``gristmill train-quality``.

Adds ``quality_score`` (probability of the ``hq`` label). The text normalization (prefix length, lowercasing)
is read from the model's ``MODEL.json`` so scoring sees text exactly as training did.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from gristmill.stages.base import Resources, StageOutput, StageParams, StreamingStage
from gristmill.stages.lang import fasttext_model
from gristmill.stages.quality import training


class QualityClassifierParams(StageParams):
    # A model written by `gristmill train-quality` (MODEL.json beside it), or any fastText classifier.
    model: str
    # Override the label / normalization recorded in MODEL.json (needed only for foreign models).
    label: str | None = None
    max_chars: int | None = Field(None, gt=0)
    lowercase: bool | None = None


class FastTextQuality(StreamingStage):
    name: ClassVar[str] = "quality.fasttext_v1"
    Params = QualityClassifierParams
    resources: ClassVar[Resources] = Resources(actor=True)
    output_columns: ClassVar[dict[str, pa.DataType]] = {"quality_score": pa.float64()}

    model: Any = None

    def setup(self) -> None:
        p = self.params
        self.model = fasttext_model.load_model(p.model)
        metadata = training.read_metadata(p.model) or {}
        config = metadata.get("config", {})
        self.label = p.label or metadata.get("positive_label", training.POSITIVE_LABEL)
        self.max_chars = p.max_chars or config.get("max_chars", training.TrainConfig.max_chars)
        self.lowercase = p.lowercase if p.lowercase is not None else config.get("lowercase", True)
        if self.label not in self.model.get_labels():
            raise ValueError(f"{p.model}: the model has no label {self.label!r}; labels: {self.model.get_labels()}")

    def process(self, table: pa.Table) -> StageOutput:
        if self.model is None:
            self.setup()
        if table.num_rows == 0:
            scores = np.zeros(0)
        else:
            lines = fasttext_model.prepare_texts(table["text"], self.max_chars, lowercase=self.lowercase)
            labels, probs = fasttext_model.predict(self.model, lines, k=-1)
            scores = fasttext_model.probability_of(labels, probs, self.label)
        column = pa.array(scores, pa.float64())
        if "quality_score" in table.column_names:
            return StageOutput(table.set_column(table.column_names.index("quality_score"), "quality_score", column))
        return StageOutput(table.append_column("quality_score", column))

    @classmethod
    def contract_params(cls, tmp_path) -> dict:
        """Train a tiny classifier (seconds) on text that ships with Python: the Zen of Python as reference,
        site-navigation words as crawl. Enough to run the stage, not to judge quality."""
        with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
            import this

        zen = [line for line in codecs.decode(this.s, "rot13").splitlines() if line.strip()]
        nav = ["home", "login", "menu", "cookie", "subscribe", "share", "next", "privacy", "search", "cart"]
        rng = np.random.default_rng(0)
        texts, sources = [], []
        for i in range(300):
            texts.append(" ".join(rng.choice(zen, 3)))
            sources.append("wikipedia")
            texts.append(" ".join(rng.choice(nav, 8)))
            sources.append("common_crawl")
        parts = os.path.join(str(tmp_path), "quality-contract.parquet")
        pq.write_table(pa.table({"doc_id": pa.array(range(len(texts)), pa.uint64()), "source": sources,
                                 "text": pa.array(texts, pa.large_string())}), parts)
        model = os.path.join(str(tmp_path), "quality-contract.bin")
        training.train([parts], model, training.TrainConfig(epoch=5, dim=16, holdout=0.1))
        return {"model": model}
