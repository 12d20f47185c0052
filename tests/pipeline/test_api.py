"""gristmill.run (pipeline/api.py): a path or YAML text in, a finished run out, as `gristmill run` does it."""

from __future__ import annotations

from pathlib import Path

import pytest

import gristmill
from demo_pipeline import PACKED

from gristmill.core import storage
from gristmill.mixtures.shards import load_manifest
from gristmill.pipeline.api import RunOptionsError
from gristmill.pipeline.rundir import StaleSegmentError
from gristmill.pipeline.spec import SpecError

SEGMENTS = ["00-ingest", "01-tokenizer.train_bbpe_v1", "02-mixture.pack_v1"]


def shard_bytes(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "shards").iterdir())}


@pytest.fixture(scope="module")
def api_run(data_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("api")
    return gristmill.run(PACKED.format(data=data_dir), run_dir=base / "run", executor="local", base_dir=base)


def test_run_returns_stats_manifest_and_shards(api_run, packed_run):
    assert api_run.segments_computed == SEGMENTS and api_run.segments_skipped == []
    assert list(api_run.stats) == SEGMENTS
    ingest = {s.source: s for s in api_run.stats["00-ingest"] if s.label == "ingest"}
    assert set(ingest) == {"common_crawl", "github"} and all(s.rows_in == s.rows_out + s.rows_dropped
                                                            for s in ingest.values())
    assert api_run.manifest == load_manifest(api_run.run_dir)
    assert api_run.plan_hash == api_run.manifest["plan_hash"]
    assert [s.name for s in api_run.shards] == [Path(e["path"]).name for e in api_run.manifest["shards"]]
    assert all(s.is_file() for s in api_run.shards)
    # The same shards as the plan run directly (tests/packed_run.py).
    assert shard_bytes(Path(api_run.run_dir.path)) == shard_bytes(packed_run)


def test_a_pipeline_file_reruns_skipping_committed_segments(api_run, data_dir):
    """Text resolves paths against base_dir, a file against its folder: the same folder, the same plan."""
    path = Path(api_run.run_dir.path).parent / "packed.yaml"
    path.write_text(PACKED.format(data=data_dir))
    again = gristmill.run(path, run_dir=api_run.run_dir.path)
    assert again.segments_skipped == SEGMENTS and again.segments_computed == []
    assert again.manifest == api_run.manifest and again.shards == api_run.shards


def test_a_changed_plan_is_refused_unless_forced(api_run, data_dir, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(api_run.run_dir.path, run_dir)
    changed = PACKED.replace("seed: 3", "seed: 4").format(data=data_dir)
    with pytest.raises(StaleSegmentError, match="committed by a different plan"):
        gristmill.run(changed, run_dir=run_dir)
    forced = gristmill.run(changed, run_dir=run_dir, force=True)
    assert forced.segments_computed == SEGMENTS and forced.manifest["seed"] == 4


def test_bad_options_and_text_are_named(data_dir, tmp_path):
    text = PACKED.format(data=data_dir)
    with pytest.raises(RunOptionsError, match="executor 'spark': expected one of local, ray"):
        gristmill.run(text, run_dir=tmp_path / "a", executor="spark")
    with pytest.raises(RunOptionsError, match="needs the ray executor"):
        gristmill.run(text, run_dir=tmp_path / "b", executor="local", address="127.0.0.1:6379")
    with pytest.raises(SpecError, match="<pipeline text>"):
        gristmill.run(text.replace("name: demo-test", "name: demo-test\nnot_a_key: 1"), run_dir=tmp_path / "c")
    with pytest.raises(SpecError, match="missing.yaml: cannot read"):
        gristmill.run(str(tmp_path / "missing.yaml"), run_dir=tmp_path / "d")


def test_a_run_without_shards_has_no_manifest(data_dir, tmp_path):
    from demo_pipeline import DEMO

    result = gristmill.run(DEMO.format(data=data_dir), run_dir=tmp_path / "run")
    assert result.manifest is None and result.shards == [] and result.segments_computed == ["00-ingest"]


@pytest.mark.ray
@pytest.mark.slow
def test_the_ray_executor_gives_the_local_shards(ray_cluster, packed_run, data_dir, tmp_path):
    result = gristmill.run(PACKED.format(data=data_dir), run_dir=tmp_path / "run", executor="ray")
    assert result.segments_computed == SEGMENTS
    assert shard_bytes(tmp_path / "run") == shard_bytes(packed_run)


@pytest.mark.slow
def test_an_object_store_run_directory(packed_run, data_dir, s3_query):
    """Shards written to s3:// come back as Locations there, with the local run's bytes; ShardDataset reads them."""
    from gristmill.mixtures.dataset import ShardDataset

    uri = f"s3://gristmill-run/runs/api?{s3_query}"
    result = gristmill.run(PACKED.format(data=data_dir), run_dir=uri, executor="local")
    assert result.run_dir == storage.resolve(uri)
    assert result.shards[0].uri.startswith("s3://gristmill-run/runs/api/shards/part-00000.parquet?endpoint_override=")
    assert [s.read_bytes() for s in result.shards] == list(shard_bytes(packed_run).values())
    assert len(list(ShardDataset(uri))) == result.manifest["rows"]
