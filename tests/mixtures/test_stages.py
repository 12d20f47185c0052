from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from gristmill.pipeline import shards_cli as cli
from gristmill.mixtures.solver import InfeasibleMixture
from gristmill.mixtures.stages import MixturePack
from gristmill.core.storage import resolve
from gristmill.pipeline.registry import get_stage
from gristmill.stages.base import GlobalContext, GlobalStage

from mixture_fixtures import input_parts
from runtimes import runtime_for

PARAMS = {"mixture": "llama", "seq_len": 64, "rows_per_shard": 100, "row_group_rows": 32}


def shard_bytes(run_dir):
    return {p.name: p.read_bytes() for p in sorted((run_dir / "shards").glob("part-*.parquet"))}


def test_registered_as_a_global_stage():
    assert issubclass(MixturePack, GlobalStage)
    assert MixturePack.name == "mixture.pack_v1"
    assert get_stage("mixture.pack_v1") is MixturePack


def test_realized_shares_match_the_llama_targets_in_duckdb(run_dir, run_pack):
    run_pack(run_dir, PARAMS)
    con = duckdb.connect()
    con.execute(cli.shards_view_sql(str(run_dir)))
    realized = dict(
        con.execute(
            "SELECT source, sum(len(input_ids)) / (SELECT sum(len(input_ids)) FROM shards) FROM shards GROUP BY 1"
        ).fetchall()
    )
    manifest = json.loads((run_dir / "manifest.json").read_text())
    target = manifest["mixture"]["target"]
    assert set(realized) == set(target)
    for source, share in target.items():
        assert abs(realized[source] - share) < 0.005, source
        assert realized[source] == pytest.approx(manifest["mixture"]["realized"][source])
    assert manifest["mixture"]["max_share_error"] < 0.005
    # Every shard carries the mixture: common_crawl is in every full shard, in roughly its share.
    for entry in manifest["shards"][:-1]:
        assert 0.5 < entry["tokens_per_source"]["common_crawl"] / entry["tokens"] < 0.85


def test_manifest_records_epochs_hashes_and_shards(run_dir, run_pack):
    (run_dir / "plan.json").write_text(json.dumps({"plan_hash": "abc123"}))
    run_pack(run_dir, {**PARAMS, "max_epochs": {"wikipedia": 3.0}}, seed=7)
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["plan_hash"] == "abc123" and m["seed"] == 7
    assert m["tokenizer"]["separator_id"] == 0 and len(m["tokenizer"]["sha256"]) == 64
    wiki = m["sources"]["wikipedia"]
    assert 1.0 < wiki["epochs"] <= 3.0  # the smallest source is repeated, within its cap
    assert wiki["max_epochs"] == 3.0
    assert sum(e["rows"] for e in m["shards"]) == m["rows"]
    assert all(e["rows"] == 100 for e in m["shards"][:-1])
    assert [e["path"] for e in m["shards"]] == [f"shards/part-{i:05d}.parquet" for i in range(len(m["shards"]))]
    meta = pq.ParquetFile(run_dir / m["shards"][0]["path"]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert meta.num_row_groups == 4  # 100 rows in groups of 32
    assert cli.verify(str(run_dir)) == []
    assert not (run_dir / "mixture" / "staging").exists()


def test_same_seed_is_byte_identical_and_another_seed_only_reorders(
    tmp_path, doc_table, tokenizer_file, make_run_dir, run_pack
):
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        run_dir = make_run_dir(tmp_path / name, doc_table, tokenizer_file)
        run_pack(run_dir, PARAMS, seed=seed)
        runs[name] = (shard_bytes(run_dir), json.loads((run_dir / "manifest.json").read_text()))
    assert runs["a"][0] == runs["b"][0]
    assert runs["a"][1]["shards"] == runs["b"][1]["shards"]
    assert runs["a"][0] != runs["c"][0]
    for key in ("rows", "tokens"):
        assert runs["a"][1][key] == runs["c"][1][key]
    assert {s: v["tokens"] for s, v in runs["a"][1]["sources"].items()} == {
        s: v["tokens"] for s, v in runs["c"][1]["sources"].items()
    }


def test_infeasible_mixture_fails_before_writing_any_shard(run_dir, run_pack):
    with pytest.raises(InfeasibleMixture) as err:
        run_pack(run_dir, {**PARAMS, "total_tokens": 200_000})
    assert "is short by" in str(err.value) and "lower total_tokens to <=" in str(err.value)
    assert not (run_dir / "shards").exists()
    assert not (run_dir / "manifest.json").exists()


def test_missing_source_fails_with_the_fix(run_dir, run_pack):
    with pytest.raises(InfeasibleMixture, match="source\\(s\\) with a positive share have no tokens.*\n.*code"):
        run_pack(run_dir, {**PARAMS, "mixture": None, "ratios": {"common_crawl": 0.9, "code": 0.1}})
    assert not (run_dir / "shards").exists()


def test_own_ratios_and_budget(run_dir, run_pack):
    run_pack(run_dir, {**PARAMS, "mixture": None, "ratios": {"common_crawl": 1, "books": 1},
                       "total_tokens": 6_400, "max_epochs": {"books": 2.0}})
    m = json.loads((run_dir / "manifest.json").read_text())
    assert {s: v["rows"] for s, v in m["sources"].items()} == {"books": 50, "common_crawl": 50}
    assert set(m["unused_sources"]) == {"arxiv", "c4", "github", "stackexchange", "wikipedia"}


def test_rerun_with_fewer_rows_replaces_shards_and_manifest(run_dir, run_pack):
    run_pack(run_dir, {**PARAMS, "rows_per_shard": 50})
    run_pack(run_dir, PARAMS)
    assert cli.verify(str(run_dir)) == []


def test_apply_passes_documents_through(doc_table):
    out = MixturePack(PARAMS).apply(doc_table, None)
    assert out.table.equals(doc_table) and out.reject_reason is None


@pytest.mark.ray
def test_ray_and_local_write_identical_shards(
    ray_cluster, tmp_path, doc_table, tokenizer_file, make_run_dir, run_pack
):
    local = make_run_dir(tmp_path / "local", doc_table, tokenizer_file)
    on_ray = make_run_dir(tmp_path / "ray", doc_table, tokenizer_file)
    run_pack(local, PARAMS, seed=11, executor="local")
    run_pack(on_ray, PARAMS, seed=11, executor="ray")
    assert shard_bytes(local) == shard_bytes(on_ray)
    strip = lambda m: {k: v for k, v in m.items() if k != "inputs"}  # noqa: E731 - inputs name each run dir
    assert strip(json.loads((local / "manifest.json").read_text())) == strip(
        json.loads((on_ray / "manifest.json").read_text())
    )


def test_shards_do_not_depend_on_the_packers_chunk_size(tmp_path, doc_table, tokenizer_file, make_run_dir, run_pack):
    whole = make_run_dir(tmp_path / "whole", doc_table, tokenizer_file)
    chunked = make_run_dir(tmp_path / "chunked", doc_table, tokenizer_file, n_parts=5)
    run_pack(whole, PARAMS)
    run_pack(chunked, {**PARAMS, "chunk_tokens": 300})
    assert shard_bytes(whole) == shard_bytes(chunked)


def test_input_without_token_counts_names_the_file(tmp_path, doc_table, tokenizer_file, make_run_dir, run_pack):
    run_dir = make_run_dir(tmp_path / "run", doc_table.drop_columns(["n_tokens"]), tokenizer_file)
    with pytest.raises(ValueError, match=r"part-00000.parquet: needs columns doc_id, source, n_tokens"):
        run_pack(run_dir, PARAMS)


def test_pad_last_keeps_the_tail_of_a_source_in_one_padded_row(run_dir, run_pack):
    run_pack(run_dir, {**PARAMS, "mixture": None, "ratios": {"books": 1.0}, "pad_last": True})
    m = json.loads((run_dir / "manifest.json").read_text())
    books = m["sources"]["books"]
    assert books["rows"] == -(-books["available_tokens"] // 64)
    assert books["padding_tokens"] == books["rows"] * 64 - books["available_tokens"] > 0
    con = duckdb.connect()
    con.execute(cli.shards_view_sql(str(run_dir)))
    pad = m["tokenizer"]["pad_id"]
    padded = con.execute(f"SELECT count(*) FROM shards WHERE input_ids[64] = {pad} AND input_ids[1] != {pad}").fetchone()
    assert padded[0] == 1  # exactly one row ends in padding
    assert cli.verify(str(run_dir)) == []


def test_every_shard_references_the_tokenizer_by_a_run_relative_path(run_dir, run_pack, tokenizer_file):
    import hashlib

    from gristmill.mixtures.shards import shard_tokenizer

    run_pack(run_dir, PARAMS)
    m = json.loads((run_dir / "manifest.json").read_text())
    ref = m["tokenizer"]
    assert ref["path"] == "tokenizer/tokenizer.json"
    assert ref["sha256"] == hashlib.sha256((run_dir / ref["path"]).read_bytes()).hexdigest()
    assert (ref["bos_id"], ref["eos_id"], ref["separator_id"], ref["pad_id"], ref["vocab_size"]) == (0, 0, 0, 1, 700)
    for entry in m["shards"]:
        assert shard_tokenizer(pq.ParquetFile(run_dir / entry["path"])) == ref
        raw = pq.read_metadata(run_dir / entry["path"]).metadata[b"gristmill.tokenizer"]
        assert str(run_dir).encode() not in raw


def test_a_tokenizer_from_outside_the_run_is_copied_into_it(run_dir, run_pack, tokenizer_file):
    (run_dir / "tokenizer" / "tokenizer.json").unlink()
    run_pack(run_dir, {**PARAMS, "tokenizer": str(tokenizer_file)})
    ref = json.loads((run_dir / "manifest.json").read_text())["tokenizer"]
    assert ref["path"] == "mixture/03-pack/tokenizer.json"
    assert (run_dir / ref["path"]).read_bytes() == tokenizer_file.read_bytes()
    assert cli.verify(str(run_dir)) == []


def test_verify_finds_a_shard_whose_tokenizer_reference_differs(run_dir, run_pack):
    run_pack(run_dir, PARAMS)
    m = json.loads((run_dir / "manifest.json").read_text())
    m["tokenizer"]["pad_id"] = 5
    (run_dir / "manifest.json").write_text(json.dumps(m))
    problems = cli.verify(str(run_dir), None)
    assert problems and all("tokenizer reference" in p for p in problems)
    assert len(problems) == len(m["shards"])


# --- packing in token ranges: the same shards for one range per source or many, and a resumable build ---------

# Ranges of two rows (chunk_tokens caps a packing task's tokens): most ranges start mid-document.
MANY_RANGES = 2 * PARAMS["seq_len"]
WHOLE_SOURCES = 1 << 30
IN_FILES = {"memory_staging_bytes": 0}  # staged through files, as a build too large for memory is
UPSAMPLED_PADDED = {**PARAMS, "mixture": None, "ratios": {"common_crawl": 0.5, "books": 0.3, "github": 0.2},
                    "default_max_epochs": 3.0, "pad_last": True}


def context(run_dir, seed=0, executor="local", parts=None) -> GlobalContext:
    return GlobalContext.for_step(run_dir, MixturePack.name, 3, parts or input_parts(run_dir), runtime_for(executor),
                                  seed)


def build(run_dir, params, seed=0, executor="local", parts=None) -> GlobalContext:
    """Build the mixture step on ``run_dir`` (a path or a Location); the context, with the build's stats."""
    ctx = context(run_dir, seed, executor, parts)
    MixturePack(params).build(ctx)
    return ctx


def fail_writing_shard_1(run_dir, params, seed=0) -> Path:
    """Build with a directory where shard 1 goes, so that writing it fails after every range is packed; the
    build's staging directory."""
    (run_dir / "shards" / "part-00001.parquet" / "x").mkdir(parents=True)
    ctx = context(run_dir, seed)
    with pytest.raises(OSError):
        MixturePack(params).build(ctx)
    shutil.rmtree(run_dir / "shards" / "part-00001.parquet")
    return Path(ctx.state.path) / "staging"


@pytest.mark.parametrize("params", [PARAMS, UPSAMPLED_PADDED], ids=["llama", "upsampled-padded"])
def test_shards_are_the_same_packed_in_one_range_per_source_or_in_many(
    tmp_path, doc_table, tokenizer_file, make_run_dir, params
):
    whole = make_run_dir(tmp_path / "whole", doc_table, tokenizer_file)
    ranged = make_run_dir(tmp_path / "ranged", doc_table, tokenizer_file, n_parts=5)
    one = build(whole, {**params, "chunk_tokens": WHOLE_SOURCES}, seed=7)
    many = build(ranged, {**params, "chunk_tokens": MANY_RANGES}, seed=7)
    sources = json.loads((whole / "manifest.json").read_text())["sources"]
    assert one.stats.counts["phase.pack.tasks"] == len(sources)
    assert many.stats.counts["phase.pack.tasks"] > 20 * len(sources)
    assert shard_bytes(whole) == shard_bytes(ranged)
    if params is UPSAMPLED_PADDED:  # documents repeat across ranges, and the last row of a source is padded
        assert sources["books"]["epochs"] > 1 and sources["books"]["padding_tokens"] > 0
    assert not (many.state / "staging").exists()


@pytest.mark.ray
def test_ranges_packed_on_ray_give_the_shards_of_one_range_per_source_in_process(
    ray_cluster, tmp_path, doc_table, tokenizer_file, make_run_dir
):
    local = make_run_dir(tmp_path / "local", doc_table, tokenizer_file)
    on_ray = make_run_dir(tmp_path / "ray", doc_table, tokenizer_file)
    build(local, {**UPSAMPLED_PADDED, "chunk_tokens": WHOLE_SOURCES}, seed=5)
    ctx = build(on_ray, {**UPSAMPLED_PADDED, "chunk_tokens": MANY_RANGES}, seed=5, executor="ray")
    assert ctx.stats.counts["phase.pack.tasks"] > 20
    assert shard_bytes(local) == shard_bytes(on_ray)


def uploaded_run(tmp_path, doc_table, tokenizer_file, make_run_dir, s3_query, name="pack"):
    """A run directory made locally and copied to the object store; it and its input parts there."""
    made = make_run_dir(tmp_path / f"to-upload-{name}", doc_table, tokenizer_file)
    remote = resolve(f"s3://gristmill-run/runs/{name}?{s3_query}")
    for path in sorted(made.rglob("*")):
        if path.is_file():
            (remote / path.relative_to(made).as_posix()).write_bytes(path.read_bytes())
    return remote, [remote / Path(p).relative_to(made).as_posix() for p in input_parts(made)]


def same_shards(local, remote) -> bool:
    manifest = json.loads((local / "manifest.json").read_text())
    return all((remote / e["path"]).read_bytes() == (local / e["path"]).read_bytes() for e in manifest["shards"])


@pytest.mark.parametrize("staging", [{}, IN_FILES], ids=["in-memory", "in-files"])
def test_ranges_packed_on_an_object_store_give_the_local_shards(
    tmp_path, doc_table, tokenizer_file, make_run_dir, s3_query, staging
):
    local = make_run_dir(tmp_path / "local", doc_table, tokenizer_file)
    build(local, {**PARAMS, **IN_FILES, "chunk_tokens": MANY_RANGES}, seed=2)
    remote, parts = uploaded_run(tmp_path, doc_table, tokenizer_file, make_run_dir, s3_query)
    build(remote, {**PARAMS, **staging, "chunk_tokens": MANY_RANGES}, seed=2, parts=parts)
    assert same_shards(local, remote)


def test_a_small_build_on_an_object_store_stages_nothing_and_reads_no_shard_back(
    tmp_path, doc_table, tokenizer_file, make_run_dir, s3_query, s3_requests
):
    """Staged in memory, the build's only request under staging/ is the listing that clears what an earlier
    build may have left; a shard is written once and its size and checksum come from the bytes written."""
    remote, parts = uploaded_run(tmp_path, doc_table, tokenizer_file, make_run_dir, s3_query)
    s3_requests.requests.clear()
    ctx = build(remote, {**PARAMS, "chunk_tokens": MANY_RANGES}, seed=2, parts=parts)
    staging = [r for r in s3_requests.requests if "staging" in r[1]]
    assert len(staging) == 1 and "list-type" in staging[0][1], staging
    shards = [r for r in s3_requests.requests if "/shards/part-" in r[1]]
    assert shards and {method for method, _ in shards} == {"PUT"}
    assert len(shards) == len(json.loads((remote / "manifest.json").read_text())["shards"])
    assert ctx.stats.counts["phase.pack.tasks"] > 20
    heads = [key for method, key in s3_requests.requests if method == "HEAD"]
    for read_directly in ("/tokenizer/tokenizer.json", "/plan.json"):  # not asked for before it is read
        assert sum(key.endswith(read_directly) for key in heads) <= 1, read_directly
    assert cli.verify(str(remote)) == []


def test_a_build_staged_in_files_asks_for_no_file_before_writing_it_and_reads_each_batch_in_one_request(
    tmp_path, doc_table, tokenizer_file, make_run_dir, s3_query, s3_requests
):
    """What an earlier build staged is found by one listing; a small staged file is read whole by one GET after
    its size (opened by its footer, then the batch, it was three)."""
    from collections import Counter

    remote, parts = uploaded_run(tmp_path, doc_table, tokenizer_file, make_run_dir, s3_query)
    s3_requests.requests.clear()
    build(remote, {**PARAMS, **IN_FILES, "chunk_tokens": MANY_RANGES}, seed=2, parts=parts)
    staged = [(m, key) for m, key in s3_requests.requests if "/staging/" in key and "list-type" not in key]
    written = set()
    for method, key in staged:
        if method in ("HEAD", "GET"):
            assert key.endswith("/KEY") or key in written, f"{method} {key} before it was written"
        written.add(key)
    reads = Counter(method for method, key in staged if "/split/" in key)
    assert reads["GET"] == reads["HEAD"] > 0
    assert not [key for method, key in s3_requests.requests if method == "HEAD" and "/shards/" in key]


def test_a_failed_build_keeps_what_it_staged_and_the_next_build_resumes_from_it(
    tmp_path, doc_table, tokenizer_file, make_run_dir
):
    params = {**PARAMS, **IN_FILES, "chunk_tokens": MANY_RANGES}
    clean = make_run_dir(tmp_path / "clean", doc_table, tokenizer_file)
    build(clean, params)
    run_dir = make_run_dir(tmp_path / "run", doc_table, tokenizer_file)
    staging = fail_writing_shard_1(run_dir, params)
    packed = sorted((staging / "packed").rglob("*.arrow"))
    split = sorted((staging / "split").rglob("*.arrow"))
    assert len(packed) > 20 and len(split) > 1
    # As if the build had died while packing: every other range, and one part's split file, not staged yet.
    for path in packed[::2] + split[:1]:
        path.unlink()
    resumed = build(run_dir, params)
    assert resumed.stats.counts["pack_ranges_reused"] == len(packed) - len(packed[::2])
    assert resumed.stats.counts["staged_split_files_reused"] == len(split) - 1
    assert shard_bytes(run_dir) == shard_bytes(clean)
    assert cli.verify(str(run_dir)) == []
    assert not staging.exists()


def test_a_build_with_other_inputs_or_seed_does_not_reuse_what_a_failed_one_staged(
    tmp_path, doc_table, tokenizer_file, make_run_dir
):
    params = {**PARAMS, **IN_FILES, "chunk_tokens": MANY_RANGES}
    clean = make_run_dir(tmp_path / "clean", doc_table, tokenizer_file)
    build(clean, params, seed=9)
    run_dir = make_run_dir(tmp_path / "run", doc_table, tokenizer_file)
    assert (fail_writing_shard_1(run_dir, params, seed=1) / "packed").exists()
    again = build(run_dir, params, seed=9)
    assert again.stats.counts["pack_ranges_reused"] == 0
    assert again.stats.counts["staged_split_files_reused"] == 0
    assert shard_bytes(run_dir) == shard_bytes(clean)
