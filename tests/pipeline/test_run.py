"""End-to-end runs of the local executor over the shipped data: row accounting, commit and resume, stale
segments, rejects, size limits, and the DuckDB views."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import warcio.archiveiterator

from gristmill.pipeline import LocalExecutor, RunDir, run_plan
from gristmill.pipeline.inspection import connect, inspect_run
from gristmill.pipeline.rundir import StaleSegmentError

from demo_pipeline import DEMO, make_plan


def run_local(data_dir, run_dir, text=DEMO, force=False):
    return run_plan(make_plan(data_dir, text), RunDir(run_dir), LocalExecutor(), force=force, log=lambda m: None)


def html_responses(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(
            1 for r in warcio.archiveiterator.ArchiveIterator(fh)
            if r.rec_type == "response" and "html" in (r.http_headers.get_header("Content-Type") or "")
        )


@pytest.fixture(scope="module")
def demo_run(data_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("demo")
    return run_local(data_dir, run_dir), run_dir


def test_row_accounting_holds_for_every_stage(demo_run):
    result, run_dir = demo_run
    (segment_stats,) = result.stats
    segment, stats = segment_stats.segment, segment_stats.stages
    positions = sorted({s.position for s in stats})
    assert positions == [0, 1, 2, 3, 4]
    for s in stats:
        assert s.rows_in == s.rows_out + s.rows_dropped, s
    # What one step keeps is what the next receives, per source.
    for source in ("common_crawl", "github"):
        chain = [next(s for s in stats if s.position == p and s.source == source) for p in positions]
        for a, b in zip(chain, chain[1:]):
            assert a.rows_out == b.rows_in
    documents = pq.read_table(RunDir(run_dir).segment_dir(segment)).num_rows
    assert documents == sum(s.rows_out for s in stats if s.position == 4)


def test_one_document_per_html_response_and_truncated_record_counted(demo_run, data_dir):
    result, run_dir = demo_run
    con = connect(run_dir)
    ingest = dict(con.execute("SELECT reason, rows FROM drops WHERE step = 'ingest'").fetchall())
    assert ingest.get("truncated_record") == 1
    kept = con.execute("SELECT rows_out, rows_in FROM stage_stats WHERE step='ingest' AND source='common_crawl'")
    rows_out, rows_in = kept.fetchone()
    assert rows_out == html_responses(data_dir / "warc" / "cc-main-2020-34-sample.warc.gz")
    assert rows_in == 50 + 1  # every record of both files is accounted for


def test_rejects_keep_dropped_rows_with_their_reason(demo_run):
    _, run_dir = demo_run
    con = connect(run_dir)
    by_step = dict(con.execute("SELECT step, count(*) FROM rejects GROUP BY 1").fetchall())
    dropped = dict(con.execute("SELECT stage, sum(rows_dropped) FROM stage_stats GROUP BY 1").fetchall())
    assert by_step["00-ingest"] == dropped["ingest"]
    for step, rows in by_step.items():
        assert rows == dropped[step.split("-", 1)[1]]
    assert con.execute("SELECT count(*) FROM rejects WHERE reject_reason IS NULL").fetchone()[0] == 0


def test_stats_are_written_as_parquet_and_json(demo_run):
    _, run_dir = demo_run
    stats = json.loads((run_dir / "stats" / "stats.json").read_text())
    assert {"stages", "drops", "plan_hash", "wall_seconds"} <= set(stats)
    assert pq.read_table(run_dir / "stats" / "stages.parquet").num_rows == len(stats["stages"])
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["plan_hash"] == stats["plan_hash"] and plan["versions"]["pyarrow"]


def test_duckdb_answers_documents_per_source(demo_run, data_dir):
    _, run_dir = demo_run
    rows = dict(duckdb.execute(
        f"SELECT source, count(*) FROM read_parquet('{run_dir}/segments/*/part-*.parquet') GROUP BY 1").fetchall())
    con = connect(run_dir)
    assert dict(con.execute("SELECT source, count(*) FROM documents GROUP BY 1").fetchall()) == rows
    assert rows["github"] == len(list((data_dir / "python-stdlib").glob("*.py")))
    assert "drops by reason" in inspect_run(run_dir)


def test_rerun_skips_committed_segment_and_output_is_unchanged(data_dir, tmp_path):
    first = run_local(data_dir, tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "segments" / "00-ingest").glob("part-*")}
    second = run_local(data_dir, tmp_path)
    assert first.computed == ["00-ingest"] and second.skipped == ["00-ingest"] and not second.computed
    after = {p.name: p.read_bytes() for p in (tmp_path / "segments" / "00-ingest").glob("part-*")}
    assert before == after
    assert [s.rows_out for seg in second.stats for s in seg.stages] == [s.rows_out for seg in first.stats for s in seg.stages]


def test_a_committed_segment_has_its_statistics_already(data_dir, tmp_path, monkeypatch):
    # A driver killed right after a commit must leave a segment the rerun skips: its statistics come first.
    seen = []
    commit = RunDir.commit_segment

    def observed_commit(self, name, marker):
        seen.append((name, (self.stats_dir / "segments" / f"{name}.json").exists()))
        return commit(self, name, marker)

    monkeypatch.setattr(RunDir, "commit_segment", observed_commit)
    run_local(data_dir, tmp_path)
    assert seen == [("00-ingest", True)]


def test_partial_segment_without_marker_is_recomputed(data_dir, tmp_path):
    run_local(data_dir, tmp_path)
    seg = tmp_path / "segments" / "00-ingest"
    (seg / "_SUCCESS").unlink()
    victim = sorted(seg.glob("part-*"))[0]
    victim.write_bytes(b"half a file")
    result = run_local(data_dir, tmp_path)
    assert result.computed == ["00-ingest"]
    assert pq.read_table(victim).num_rows > 0


def test_changed_plan_refuses_stale_segment_unless_forced(data_dir, tmp_path):
    run_local(data_dir, tmp_path)
    plan_before = (tmp_path / "plan.json").read_bytes()
    changed = DEMO.replace("seed: 3", "seed: 4")
    with pytest.raises(StaleSegmentError, match="committed by a different plan"):
        run_local(data_dir, tmp_path, changed)
    assert (tmp_path / "plan.json").read_bytes() == plan_before  # a refused rerun changes nothing
    result = run_local(data_dir, tmp_path, changed, force=True)
    assert result.computed == ["00-ingest"]


def test_oversize_documents_truncated_or_rejected(data_dir, tmp_path):
    truncating = DEMO.replace("options: {{files_per_unit: 4}}", "options: {{files_per_unit: 4}}\n    max_doc_bytes: 1000")
    result = run_local(data_dir, tmp_path / "t", truncating)
    docs = pq.read_table(tmp_path / "t" / "segments" / "00-ingest", filters=[("source", "=", "github")])
    assert docs.num_rows == 10
    assert max(len(t.encode()) for t in docs["text"].to_pylist()) <= 1000
    ingest = next(s for seg in result.stats for s in seg.stages if s.position == 0 and s.source == "github")
    assert ingest.counters == {"truncated_to_max_doc_bytes": 10}  # cut, and counted under its own name

    rejecting = truncating.replace("max_doc_bytes: 1000", "max_doc_bytes: 1000\n    oversize: reject")
    result = run_local(data_dir, tmp_path / "r", rejecting)
    ingest = next(s for seg in result.stats for s in seg.stages if s.position == 0 and s.source == "github")
    assert ingest.drops["too_large"][0] == 10 and ingest.rows_out == 0


def test_relative_to_is_read_against_the_pipeline_file_and_paths_are_normalized(data_dir, tmp_path):
    text = DEMO.replace("options: {{files_per_unit: 4}}", "options: {{files_per_unit: 4, relative_to: .}}")
    text = text.replace("{data}/python-stdlib", "{data}/../data/python-stdlib")
    run_local(data_dir, tmp_path, text)  # make_plan uses tests/data as the pipeline file's directory
    docs = pq.read_table(tmp_path / "segments" / "00-ingest", filters=[("source", "=", "github")])
    assert sorted(docs["origin"].to_pylist()) == sorted(
        f"python-stdlib/{p.name}" for p in (data_dir / "python-stdlib").glob("*.py"))


DEDUP = DEMO.replace("output:\n", """\
  - stage: dedup.bloom_v1
  - stage: dedup.minhash_v1
    params: {{threshold: 0.5}}
output:
""")


def test_global_steps_statistics_go_through_the_run_stats_and_survive_a_resumed_run(data_dir, tmp_path):
    """Dedup's build statistics are stored by the framework (stats/global.parquet, one schema for every global
    step), never as files of the stage's own; a rerun that skips the committed segments still reports them."""
    first = run_local(data_dir, tmp_path, DEDUP)
    assert not list((tmp_path / "dedup").rglob("stats.json"))
    by_segment = {seg.segment: seg.global_step for seg in first.stats}
    assert by_segment["00-ingest"] is None
    bloom, minhash = by_segment["01-dedup.bloom_v1"], by_segment["02-dedup.minhash_v1"]
    assert (bloom.position, bloom.stage) == (5, "dedup.bloom_v1")
    last = max(s.position for s in first.stats[0].stages)
    ingest_out = sum(s.rows_out for s in first.stats[0].stages if s.position == last)
    assert bloom.stats.counts["docs_in"] == ingest_out
    # what each build counted agrees with what its apply pass dropped
    minhash_dropped = sum(s.rows_dropped for s in first.stats[2].stages if s.position == 6)
    assert minhash.stats.counts["near_duplicates"] == minhash_dropped
    bloom_dropped = sum(s.rows_dropped for s in first.stats[1].stages if s.position == 5)
    assert bloom.stats.counts["docs_in"] - bloom.stats.counts["docs_out"] == bloom_dropped

    con = connect(tmp_path)
    rows = con.execute("SELECT stage, kind, name, bucket, value FROM global_stats ORDER BY ALL").fetchall()
    assert ("dedup.minhash_v1", "count", "near_duplicates", None, float(minhash_dropped)) in rows
    clusters = con.execute("SELECT sum(removed) FROM dedup_clusters").fetchone()[0] if minhash_dropped else None
    assert clusters in (None, minhash_dropped)
    assert "global steps" in inspect_run(tmp_path)

    before = (tmp_path / "stats" / "global.parquet").read_bytes()
    second = run_local(data_dir, tmp_path, DEDUP)
    assert not second.computed
    assert [seg.global_step for seg in second.stats] == [seg.global_step for seg in first.stats]
    assert (tmp_path / "stats" / "global.parquet").read_bytes() == before
