"""A finished run with shards, built once per test session: the demo-like pipeline over the shipped data
through tokenizer training, tokenization and packing (tests/demo_pipeline.py's PACKED: 64-token rows, 16 rows
per shard)."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo_pipeline import PACKED, make_plan


@pytest.fixture(scope="session")
def packed_run(data_dir, tmp_path_factory) -> Path:
    from gristmill.pipeline.executors import LocalExecutor
    from gristmill.pipeline.run import run_plan
    from gristmill.pipeline.rundir import RunDir

    run_dir = tmp_path_factory.mktemp("packed") / "run"
    run_plan(make_plan(data_dir, PACKED), RunDir(run_dir), LocalExecutor(), log=lambda m: None)
    return run_dir
