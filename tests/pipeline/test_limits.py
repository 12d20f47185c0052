"""Trial-run inputs: ``limit: N`` keeps the first N documents in input order and ``sample: fraction`` a seeded
share of them, both counted in the ingest step's stats and the same on the local and the Ray executor."""

from __future__ import annotations

import glob

import pyarrow.parquet as pq
import pytest

from gristmill.pipeline import LocalExecutor, RayExecutor, RunDir, run_plan
from gristmill.pipeline.spec import SpecError

from demo_pipeline import DEMO, PACKED, make_plan


def _with_options(text: str, common_crawl: str = "", github: str = "", seed: int = 3) -> str:
    text = text.replace("seed: 3", f"seed: {seed}")
    text = text.replace('"{data}/warc/truncated-record.warc.gz"]\n',
                        '"{data}/warc/truncated-record.warc.gz"]\n' + common_crawl)
    return text.replace("    options: {{files_per_unit: 4}}\n", "    options: {{files_per_unit: 4}}\n" + github)


def _run(data_dir, run_dir, text, executor=None):
    result = run_plan(make_plan(data_dir, text), RunDir(run_dir), executor or LocalExecutor(), log=lambda m: None)
    ingest = {s.source: s for seg in result.stats for s in seg.stages if s.position == 0}
    documents = pq.read_table(RunDir(run_dir).segment_dir(result.stats[0].segment))
    return ingest, documents


def _column(documents, source: str, column: str) -> list:
    return [v for v, s in zip(documents[column].to_pylist(), documents["source"].to_pylist()) if s == source]


def test_limit_keeps_the_first_documents_in_input_order_and_counts_the_rest(data_dir, tmp_path):
    ingest, documents = _run(data_dir, tmp_path, _with_options(DEMO, github="    limit: 6\n"))
    github = ingest["github"]
    python_files = sorted(glob.glob(f"{data_dir}/python-stdlib/*.py"))
    assert github.rows_out == 6
    # Units of 4 files: the second unit is read up to the 6th file, its other 2 rows are dropped as ``limit``,
    # and the files of the units after it are not read at all (counted).
    assert github.drops["limit"][0] == 2 and github.rows_in == 8
    assert github.counters["limit_reached"] == 1
    assert github.counters["files_not_read_by_limit"] == len(python_files) - 8
    kept_files = {origin.rsplit(":", 1)[0] for origin in _column(documents, "github", "origin")}
    assert kept_files and kept_files <= set(python_files[:6])
    assert ingest["common_crawl"].rows_out > 6  # other inputs are not limited


def test_sample_drops_a_seeded_share_of_documents_by_doc_id(data_dir, tmp_path):
    full, all_docs = _run(data_dir, tmp_path / "full", DEMO)
    half, half_docs = _run(data_dir, tmp_path / "half", _with_options(DEMO, common_crawl="    sample: 0.5\n"))
    again, again_docs = _run(data_dir, tmp_path / "again", _with_options(DEMO, common_crawl="    sample: 0.5\n"))
    other, other_docs = _run(data_dir, tmp_path / "other", _with_options(DEMO, common_crawl="    sample: 0.5\n",
                                                                             seed=4))
    cc_full, cc_half = full["common_crawl"], half["common_crawl"]
    assert cc_half.rows_in == cc_full.rows_in
    sampled = cc_half.drops["sample"][0]
    assert cc_half.rows_out + sampled == cc_full.rows_out
    assert 0.25 * cc_full.rows_out < cc_half.rows_out < 0.75 * cc_full.rows_out
    kept = set(_column(half_docs, "common_crawl", "doc_id"))
    assert kept < set(_column(all_docs, "common_crawl", "doc_id"))
    assert kept == set(_column(again_docs, "common_crawl", "doc_id"))
    assert kept != set(_column(other_docs, "common_crawl", "doc_id"))
    assert half["github"].rows_out == full["github"].rows_out


def test_limit_applies_after_sample(data_dir, tmp_path):
    sampled, sampled_docs = _run(data_dir, tmp_path / "sampled", _with_options(DEMO, github="    sample: 0.5\n"))
    both, both_docs = _run(data_dir, tmp_path / "both", _with_options(DEMO, github="    sample: 0.5\n    limit: 3\n"))
    assert both["github"].rows_out == 3
    first = sorted(_column(sampled_docs, "github", "doc_id"))[:3]
    assert sorted(_column(both_docs, "github", "doc_id")) == first


def test_a_limit_larger_than_the_input_keeps_everything(data_dir, tmp_path):
    full, _ = _run(data_dir, tmp_path / "full", DEMO)
    limited, _ = _run(data_dir, tmp_path / "limited", _with_options(DEMO, github="    limit: 100000\n"))
    assert limited["github"].rows_out == full["github"].rows_out
    assert "limit" not in limited["github"].drops and "limit_reached" not in limited["github"].counters


@pytest.mark.parametrize("line,message", [("    limit: 0\n", "inputs[1].limit"), ("    sample: 1.5\n", "inputs[1].sample")])
def test_bad_limit_or_sample_names_the_key(data_dir, line, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make_plan(data_dir, _with_options(DEMO, github=line))


def _parquet_files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


@pytest.mark.ray
def test_local_and_ray_give_identical_shards_with_limit_and_sample(ray_cluster, data_dir, tmp_path):
    text = _with_options(PACKED, common_crawl="    sample: 0.7\n    limit: 9\n", github="    limit: 10\n")
    plan = make_plan(data_dir, text)
    run_plan(plan, RunDir(tmp_path / "local"), LocalExecutor(), log=lambda m: None)
    run_plan(make_plan(data_dir, text), RunDir(tmp_path / "ray"), RayExecutor(),
             log=lambda m: None)
    for sub in ("segments", "rejects", "shards"):
        local, ray = _parquet_files(tmp_path / "local" / sub), _parquet_files(tmp_path / "ray" / sub)
        assert local and local.keys() == ray.keys()
        assert [k for k in local if local[k] != ray[k]] == [], f"{sub} differ between executors"
    assert (tmp_path / "local" / "manifest.json").read_text() == (tmp_path / "ray" / "manifest.json").read_text()
