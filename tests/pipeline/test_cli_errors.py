"""Failures the user can fix end the real ``gristmill`` command with one ``error:`` line and a non-zero exit, no
traceback unless ``--debug``; a reader of stdout that goes away (``| head``) ends it quietly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gristmill.pipeline.cli import main

from demo_pipeline import DEMO


def gristmill(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gristmill", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=300)


def assert_one_error_line(done: subprocess.CompletedProcess, code: int, *fragments: str, run: bool = False) -> None:
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr
    assert run or len(lines) == 1, done.stderr  # only a run logs its progress on stderr before it fails
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in errors[0]


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-errors")
    pipeline = root / "p.yaml"
    pipeline.write_text(DEMO.format(data=data_dir))
    assert main(["run", str(pipeline), "--run-dir", str(root / "run"), "--quiet"]) == 0
    return root / "run"


def test_sql_syntax_error_is_one_line(run_dir):
    done = gristmill("sql", str(run_dir), "SELEC source FROM documents")
    assert_one_error_line(done, 2, "SQL: Parser Error", "SELEC")


def test_sql_unknown_table_is_one_line(run_dir):
    assert_one_error_line(gristmill("sql", str(run_dir), "SELECT * FROM nope"), 2, "SQL: ", "nope")


def test_debug_shows_the_traceback(run_dir):
    done = gristmill("--debug", "sql", str(run_dir), "SELEC 1")
    assert done.returncode != 0 and "Traceback" in done.stderr and "ParserException" in done.stderr


@pytest.mark.parametrize("command", [["inspect"], ["sql"], ["show", "--row", "0"], ["report"]])
def test_commands_on_a_directory_that_is_not_a_run_exit_non_zero(tmp_path, command):
    (tmp_path / "notes.txt").write_text("not a run")
    done = gristmill(command[0], str(tmp_path), *command[1:])
    assert_one_error_line(done, 2, f"{tmp_path}: not a run directory (no plan.json")


def test_broken_pipe_ends_with_one_line_and_no_traceback(run_dir):
    # The reader takes one line and goes away while gristmill still has thousands to write.
    proc = subprocess.Popen([sys.executable, "-m", "gristmill", "sql", str(run_dir),
                             "SELECT range AS n, repeat('x', 100) AS pad FROM range(200000)", "--format", "csv"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141
    assert first.startswith(b"n,pad")
    assert stderr == "error: output stopped early: its reader closed the pipe (broken pipe)\n"


def test_unreachable_object_store_input_names_the_uri(data_dir, tmp_path):
    uri = "s3://bucket/crawl/*.jsonl?endpoint_override=127.0.0.1:9&scheme=http"
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"name: s3\ninputs:\n  - source: c4\n    format: jsonl\n    paths: ['{uri}']\n"
                        "execution: {executor: local}\n")
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true"}
    done = gristmill("run", str(pipeline), "--run-dir", str(tmp_path / "run"), "--quiet", env=env)
    assert_one_error_line(done, 1, f"inputs[0].paths[0]: cannot list '{uri}'", "Could not connect")


def test_version_comes_from_the_package_metadata():
    from importlib import metadata

    done = gristmill("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"gristmill {metadata.version('gristmill')}"


def test_unreachable_http_input_is_not_reported_as_a_missing_file(tmp_path):
    url = "http://127.0.0.1:9/crawl/part-0.jsonl"  # port 9 (discard): nothing listens there
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"name: web\ninputs:\n  - source: c4\n    format: jsonl\n    paths: ['{url}']\n"
                        "execution: {executor: local}\n")
    done = gristmill("run", str(pipeline), "--run-dir", str(tmp_path / "run"), "--quiet")
    assert_one_error_line(done, 1, f"inputs[0].paths[0]: cannot reach '{url}' (source c4)", "Cannot connect")


def test_a_text_field_missing_from_a_dataset_names_the_input_and_the_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "hub" / "data").mkdir(parents=True)
    shard = tmp_path / "hub" / "data" / "train-00000-of-00001.parquet"
    pq.write_table(pa.table({"content": ["a document"]}), shard)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("name: hub\ninputs:\n  - source: wikipedia\n    format: hf\n    paths: [hub]\n"
                        "execution: {executor: local}\n")
    done = gristmill("run", str(pipeline), "--run-dir", str(tmp_path / "run"), "--quiet")
    assert_one_error_line(done, 2, "inputs[0] (source wikipedia)", f"{shard}: no column 'text'",
                          "columns are ['content']", run=True)
