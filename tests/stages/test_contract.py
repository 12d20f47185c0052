"""The stage contract, checked for every registered stage: empty table in -> empty table out; odd rows are
handled (kept or rejected with a reason, never an exception); rows in = rows out; other columns (and ``_part``)
survive untouched; the same input twice gives the same output."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from gristmill.core.layout import RunLayout
from gristmill.core.runtime import LocalRuntime
from gristmill.pipeline._internal.runner import account, _sources
from gristmill.pipeline.plan import Step
from gristmill.pipeline.registry import all_stages
from gristmill.pipeline.rundir import write_parquet_atomic
from gristmill.stages.base import PART_COLUMN, GlobalContext, GlobalStage, StageOutput

ODD_TEXTS = [
    "",
    " ",
    "\n\n\n",
    "A normal English sentence about the weather, which is fine today.",
    "这是一个中文句子，没有空格。第二句话在这里！",
    "emoji 🎉🎉 and \u200b zero width \x00 NUL \x07 bell \ud7ff",
    "word " * 5000,
    "x" * 20000,
    "def f(x):\n\treturn {x: x}  # code\n",
    "Ã©tÃ© cafÃ© â€™mojibakeâ€",
    "contact: someone@example.com 192.168.0.1 +1 (555) 123-4567",
    "line one\nline two\n\nparagraph two.\n" * 50,
]


def odd_table() -> pa.Table:
    n = len(ODD_TEXTS)
    return pa.table({
        "doc_id": pa.array(np.arange(100, 100 + n, dtype=np.uint64)),
        "source": pa.array(["common_crawl", "github"] * (n // 2), pa.string()),
        "text": pa.array(ODD_TEXTS, pa.large_string()),
        "url": pa.array([None if i % 3 else f"http://example.com/{i}" for i in range(n)], pa.string()),
        "origin": pa.array([f"test:{i}" for i in range(n)], pa.string()),
        "extra_column": pa.array(np.arange(n, dtype=np.int64)),
        PART_COLUMN: pa.array(np.full(n, 100, dtype=np.uint64)),
    })


def _stage(cls, tmp_path):
    params = cls.contract_params(tmp_path) if hasattr(cls, "contract_params") else {}
    stage = cls(params)
    stage.layout = RunLayout(tmp_path)
    stage.setup()
    return stage


def _run(stage, table: pa.Table, tmp_path) -> StageOutput:
    if hasattr(stage, "contract_table"):
        table = stage.contract_table(table)
    if isinstance(stage, GlobalStage):
        parts = tmp_path / "parts"
        write_parquet_atomic(parts / "part-0000000000000064.parquet", table.drop_columns([PART_COLUMN]))
        ctx = GlobalContext.for_step(tmp_path, stage.name, 1, [parts / "part-0000000000000064.parquet"],
                                     LocalRuntime(), seed=1)
        state = stage.build(ctx)
        return table, stage.apply(table, state)
    return table, stage.process(table)


STAGES = sorted(all_stages().items())
# Stages that take a document table; head stages make one from input files (tests/stages/ingest/test_readers.py).
TABLE_STAGES = [(name, cls) for name, cls in STAGES if cls.kind != "head"]


@pytest.mark.parametrize("name,cls", TABLE_STAGES, ids=[n for n, _ in TABLE_STAGES])
def test_stage_contract(name, cls, tmp_path):
    stage = _stage(cls, tmp_path)
    step = Step(1, "steps[0]", name, {})

    empty = odd_table().slice(0, 0)
    expected_error = getattr(cls, "empty_input_error", None)
    if expected_error is not None:
        with pytest.raises(expected_error):
            _run(stage, empty, tmp_path / "empty")
    else:
        table_in, out = _run(stage, empty, tmp_path / "empty")
        assert out.table.num_rows == 0

    table_in, first = _run(stage, odd_table(), tmp_path / "odd1")
    kept, rejected, reports = account(step, _sources, table_in, first, 0.0)
    assert first.table.num_rows == table_in.num_rows
    n_rejected = 0 if rejected is None else rejected.num_rows
    assert kept.num_rows + n_rejected == table_in.num_rows
    assert sum(r["rows_in"] for _, r in reports) == table_in.num_rows
    # Columns the stage does not own pass through untouched, in row order.
    for col in ("doc_id", "source", "origin", "extra_column", PART_COLUMN):
        assert first.table[col].equals(table_in[col]), f"{name} changed column {col}"
    if first.reject_reason is not None:
        reasons = first.reject_reason
        assert len(reasons) == table_in.num_rows
        assert pc.all(pc.or_(pc.is_null(reasons), pc.greater(pc.utf8_length(reasons), 0))).as_py()

    _, second = _run(stage, odd_table(), tmp_path / "odd2")
    assert second.table.equals(first.table), f"{name} is not deterministic"
    assert (first.reject_reason is None) == (second.reject_reason is None)
    if first.reject_reason is not None:
        assert second.reject_reason.equals(first.reject_reason)


@pytest.mark.parametrize("name,cls", STAGES, ids=[n for n, _ in STAGES])
def test_stage_params_refuse_unknown_keys(name, cls, tmp_path):
    from pydantic import ValidationError

    params = cls.contract_params(tmp_path) if hasattr(cls, "contract_params") else {}
    assert cls.name == name
    with pytest.raises(ValidationError, match="no_such_key"):
        cls.Params(**params, no_such_key=1)
