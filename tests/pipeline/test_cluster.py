"""The demo on a real multi-node Ray cluster with its inputs and run directory on an S3-compatible server.

A head that runs no tasks and two one-CPU worker nodes (``ray start``, tests/ray_nodes.py), moto's S3 server
on 127.0.0.1, and ``gristmill run --address`` as a separate driver process: the shards and the manifest must
be byte-identical to an in-process run of the same pipeline into a local directory, and nothing may be
written under the driver's or any node's working directory (every byte goes through the run's storage). On the
same cluster: every command reads that run, a second driver on a run directory is refused, a killed worker
process loses nothing, and a killed driver is resumed with identical output.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pyarrow.fs as pafs
import pytest

import ray_nodes

from gristmill.core.storage import resolve
from gristmill.pipeline import LocalExecutor, RunDir, build_plan, run_plan
from gristmill.pipeline.spec import load_pipeline

REPO = Path(__file__).resolve().parents[2]
BUCKET = "gristmill-cluster"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_EC2_METADATA_DISABLED": "true"}

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server; yields the URI query every s3:// path of the tests carries."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in S3_ENV.items():
            mp.setenv(key, value)
        pafs.S3FileSystem(endpoint_override=f"http://{host}:{port}", region="us-east-1",
                          allow_bucket_creation=True).create_dir(BUCKET)
        yield f"endpoint_override={host}:{port}&scheme=http"
    server.stop()


@pytest.fixture(scope="module")
def demo_on_s3(s3, tmp_path_factory) -> Path:
    """examples/demo.yaml with every input file uploaded to the S3 server and read from there."""
    data = REPO / "tests" / "data"
    for folder in ("warc", "demo", "python-stdlib"):
        for f in (data / folder).rglob("*"):
            if f.is_file():
                resolve(f"s3://{BUCKET}/data/{f.relative_to(data)}?{s3}").write_bytes(f.read_bytes())
    text = (REPO / "examples" / "demo.yaml").read_text()
    text = text.replace('relative_to: ../tests/data', f'relative_to: "s3://{BUCKET}/data?{s3}"')
    for path in sorted(set(_quoted_paths(text)), key=len, reverse=True):
        text = text.replace(f'"{path}"', f'"s3://{BUCKET}/data/{path[len("../tests/data/"):]}?{s3}"')
    assert "../tests/data" not in text
    pipeline = tmp_path_factory.mktemp("pipeline") / "demo-s3.yaml"
    pipeline.write_text(text)
    return pipeline


def _quoted_paths(text: str) -> list[str]:
    return [part for part in text.split('"') if part.startswith("../tests/data/")]


@pytest.fixture(scope="module")
def local_reference(demo_on_s3, tmp_path_factory) -> Path:
    """The same pipeline in this process, into a local run directory."""
    spec, base = load_pipeline(demo_on_s3)
    plan = build_plan(spec.model_copy(update={"execution": spec.execution.model_copy(update={"executor": "local"})}),
                      base)
    run_dir = tmp_path_factory.mktemp("local") / "run"
    run_plan(plan, RunDir(run_dir), LocalExecutor(), log=lambda m: None)
    return run_dir


@pytest.fixture(scope="module")
def cluster():
    nodes = ray_nodes.start(worker_cpus=[1, 1], env={**os.environ, **S3_ENV}, dashboard=True)
    yield nodes
    ray_nodes.stop(nodes.root)


def test_demo_on_two_worker_nodes_and_s3_matches_the_local_run(cluster, s3, demo_on_s3, local_reference, tmp_path):
    run_dir = f"s3://{BUCKET}/runs/demo?{s3}"
    driver_dir = tmp_path / "driver"
    driver_dir.mkdir()
    done = subprocess.run(
        [str(ray_nodes.BIN / "gristmill"), "run", str(demo_on_s3), "--address", cluster.address,
         "--run-dir", run_dir, "--quiet"],
        env={**cluster.driver_env(), **S3_ENV}, cwd=driver_dir, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    remote = resolve(run_dir)
    assert (remote / "manifest.json").read_bytes() == (local_reference / "manifest.json").read_bytes()
    local_shards = sorted((local_reference / "shards").glob("*.parquet"))
    assert local_shards and [s.name for s in (remote / "shards").iterdir()] == [s.name for s in local_shards]
    for shard in local_shards:
        assert (remote / "shards" / shard.name).read_bytes() == shard.read_bytes(), shard.name
    # The run's state lives on the object store, not on the disk of whichever process computed it.
    assert {p.name for p in remote.iterdir()} >= {"segments", "dedup", "tokenizer", "shards", "stats", "plan.json"}
    assert ray_nodes.files_under(driver_dir) == []
    for node_dir in cluster.node_dirs:
        assert ray_nodes.files_under(node_dir) == [], node_dir


def test_every_command_reads_the_run_on_the_object_store(cluster, s3, local_reference, tmp_path, capsys):
    """inspect, sql, show, verify, report, train-tokenizer and the shard reader on the s3:// run directory the
    cluster wrote (the previous test), with the same answers as on the local reference run."""
    from gristmill.mixtures.shards import ShardReader
    from gristmill.pipeline.cli import main

    run_dir = f"s3://{BUCKET}/runs/demo?{s3}"
    if not resolve(run_dir).exists():
        pytest.skip("needs the cluster run of the previous test")
    from gristmill.pipeline.inspection import connect

    query = "SELECT source, count(*) AS n, sum(strlen(text)) FROM documents GROUP BY 1 ORDER BY 1"
    assert connect(run_dir).execute(query).fetchall() == connect(local_reference).execute(query).fetchall()
    assert main(["sql", run_dir, query]) == 0 and "common_crawl" in capsys.readouterr().out
    assert main(["inspect", run_dir]) == 0 and "documents per step and source" in capsys.readouterr().out
    assert main(["show", run_dir, "--row", "0"]) == 0 and "--- doc_id" in capsys.readouterr().out
    assert main(["verify", run_dir]) == 0
    assert main(["report", run_dir]) == 0
    assert b"gristmill report" in resolve(f"s3://{BUCKET}/runs/demo/report.html?{s3}").read_bytes()
    assert main(["train-tokenizer", run_dir, "--vocab-size", "400", "--output", str(tmp_path / "tok")]) == 0
    assert (tmp_path / "tok" / "tokenizer.json").is_file()
    remote_rows = [row.tobytes() for row in ShardReader(run_dir)]
    assert remote_rows == [row.tobytes() for row in ShardReader(str(local_reference))]


def _workers_of(node_dir: Path) -> list[int]:
    """Ray worker processes (tasks and actors) that run in a node's directory. The node's agents name themselves
    ``ray::DashboardAgent`` / ``ray::RuntimeEnvAgent`` too; killing one takes the whole node down (the raylet
    fate-shares with its agents), which is another test than a lost worker."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            name = cmdline.split(b"\0", 1)[0]
            if (name.startswith(b"ray::") and not name.endswith(b"Agent")
                    and os.readlink(f"/proc/{entry}/cwd") == str(node_dir)):
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def test_the_readme_submit_example_on_the_object_store(cluster, s3, local_reference, tmp_path):
    """README's cluster example as written: ``gristmill submit examples/demo.yaml --address http://HEAD:8265
    --run-dir s3://BUCKET/runs/demo`` (plus the endpoint options a non-AWS server needs in the URI's query), the
    job's driver on the head, the work on the two worker nodes: the shards are the local run's."""
    run_dir = f"s3://{BUCKET}/runs/submitted?{s3}"
    done = subprocess.run(
        [str(ray_nodes.BIN / "gristmill"), "submit", "examples/demo.yaml", "--address", cluster.dashboard,
         "--run-dir", run_dir, "--wait"],
        env={**cluster.driver_env(), **S3_ENV}, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    remote = resolve(run_dir)
    local_shards = sorted((local_reference / "shards").glob("*.parquet"))
    assert [s.name for s in (remote / "shards").iterdir()] == [s.name for s in local_shards]
    for shard in local_shards:
        assert (remote / "shards" / shard.name).read_bytes() == shard.read_bytes(), shard.name


def test_second_driver_is_refused_and_a_killed_worker_loses_nothing(cluster, s3, demo_on_s3, local_reference,
                                                                    tmp_path):
    """Two drivers on one run directory of the object store: the second stops at once naming the first; a worker
    process of one node killed mid-run is replaced by Ray, and the output is still the local run's."""
    import signal
    import time

    run_dir = f"s3://{BUCKET}/runs/concurrent?{s3}"
    command = [str(ray_nodes.BIN / "gristmill"), "run", str(demo_on_s3), "--address", cluster.address,
               "--run-dir", run_dir, "--quiet"]
    env = {**cluster.driver_env(), **S3_ENV}
    first = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        lease = resolve(f"s3://{BUCKET}/runs/concurrent/_LEASE?{s3}")
        deadline = time.monotonic() + 120
        while not lease.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and str(first.pid) in second.stderr, second.stderr

        killed = None
        while killed is None and time.monotonic() < deadline and first.poll() is None:
            workers = _workers_of(cluster.node_dirs[1])
            if workers:
                killed = workers[0]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.2)
        assert killed is not None, "no worker process of node 1 to kill while the run went on"
        out, err = first.communicate(timeout=900)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, out[-3000:] + err[-3000:]
    remote = resolve(run_dir)
    for shard in sorted((local_reference / "shards").glob("*.parquet")):
        assert (remote / "shards" / shard.name).read_bytes() == shard.read_bytes(), shard.name
    assert (remote / "manifest.json").read_bytes() == (local_reference / "manifest.json").read_bytes()


def test_killed_driver_is_resumed_with_identical_output(cluster, s3, demo_on_s3, local_reference, tmp_path):
    """The driver killed once the first segment is committed: its lease is left on the object store, the rerun
    takes it over with --force-unlock, skips what was committed and ends with the local run's bytes."""
    import signal
    import time

    run_dir = f"s3://{BUCKET}/runs/killed?{s3}"
    command = [str(ray_nodes.BIN / "gristmill"), "run", str(demo_on_s3), "--address", cluster.address,
               "--run-dir", run_dir]
    env = {**cluster.driver_env(), **S3_ENV}
    first = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    committed = resolve(f"s3://{BUCKET}/runs/killed/segments/00-ingest/_SUCCESS?{s3}")
    deadline = time.monotonic() + 300
    while not committed.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert committed.exists(), "the driver ended before its first commit"

    refused = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "--force-unlock" in refused.stderr, refused.stderr
    again = subprocess.run([*command, "--force-unlock"], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "00-ingest: committed, skipped" in again.stdout + again.stderr
    remote = resolve(run_dir)
    for shard in sorted((local_reference / "shards").glob("*.parquet")):
        assert (remote / "shards" / shard.name).read_bytes() == shard.read_bytes(), shard.name
    assert (remote / "manifest.json").read_bytes() == (local_reference / "manifest.json").read_bytes()
