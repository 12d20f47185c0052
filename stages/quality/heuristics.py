"""``quality.heuristics_v1``: the Gopher, C4 and FineWeb quality signals as ``q_*`` columns (scores, no drops).

The thresholds live in filter presets (``gristmill.stages.quality.presets``: ``gopher``, ``gopher_repetition``, ``c4``,
``fineweb``, ``multilingual``), so a run can be re-filtered with other thresholds without re-scoring.
"""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa
from pydantic import Field

from gristmill.stages.base import StageOutput, StageParams, StreamingStage
from gristmill.stages.quality import signals


class HeuristicsParams(StageParams):
    # Split Han / Hiragana / Katakana text into one word per character. Chinese and Japanese have no spaces:
    # without this a Chinese page is a handful of huge "words" and fails every word-based rule.
    cjk_split: bool = True
    # Gopher's stop words (case-sensitive, as in datatrove); q_stop_word_count counts how many distinct ones occur.
    stop_words: tuple[str, ...] = Field(signals.GOPHER_STOP_WORDS, min_length=1)


class QualityHeuristics(StreamingStage):
    name: ClassVar[str] = "quality.heuristics_v1"
    Params = HeuristicsParams
    output_columns: ClassVar[dict[str, pa.DataType]] = signals.column_types()

    def setup(self) -> None:
        # Loads the compiled kernels from numba's cache and builds the character-class table (~0.6 s a process)
        # here rather than in the first batch, so a Ray worker set up before a segment starts work ready.
        signals.compute(pa.array(["Set up, 1 2 3: é ü 中文 日本語."]), self.params.cjk_split, self.params.stop_words)

    def process(self, table: pa.Table) -> StageOutput:
        columns = signals.compute(table["text"], self.params.cjk_split, self.params.stop_words)
        for name, column in columns.items():
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, column)
            else:
                table = table.append_column(name, column)
        return StageOutput(table, None)
