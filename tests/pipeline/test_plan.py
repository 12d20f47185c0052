"""Input expansion in the plan: patterns that match nothing, optional inputs, directories and unreadable files
are reported by name, at ``validate``/``plan`` where they can be and in the run's statistics otherwise."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from gristmill.pipeline import LocalExecutor, RunDir, build_plan, parse_pipeline, run_plan
from gristmill.pipeline.cli import main
from gristmill.pipeline.inspection import connect
from gristmill.pipeline.spec import SpecError
from gristmill.stages.ingest.base import InputFileError

PIPELINE = """\
name: inputs
inputs:
  - source: common_crawl
    format: warc
    paths: ["warc/*.warc.gz"]
  - source: wikipedia
    format: {fmt}
    paths: ["{pattern}"]
    {extra}
output: {{rejects: true}}
execution: {{executor: local}}
"""


@pytest.fixture
def base(tmp_path, data_dir) -> Path:
    """A pipeline directory with one real WARC file (the Wikipedia page of the whirlwind sample)."""
    (tmp_path / "warc").mkdir()
    shutil.copy(data_dir / "warc" / "cc-main-2024-22-whirlwind.warc.gz", tmp_path / "warc")
    return tmp_path


def _plan(base: Path, pattern: str, extra: str = "", fmt: str = "jsonl"):
    return build_plan(parse_pipeline(PIPELINE.format(fmt=fmt, pattern=pattern, extra=extra), "p.yaml"), base)


def _run(base: Path, plan, logs: list[str] | None = None):
    return run_plan(plan, RunDir(base / "run"), LocalExecutor(), log=(logs.append if logs is not None else print))


def test_a_pattern_that_matches_nothing_names_the_input_and_the_pattern(base):
    with pytest.raises(SpecError, match=re.escape("inputs[1].paths[0]: no file matches 'wiki/*.jsonl' "
                                                  "(source wikipedia;") + ".*optional: true"):
        _plan(base, "wiki/*.jsonl")


def test_an_optional_input_that_matches_nothing_is_a_warning_in_the_run_and_its_stats(base):
    plan = _plan(base, "wiki/*.jsonl", "optional: true")
    assert len(plan.warnings) == 1 and "'wiki/*.jsonl'" in plan.warnings[0]
    logs: list[str] = []
    _run(base, plan, logs)
    assert any(line.startswith("warning: ") and "wiki/*.jsonl" in line for line in logs)
    stats = json.loads((base / "run" / "stats" / "stats.json").read_text())
    assert stats["warnings"] == plan.warnings
    assert json.loads((base / "run" / "plan.json").read_text())["warnings"] == plan.warnings


def test_no_input_file_at_all_is_an_error_even_when_every_input_is_optional(base):
    text = PIPELINE.format(fmt="jsonl", pattern="wiki/*.jsonl", extra="optional: true")
    text = text.replace('paths: ["warc/*.warc.gz"]', 'paths: ["nothing/*.warc.gz"]\n    optional: true')
    with pytest.raises(SpecError, match="no input file at all"):
        build_plan(parse_pipeline(text, "p.yaml"), base)


def test_validate_and_plan_report_the_pattern_and_the_warning(base, capsys):
    yaml_path = base / "p.yaml"
    yaml_path.write_text(PIPELINE.format(fmt="jsonl", pattern="wiki/*.jsonl", extra=""))
    assert main(["validate", str(yaml_path)]) == 2
    assert "no file matches 'wiki/*.jsonl'" in capsys.readouterr().err
    yaml_path.write_text(PIPELINE.format(fmt="jsonl", pattern="wiki/*.jsonl", extra="optional: true"))
    for command in ("validate", "plan"):
        assert main([command, str(yaml_path)]) == 0
        assert "warning: inputs[1].paths[0]: no file matches 'wiki/*.jsonl' (optional input of source wikipedia" \
            in capsys.readouterr().err


def test_a_directory_given_as_a_path_is_an_error_or_a_counted_reject(base):
    (base / "wiki").mkdir()
    with pytest.raises(SpecError, match=re.escape(f"{base / 'wiki'}' is a directory, not a file")):
        _plan(base, "wiki")
    _run(base, _plan(base, "wiki", "on_error: skip"))
    con = connect(base / "run")
    assert con.execute("SELECT rows FROM drops WHERE source = 'wikipedia'").fetchall() == [(1,)]
    assert con.execute("SELECT reject_reason, origin FROM rejects WHERE source = 'wikipedia'").fetchall() == [
        ("read_error: Is a directory", str(base / "wiki"))]


def test_a_file_that_is_not_parquet_stops_the_run_naming_input_and_file_or_is_a_counted_reject(base):
    (base / "wiki").mkdir()
    fake = base / "wiki" / "part-0.parquet"
    fake.write_text('{"text": "JSON under a Parquet name"}\n')
    with pytest.raises(InputFileError, match=re.escape(f"inputs[1] (source wikipedia): {fake}: ")):
        _run(base, _plan(base, "wiki/*.parquet", fmt="parquet"))
    shutil.rmtree(base / "run")
    result = _run(base, _plan(base, "wiki/*.parquet", "on_error: skip", fmt="parquet"))
    ingest = next(s for seg in result.stats for s in seg.stages if s.position == 0 and s.source == "wikipedia")
    assert ingest.drops == {"read_error: not a Parquet file": [1, 0]}
    origins = connect(base / "run").execute("SELECT origin FROM rejects WHERE source = 'wikipedia'").fetchall()
    assert origins == [(str(fake),)]


def test_the_new_input_fields_leave_existing_plan_hashes_alone(base):
    plain = _plan(base, "warc/*.warc.gz", fmt="warc")
    spelled_out = _plan(base, "warc/*.warc.gz", "optional: false\n    on_error: fail", fmt="warc")
    skipping = _plan(base, "warc/*.warc.gz", "on_error: skip", fmt="warc")
    assert plain.plan_hash == spelled_out.plan_hash != skipping.plan_hash


def test_a_reader_named_by_its_stage_hashes_as_its_short_format(base):
    """``format: ingest.warc_v1`` and ``format: warc`` run the same reader: renaming one to the other must not
    make a finished run recompute."""
    short = _plan(base, "warc/*.warc.gz", fmt="warc")
    by_stage = _plan(base, "warc/*.warc.gz", fmt="ingest.warc_v1")
    other_reader = _plan(base, "warc/*.warc.gz", fmt="wet")
    assert short.plan_hash == by_stage.plan_hash != other_reader.plan_hash


def test_segments_start_at_ingest_or_at_a_global_step_and_read_inputs_or_parts(data_dir, tmp_path):
    """A segment's head decides what it reads: ingest reads the inputs' units, a global step the committed parts
    of the segment before it; executors ask the head, never the segment's index."""
    from gristmill.pipeline._internal.inputs import InputsHead
    from gristmill.pipeline._internal.runner import PartsHead
    from gristmill.pipeline.executors import segment_head

    from demo_pipeline import PACKED, make_plan

    plan = make_plan(data_dir, PACKED)
    heads = [segment_head(plan, s, ["p0.parquet", "p1.parquet"]) for s in plan.segments]
    assert [s.name for s in plan.segments] == ["00-ingest", "01-tokenizer.train_bbpe_v1", "02-mixture.pack_v1"]
    assert [s.reads_inputs for s in plan.segments] == [True, False, False]
    assert plan.segments[0].global_step is None and plan.segments[2].global_step.stage_name == "mixture.pack_v1"
    assert isinstance(heads[0], InputsHead) and heads[0].items() == list(range(len(plan.units)))
    assert all(isinstance(h, PartsHead) and h.items() == ["p0.parquet", "p1.parquet"] for h in heads[1:])
    assert heads[0].by_unit and not heads[1].by_unit
