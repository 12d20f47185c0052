"""The run directory's integrity: each segment reads exactly the parts its predecessor's ``_SUCCESS`` lists (with
sizes and hashes); ``verify`` and resume find a part missing, changed or added; the manifest belongs to the
current plan; a refused rerun changes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gristmill.mixtures.solver import InfeasibleMixture
from gristmill.pipeline import LocalExecutor, RunDir, run_plan
from gristmill.pipeline.cli import main
from gristmill.pipeline.rundir import StaleSegmentError

from demo_pipeline import PACKED, make_plan

SEGMENTS = ["00-ingest", "01-tokenizer.train_bbpe_v1", "02-mixture.pack_v1"]


def run_packed(data_dir, run_dir, text=PACKED, force=False, log=lambda m: None):
    return run_plan(make_plan(data_dir, text), RunDir(run_dir), LocalExecutor(), force=force, log=log)


def shard_bytes(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "shards").iterdir())} | {
        "manifest.json": (run_dir / "manifest.json").read_bytes()}


def verify(run_dir: Path, capsys) -> tuple[int, str]:
    code = main(["verify", str(run_dir)])
    return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def clean_run(data_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("clean") / "run"
    assert run_packed(data_dir, run_dir).computed == SEGMENTS
    return run_dir


@pytest.fixture
def copied_run(clean_run, tmp_path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(clean_run, run_dir)
    return run_dir


def test_success_lists_every_part_with_rows_size_and_hash(clean_run, capsys):
    for name in SEGMENTS:
        marker = json.loads((clean_run / "segments" / name / "_SUCCESS").read_text())
        on_disk = sorted(p.name for p in (clean_run / "segments" / name).glob("part-*.parquet"))
        # A part the segment left as it was (no row dropped, no column changed) has no file of its own.
        assert [p["path"] for p in marker["parts"] if "bytes" in p] == on_disk
        for part in marker["parts"]:
            assert part["rows"] > 0
            if "bytes" in part:
                assert part["bytes"] == (clean_run / "segments" / name / part["path"]).stat().st_size
                assert len(part["xxh3_128"]) == 32
        assert marker["rows"] == sum(p["rows"] for p in marker["parts"])
    code, out = verify(clean_run, capsys)
    assert code == 0 and "every segment's parts match its _SUCCESS, shards match manifest.json" in out
    manifest = json.loads((clean_run / "manifest.json").read_text())
    plan = json.loads((clean_run / "plan.json").read_text())
    assert manifest["plan_hash"] == plan["plan_hash"]
    assert (manifest["segment"], manifest["segment_hash"]) == (SEGMENTS[2], plan["segments"][2]["hash"])


def _delete(part: Path) -> None:
    part.unlink()


def _flip_a_byte(part: Path) -> None:  # same size, other content
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))


def _add_a_copy(part: Path) -> None:  # a part file the marker does not list (a glob would read it twice)
    shutil.copy(part, part.with_name("part-00000000ffffffff.parquet"))


@pytest.mark.parametrize("damage, finding", [
    (_delete, "listed in _SUCCESS but missing"),
    (_flip_a_byte, "content changed (xxh3_128 differs"),
    (_add_a_copy, "a part file not listed in _SUCCESS"),
])
def test_a_damaged_part_fails_verify_and_resume_recomputes_to_identical_shards(
        data_dir, clean_run, copied_run, capsys, damage, finding):
    victim = sorted((copied_run / "segments" / SEGMENTS[0]).glob("part-*.parquet"))[1]
    damage(victim)
    code, out = verify(copied_run, capsys)
    name = "part-00000000ffffffff.parquet" if damage is _add_a_copy else victim.name
    assert code == 1 and f"segments/{SEGMENTS[0]}/{name}: {finding}" in out, out

    logged: list[str] = []
    result = run_packed(data_dir, copied_run, log=logged.append)  # the same plan again: no --force needed
    assert result.computed == SEGMENTS  # the damaged segment and everything downstream of it
    assert any(m.startswith(f"segment {SEGMENTS[0]}: committed, but its parts no longer match") and finding in m
               for m in logged), logged
    assert shard_bytes(copied_run) == shard_bytes(clean_run)
    assert verify(copied_run, capsys)[0] == 0


def test_damage_in_a_later_segment_recomputes_only_from_there(data_dir, clean_run, copied_run, capsys):
    _delete(sorted((copied_run / "segments" / SEGMENTS[1]).glob("part-*.parquet"))[0])
    result = run_packed(data_dir, copied_run)
    assert result.skipped == SEGMENTS[:1] and result.computed == SEGMENTS[1:]
    assert shard_bytes(copied_run) == shard_bytes(clean_run)


def test_refused_rerun_leaves_plan_json_and_the_run_untouched(data_dir, copied_run, capsys):
    plan_before = (copied_run / "plan.json").read_bytes()
    changed = PACKED.replace("seed: 3", "seed: 4")
    with pytest.raises(StaleSegmentError, match="committed by a different plan"):
        run_packed(data_dir, copied_run, changed)
    assert (copied_run / "plan.json").read_bytes() == plan_before
    assert verify(copied_run, capsys)[0] == 0  # still the old plan's consistent run


def test_infeasible_mixture_after_a_good_run_leaves_no_current_looking_manifest(data_dir, copied_run, capsys):
    infeasible = PACKED.replace("ratios: {{common_crawl: 0.6, github: 0.4}}",
                                "ratios: {{common_crawl: 0.5, github: 0.3, wikipedia: 0.2}}")
    with pytest.raises(InfeasibleMixture):
        run_packed(data_dir, copied_run, infeasible, force=True)
    assert not (copied_run / "manifest.json").exists()
    code, out = verify(copied_run, capsys)
    assert code == 1
    assert "no manifest" in out and f"segments/{SEGMENTS[2]}: not committed" in out, out


def test_a_manifest_of_another_plan_fails_verify(copied_run, capsys):
    plan = json.loads((copied_run / "plan.json").read_text())
    plan["plan_hash"] = "0" * 16
    (copied_run / "plan.json").write_text(json.dumps(plan))
    code, out = verify(copied_run, capsys)
    assert code == 1 and "manifest.json: packed from plan" in out and "the shards belong to another plan" in out


def test_verify_names_a_segment_committed_by_another_plan(copied_run, capsys):
    marker_path = copied_run / "segments" / SEGMENTS[1] / "_SUCCESS"
    marker = json.loads(marker_path.read_text())
    marker["hash"] = "f" * 16
    marker_path.write_text(json.dumps(marker))
    code, out = verify(copied_run, capsys)
    assert code == 1 and f"segments/{SEGMENTS[1]}: committed by another plan" in out


def test_next_segment_reads_the_listed_parts_not_the_directory(clean_run):
    rd = RunDir(clean_run)
    marker = rd.marker(SEGMENTS[0])
    listed = rd.segment_parts(SEGMENTS[0])
    own_dir = clean_run / "segments" / SEGMENTS[0]
    assert [str(p) for p in listed] == [str(own_dir / p["path"]) for p in marker["parts"]]
    with pytest.raises(FileNotFoundError, match="not committed"):
        rd.segment_parts("07-nothing")


def test_resetting_a_segment_on_an_object_store_lists_the_rejects_once_and_removes_only_its_steps(
    s3_query, s3_requests
):
    """Before a segment is (re)computed its steps' rejects go: one listing of rejects/ says which steps have
    any, instead of a listing per step (a segment of eight steps made eight)."""
    from gristmill.core.storage import resolve

    rd = RunDir(f"s3://gristmill-run/runs/reset?{s3_query}")
    rejects = resolve(rd.root) / "rejects"
    for slug in ("02-clean.boilerplate_v1", "06-filter_v1", "07-dedup.bloom_v1"):
        (rejects / slug / "part-0.parquet").write_bytes(b"rejected")
    (rd.segment_dir("00-ingest") / "part-0.parquet").write_bytes(b"old")
    steps = [f"{i:02d}-step" for i in range(8)] + ["02-clean.boilerplate_v1", "06-filter_v1"]
    s3_requests.requests.clear()
    rd.reset_segment("00-ingest", steps)
    listings = [key for _, key in s3_requests.requests if "list-type" in key]
    assert len(listings) <= 2 + 2 * 2, listings  # the segment, rejects/, and each step with rejects
    assert not any("-step" in key for key in listings)
    assert [loc.name for loc in rejects.iterdir()] == ["07-dedup.bloom_v1"]
    assert not (rd.segment_dir("00-ingest") / "part-0.parquet").exists()
