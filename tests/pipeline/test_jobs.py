"""pipeline/jobs.py: building submissions, the auth token, and a real ``ray start --head`` on localhost that
runs the demo through ``gristmill submit`` (token authentication on) and through a plain ``ray job submit``."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gristmill.pipeline import jobs
from gristmill.pipeline.jobs import JobError, build_submission, load_runtime_env, read_auth_token

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HEAD_PATH = "/usr/bin:/bin"


# --- submissions (no cluster) ---------------------------------------------------------------------------------

def test_packaged_submission_runs_the_checkout_on_the_cluster(tmp_path):
    entrypoint, env, metadata = build_submission(str(REPO / "examples" / "demo.yaml"), run_dir="/shared/runs/demo",
                                                 working_dir=str(REPO))
    assert entrypoint == jobs.job_command({}, ["-m", "gristmill", "run", "examples/demo.yaml", "--run-dir",
                                               "/shared/runs/demo", "--executor", "ray", "--quiet"])
    assert env["working_dir"] == str(REPO) and ".venv" in env["excludes"] and ".git" in env["excludes"]
    assert metadata == {"gristmill_pipeline": "demo", "gristmill_run_dir": "/shared/runs/demo"}


def test_installed_submission_uploads_only_the_pipeline(tmp_path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text((REPO / "examples" / "demo.yaml").read_text()
                        .replace("../tests/data", str(REPO / "tests" / "data")))
    entrypoint, env, _ = build_submission(str(pipeline), run_dir="s3://bucket/runs/demo", installed=True,
                                          runtime_env={"env_vars": {"A": "1"}}, force=True)
    assert entrypoint == jobs.job_command(env, ["-m", "gristmill", "run", "p.yaml", "--run-dir",
                                                "s3://bucket/runs/demo", "--executor", "ray", "--quiet", "--force"])
    assert os.listdir(env["working_dir"]) == ["p.yaml"] and env["env_vars"] == {"A": "1"}


def test_the_job_runs_on_the_interpreter_of_its_runtime_environment():
    # Declared: py_executable (or --python, which also runs the job's workers on it).
    assert jobs.job_command({"py_executable": "uv run --frozen"}, ["-m", "x"]) == "uv run --frozen -m x"
    entrypoint, env, _ = build_submission(str(REPO / "examples" / "demo.yaml"), run_dir="/shared/run",
                                          working_dir=str(REPO), python="/opt/env/bin/python")
    assert entrypoint.startswith("/opt/env/bin/python -m gristmill run ")
    assert env["py_executable"] == "/opt/env/bin/python"
    # An environment Ray builds and activates in the job's shell: its `python`.
    assert jobs.job_command({"pip": ["duckdb"]}, ["-m", "x"]) == "python -m x"
    # Otherwise the interpreter Ray's workers run on (the real head below has no `python` on its PATH).
    assert "--python_worker_command" in jobs.job_command({"env_vars": {"A": "1"}}, ["-m", "x"])


@pytest.mark.parametrize("address, in_clear", [
    ("http://10.1.2.3:8265", True), ("10.1.2.3:8265", True), ("http://head.example:8265", True),
    ("https://head.example:8265", False), ("http://127.0.0.1:8265", False), ("127.0.0.1:8265", False),
    ("http://localhost:8265", False), ("http://[::1]:8265", False), ("auto", False),
])
def test_which_addresses_carry_the_token_in_clear(address, in_clear):
    assert jobs.sends_in_clear(address) is in_clear


def _this_machines_address() -> str | None:
    """A non-loopback address of this machine, where one is routed (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


def test_the_token_is_not_sent_in_clear_without_a_warning(monkeypatch, capsys):
    from gristmill.pipeline.cli import main

    machine = _this_machines_address()
    if machine is None:
        pytest.skip("this machine has no non-loopback address")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "secret-token")
    port = _free_port()  # nothing listens there: the command then fails, after the warning
    assert main(["status", "some-job", "--address", f"http://{machine}:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"warning: sending the Ray auth token unencrypted over http to http://{machine}:{port}")
    assert "secret-token" not in err
    assert main(["status", "some-job", "--address", f"http://127.0.0.1:{port}"]) == 2
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, message", [
    ({"run_dir": "runs/demo", "working_dir": str(REPO)}, "is relative"),
    ({"working_dir": str(REPO)}, "no run directory"),
    ({"run_dir": "/shared/run", "working_dir": "/usr"}, "not inside the working directory"),
    ({"run_dir": "/shared/run", "installed": True}, r"inputs\[0\].paths\[0\] is relative"),
])
def test_submissions_that_cannot_work_are_refused(kwargs, message):
    with pytest.raises(JobError, match=message):
        build_submission(str(REPO / "examples" / "demo.yaml"), **kwargs)


def test_an_invalid_pipeline_is_refused_before_upload(tmp_path):
    from gristmill.pipeline.spec import SpecError

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ninputs: [{source: a, format: jsonl, paths: [a]}]\nsteps: [{stage: no.such_v1}]\n")
    with pytest.raises(SpecError, match="unknown stage 'no.such_v1'"):
        build_submission(str(bad), run_dir="/shared/run", working_dir=str(tmp_path))


def test_runtime_env_yaml_is_loaded_safely(tmp_path):
    env_file = tmp_path / "env.yaml"
    env_file.write_text("env_vars: {OMP_NUM_THREADS: '1'}\npip: [duckdb]\n")
    assert load_runtime_env(env_file) == {"env_vars": {"OMP_NUM_THREADS": "1"}, "pip": ["duckdb"]}
    env_file.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(JobError, match="not valid YAML"):
        load_runtime_env(env_file)
    env_file.write_text("- a\n- b\n")
    with pytest.raises(JobError, match="must be a mapping"):
        load_runtime_env(env_file)
    with pytest.raises(JobError, match="cannot read"):
        load_runtime_env(tmp_path / "missing.yaml")


def test_auth_token_is_found_where_ray_looks(tmp_path, monkeypatch):
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert read_auth_token() == "from-env"
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    assert read_auth_token() == "from-file"
    token_file.write_text("")
    with pytest.raises(JobError, match="empty"):
        read_auth_token()
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert read_auth_token() is None
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-home")
    assert read_auth_token() == "from-home"


def test_commands_without_an_address_fail_with_a_message(monkeypatch, capsys):
    from gristmill.pipeline.cli import main

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    assert main(["status", "some-job"]) == 2
    assert "no cluster address" in capsys.readouterr().err


# --- a real Ray head on localhost -------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_mentioning(marker: str) -> list[int]:
    """Processes whose command line names ``marker`` (the head's own temp dir): that head's processes only,
    never the test session's Ray or anyone else's."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path("/proc", entry, "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            pids.append(int(entry))
    return pids


def stop_head(temp_dir: str, grace: float = 4.0) -> None:
    """``ray stop`` stops every Ray on the machine; this stops only the head started in ``temp_dir``."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        pids = _pids_mentioning(temp_dir)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while _pids_mentioning(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.2)


@pytest.fixture(scope="module")
def ray_head():
    # A short path: Ray's unix sockets live under the temp dir and socket paths are limited to ~107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="gm-head-", dir="/tmp")
    token_path = Path(temp_dir, "auth_token")
    token_path.write_text(os.urandom(16).hex())
    dashboard_port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    # The head runs this virtual environment's Ray without it on its PATH, where neither gristmill nor a
    # `python` with Ray is found: a job's driver must run on the interpreter Ray's workers run on.
    head_env = {**env, "PATH": HEAD_PATH}
    assert shutil.which("gristmill", path=HEAD_PATH) is None
    cmd = [str(BIN / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", "0",
           "--num-cpus", "2", "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
           "--dashboard-port", str(dashboard_port), "--dashboard-agent-listen-port", str(_free_port()),
           "--temp-dir", os.path.join(temp_dir, "ray"), "--disable-usage-stats"]
    try:
        done = subprocess.run(cmd, env=head_env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        yield {"address": f"http://127.0.0.1:{dashboard_port}", "token_path": str(token_path), "dir": temp_dir,
               "env": {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}}
    finally:
        stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _gristmill(args: list[str], env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "gristmill"), *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.ray
@pytest.mark.slow
def test_submit_demo_to_a_real_head_and_read_the_result(ray_head):
    import duckdb

    run_dir = os.path.join(ray_head["dir"], "run")
    env, address = ray_head["env"], ray_head["address"]

    done = _gristmill(["submit", "examples/crawl-clean.yaml", "--address", address, "--run-dir", run_dir, "--wait"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = done.stdout.strip()
    assert re.fullmatch(r"gristmill-crawl-clean-[0-9a-f]{8}", job_id)

    status = _gristmill(["status", job_id, "--address", address], env)
    assert status.returncode == 0 and f"{job_id}  SUCCEEDED" in status.stdout
    assert f"run_dir: {run_dir}" in status.stdout
    logs = _gristmill(["logs", job_id, "--address", address], env)
    assert "segment 00-ingest: running ingest" in logs.stdout and f"run directory: {run_dir}" in logs.stdout

    rows = duckdb.sql(f"SELECT source, count(*) FROM read_parquet('{run_dir}/segments/00-ingest/part-*.parquet') "
                      "GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [("common_crawl", 9), ("github", 10)]  # the demo's documents, as in a local run

    # Token authentication is on: a wrong token is refused with a message, not a traceback.
    wrong = _gristmill(["status", job_id, "--address", address], {**env, "RAY_AUTH_TOKEN": "not-the-token"})
    assert wrong.returncode == 2 and "Invalid authentication token" in wrong.stderr

    # A plain `ray job submit -- gristmill run` works too: the job joins the cluster through RAY_ADDRESS, and
    # finds the segment the first job committed in the same run directory.
    plain = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(REPO),
         # The same files as gristmill's upload, so the same content-addressed package path on the cluster:
         # the plan hash covers the input files' absolute paths, which live inside that package.
         "--runtime-env-json", json.dumps({"excludes": jobs.DEFAULT_EXCLUDES}),
         # The head's PATH has no `python` with gristmill: a plain entrypoint names the interpreter.
         "--", str(BIN / "python"), "-m", "gristmill", "run", "examples/crawl-clean.yaml", "--run-dir", run_dir,
         "--quiet"],
        # Ray's own CLI sends the token only when RAY_AUTH_MODE=token is set on the submitting side.
        env={**env, "RAY_AUTH_MODE": "token"}, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "segment 00-ingest: committed, skipped" in plain.stdout + plain.stderr


@pytest.mark.ray
@pytest.mark.slow
def test_stop_and_unknown_jobs(ray_head):
    env, address = ray_head["env"], ray_head["address"]
    missing = _gristmill(["stop", "no-such-job", "--address", address], env)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    status = _gristmill(["status", "no-such-job", "--address", address], env)
    assert status.returncode == 2


@pytest.mark.ray
@pytest.mark.slow
def test_status_exits_non_zero_for_failed_and_stopped_jobs(ray_head):
    from ray.job_submission import JobStatus, JobSubmissionClient

    env, address = ray_head["env"], ray_head["address"]
    token = Path(ray_head["token_path"]).read_text()
    client = JobSubmissionClient(address, headers={"Authorization": f"Bearer {token}"})
    failed = client.submit_job(entrypoint="exit 3")
    stopped = client.submit_job(entrypoint="sleep 120")
    _wait_for(lambda: client.get_job_status(stopped) == JobStatus.RUNNING)
    stop = _gristmill(["stop", stopped, "--address", address], env)
    assert stop.returncode == 0 and "stop requested" in stop.stdout
    for job, state in ((failed, "FAILED"), (stopped, "STOPPED")):
        _wait_for(lambda: client.get_job_status(job).is_terminal())
        status = _gristmill(["status", job, "--address", address], env)
        assert status.returncode == jobs.EXIT_JOB_FAILED and f"{job}  {state}" in status.stdout, status.stderr
        # The head listens on 127.0.0.1: the token stays on this machine, no warning.
        assert "warning" not in status.stderr


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def test_stop_head_only_touches_processes_naming_its_dir(tmp_path):
    marker = str(tmp_path / "unique-marker")
    mine = subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(60)", marker])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _pids_mentioning(marker) == [mine.pid]
        stop_head(marker, grace=5)
        assert mine.wait(timeout=5) == -signal.SIGTERM and other.poll() is None
    finally:
        for proc in (mine, other):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_jobs_module_names_no_ray_at_import():
    # `gristmill validate` and friends build the parser, which adds these commands: no Ray import for that.
    code = "import sys, gristmill.pipeline.cli as c; c.build_parser(); print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
    assert jobs.EXIT_USAGE == 2
