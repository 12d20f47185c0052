"""The command line, run in-process through ``gristmill.pipeline.cli.main``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gristmill.pipeline.cli import main

from demo_pipeline import DEMO


@pytest.fixture
def pipeline_file(data_dir, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(DEMO.format(data=data_dir))
    return path


def test_validate_and_plan(pipeline_file, capsys):
    assert main(["validate", str(pipeline_file)]) == 0
    assert "ok:" in capsys.readouterr().out
    assert main(["plan", str(pipeline_file)]) == 0
    out = capsys.readouterr().out
    assert "segment 00-ingest" in out and "clean.boilerplate_v1" in out and "sources=['common_crawl']" in out


def test_validate_reports_yaml_path_and_exits_2(pipeline_file, capsys):
    pipeline_file.write_text(pipeline_file.read_text().replace("seed: 3", "seed: [3]"))
    assert main(["validate", str(pipeline_file)]) == 2
    err = capsys.readouterr().err
    assert err == f"{pipeline_file}:2: seed: Input should be a valid integer\n"


def test_run_then_sql_and_inspect(pipeline_file, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["run", str(pipeline_file), "--executor", "local", "--run-dir", str(run_dir), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["sql", str(run_dir), "SELECT source, count(*) AS n FROM documents GROUP BY 1 ORDER BY 1",
                 "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in rows] == ["common_crawl", "github"] and rows[1]["n"] == 10
    assert main(["sql", str(run_dir)]) == 0
    assert "documents" in capsys.readouterr().out
    assert main(["inspect", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "drops by reason" in out and "truncated_record" in out


def test_rerun_with_changed_plan_is_refused_then_forced(pipeline_file, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["run", str(pipeline_file), "--executor", "local", "--run-dir", str(run_dir), "--quiet"]
    assert main(args) == 0
    pipeline_file.write_text(pipeline_file.read_text().replace("seed: 3", "seed: 5"))
    assert main(args) == 2
    assert "committed by a different plan" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0


def test_inspect_missing_run_dir(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_console_script_validates_a_pipeline(pipeline_file):
    script = Path(sys.executable).parent / "gristmill"
    done = subprocess.run([str(script), "validate", str(pipeline_file)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok:")


def test_delegated_commands_receive_their_own_arguments(capsys):
    with pytest.raises(SystemExit) as done:
        main(["train-tokenizer", "--help"])
    assert done.value.code == 0
    assert "usage: gristmill train-tokenizer" in capsys.readouterr().out


def test_installed_command_works_outside_the_repository(tmp_path):
    """From another directory only the installed ``gristmill`` namespace is importable, not the repository's
    top-level folders: the demo (mixture presets included) must still validate."""
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
    out = subprocess.run([sys.executable, "-m", "gristmill", "plan", str(demo)], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "mixture.pack_v1" in out.stdout
