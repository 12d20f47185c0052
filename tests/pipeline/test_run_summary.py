"""``gristmill run`` ends with the run's totals: documents, shards, rows, tokens and where the report is."""

from __future__ import annotations

import json

import duckdb

from gristmill.pipeline.cli import main

from demo_pipeline import DEMO, PACKED


def test_run_prints_the_totals_of_a_packed_run_and_quiet_does_not(data_dir, tmp_path, capsys):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(PACKED.format(data=data_dir))
    run_dir = tmp_path / "run"
    assert main(["run", str(pipeline), "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    con = duckdb.connect()
    stages = f"read_parquet('{run_dir}/stats/stages.parquet')"
    read = con.execute(f"SELECT sum(rows_out) FROM {stages} WHERE step = 'ingest'").fetchone()[0]
    kept = con.execute(f"SELECT sum(rows_in) FROM {stages} WHERE stage = 'mixture.pack_v1'").fetchone()[0]
    assert out[-2:] == [
        f"documents: {read:,} read, {kept:,} kept; shards: {len(manifest['shards']):,}, rows: {manifest['rows']:,}, "
        f"tokens: {manifest['tokens']:,}",
        f"report: {run_dir / 'report.html'}",
    ]
    assert manifest["rows"] > 0 and len(manifest["shards"]) > 1 and kept < read

    assert main(["run", str(pipeline), "--run-dir", str(run_dir), "--quiet"]) == 0
    assert not any(line.startswith(("documents:", "report:")) for line in capsys.readouterr().out.splitlines())


def test_a_run_without_packing_says_so(data_dir, tmp_path, capsys):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(DEMO.format(data=data_dir))
    assert main(["run", str(pipeline), "--run-dir", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith("documents: ") and out[-2].endswith("kept; no shards (the pipeline packs none)")
    assert out[-1] == f"report: {tmp_path / 'run' / 'report.html'}"
