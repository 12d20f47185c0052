"""Each column is stored once: a segment's parts hold doc_id and the columns it changed, and every reader (the
next segment, DuckDB, verify) sees the documents as if every segment had written them whole."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gristmill.pipeline import LocalExecutor, RunDir, run_plan
from gristmill.pipeline.cli import main
from gristmill.pipeline.inspection import connect

from demo_pipeline import DEMO, PACKED_STEPS, make_plan

# Paragraph-level exact dedup rewrites `text` after a global step: the segment it runs in must store the new text.
PARAGRAPHS = DEMO.replace("output:\n", """\
  - stage: dedup.bloom_v1
    params: {{granularity: paragraph}}
""" + PACKED_STEPS + "output:\n")
SEGMENTS = ["00-ingest", "01-dedup.bloom_v1", "02-tokenizer.train_bbpe_v1", "03-mixture.pack_v1"]


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("columns") / "run"
    result = run_plan(make_plan(data_dir, PARAGRAPHS), RunDir(run_dir), LocalExecutor(), log=lambda m: None)
    assert result.computed == SEGMENTS
    return run_dir


def whole(run_dir: Path, segment: str) -> pa.Table:
    return pa.concat_tables(p.read_parquet() for p in RunDir(run_dir).segment_parts(segment))


def test_a_segment_stores_only_what_it_changed_and_nothing_when_it_changed_nothing(run):
    rd = RunDir(run)
    for name, stored in [("01-dedup.bloom_v1", {"doc_id", "text"}), ("02-tokenizer.train_bbpe_v1",
                                                                    {"doc_id", "tokens", "n_tokens"})]:
        columns = set().union(*(pq.read_schema(p).names for p in (run / "segments" / name).glob("part-*")))
        assert columns == stored, name
    assert not list((run / "segments" / "03-mixture.pack_v1").glob("part-*"))  # no streaming step: no copy
    # Parts whose paragraphs were all first occurrences keep their text where ingest wrote it.
    layouts = rd.marker("01-dedup.bloom_v1")["layouts"]
    assert {dict(layout)["text"] for layout in layouts} == {"00-ingest", "01-dedup.bloom_v1"}


def test_lazy_columns_read_the_changed_text_not_the_ingested_one(run):
    ingested = {d: t for d, t in zip(*whole(run, "00-ingest").select(["doc_id", "text"]).to_pydict().values())}
    deduped = whole(run, "01-dedup.bloom_v1")
    changed = [d for d, t in zip(deduped["doc_id"].to_pylist(), deduped["text"].to_pylist()) if ingested[d] != t]
    assert changed  # the data has repeated paragraphs (licence headers of the stdlib files)
    last = whole(run, "03-mixture.pack_v1")
    assert last.column_names[:5] == ["doc_id", "source", "text", "url", "origin"] and "tokens" in last.column_names
    assert last.select(["doc_id", "text"]).equals(deduped.select(["doc_id", "text"]))
    # DuckDB's views put the same documents together, in doc_id order, from the same files.
    con = connect(run)
    for view, name in [("segment_01", "01-dedup.bloom_v1"), ("documents", "03-mixture.pack_v1")]:
        table = con.sql(f"SELECT * FROM {view}").arrow().read_all()
        expected = whole(run, name)
        assert table.column_names == expected.column_names
        for column in {"doc_id", "text", "origin", "tokens"} & set(expected.column_names):
            assert table[column].to_pylist() == expected[column].to_pylist(), (view, column)


def test_a_changed_ancestor_part_fails_verify_for_every_segment_reading_it(run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert main(["verify", str(copy)]) == 0
    capsys.readouterr()
    victim = sorted((copy / "segments" / "00-ingest").glob("part-*.parquet"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert main(["verify", str(copy)]) == 1
    out = capsys.readouterr().out
    assert f"segments/00-ingest/{victim.name}: content changed" in out
    for name in SEGMENTS[1:]:
        assert f"segments/{name}: reads columns from segments/00-ingest, whose parts differ" in out, out


def test_an_ancestor_committed_again_invalidates_its_dependants(run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    success = copy / "segments" / "00-ingest" / "_SUCCESS"
    marker = json.loads(success.read_text())
    marker["parts"] = marker["parts"][1:]  # committed again, without its first part
    success.write_text(json.dumps(marker))
    rd = RunDir(copy)
    problems = rd.check_parts("02-tokenizer.train_bbpe_v1", rd.marker("02-tokenizer.train_bbpe_v1"))
    assert any("reads columns from segments/00-ingest, committed again since" in p for p in problems), problems


def test_an_ancestor_no_longer_committed_invalidates_its_dependants(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "segments" / "00-ingest" / "_SUCCESS").unlink()
    rd = RunDir(copy)
    problems = rd.check_parts("02-tokenizer.train_bbpe_v1", rd.marker("02-tokenizer.train_bbpe_v1"))
    assert any("reads columns from segments/00-ingest, which is no longer committed" in p for p in problems), problems


def test_a_column_counts_as_changed_when_its_values_or_type_differ_on_the_kept_rows():
    from gristmill.pipeline._internal.runner import changed_columns

    before = pa.table({"doc_id": pa.array([1, 2, 3], pa.uint64()), "text": ["a", "b", "c"], "n": [1, 2, 3]})
    kept = before.filter(pa.array([True, False, True]))
    assert changed_columns(kept, before) == set()
    assert changed_columns(kept.set_column(1, "text", pa.array(["a", "C"])), before) == {"text"}
    assert changed_columns(kept.set_column(2, "n", pa.array([1, 3], pa.int32())), before) == {"n"}  # a cast
    assert changed_columns(kept.append_column("tokens", pa.array([[1], [2]])), before) == {"tokens"}


def test_train_quality_reads_the_text_of_the_last_segment_from_where_it_is_stored(run, tmp_path):
    # The last segment (mixture) has no part files at all: text and source come from the segments holding them.
    model = tmp_path / "quality.bin"
    assert main(["train-quality", "--run-dir", str(run), "--output", str(model), "--positive", "github",
                 "--negative", "common_crawl", "--epoch", "2"]) == 0
    assert model.stat().st_size > 0


def test_a_layout_that_cannot_be_read_back_is_refused_at_commit():
    from gristmill.pipeline.rundir import column_layouts

    parent = {"layouts": [[["doc_id", "00-a"], ["text", "00-a"]]],
              "parts": [{"part": 1, "rows": 2, "path": "part-0000000000000001.parquet", "layout": 0}]}
    unlisted = {"part": 2, "rows": 2, "path": "part-0000000000000002.parquet", "columns": ["doc_id"],
                "order": ["doc_id", "text"]}
    with pytest.raises(ValueError, match="part 0000000000000002 reuses columns of a part segments/00-a does not list"):
        column_layouts("01-b", [unlisted], "00-a", parent)
    no_ids = {"part": 1, "rows": 2, "path": "part-0000000000000001.parquet", "columns": ["text"], "order": ["text"]}
    with pytest.raises(ValueError, match="part 0000000000000001 has no doc_id column"):
        column_layouts("01-b", [no_ids], "00-a", parent)
