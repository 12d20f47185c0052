from __future__ import annotations

import pytest

from gristmill.core.storage import resolve
from gristmill.mixtures.export.exporter import FORMATS, export_run
from gristmill.mixtures.shards import ManifestError

PARAMS = {"mixture": "llama", "seq_len": 48, "rows_per_shard": 40, "row_group_rows": 16}


def upload(local_dir, uri: str) -> None:
    root = resolve(uri)
    for path in sorted(local_dir.rglob("*")):
        if path.is_file():
            (root / path.relative_to(local_dir).as_posix()).write_bytes(path.read_bytes())


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_run_on_an_object_store_exports_the_same_bytes(run_dir, run_pack, tmp_path, s3_query, fmt):
    run_pack(run_dir, PARAMS)
    local = export_run(run_dir, fmt, tmp_path / "local")
    run_uri = f"s3://gristmill-run/runs/r1?{s3_query}"
    upload(run_dir, run_uri)
    out_uri = f"s3://gristmill-run/exports/{fmt}?{s3_query}"
    remote = export_run(run_uri, fmt, out_uri)
    assert remote["files"] == local["files"]
    for name in local["files"]:
        assert (resolve(out_uri) / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert (resolve(out_uri) / "export.json").read_json()["run"] == run_uri


def test_unknown_format_and_a_run_without_shards_are_refused(tmp_path, run_dir):
    with pytest.raises(ValueError, match="unknown export format 'csv'; one of: megatron, mds, jsonl, hf-tokenizer"):
        export_run(run_dir, "csv", tmp_path / "out")
    with pytest.raises(ManifestError, match="no manifest"):
        export_run(run_dir, "megatron", tmp_path / "out")
