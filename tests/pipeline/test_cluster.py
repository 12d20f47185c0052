"""The demo on a real multi-node Ray cluster with its inputs and run directory on an S3-compatible server.

A head that runs no tasks and two one-CPU worker nodes (``ray start``, tests/ray_nodes.py), moto's S3 server
on 127.0.0.1, and ``gristmill run --address`` as a separate driver process: the shards and the manifest must
be byte-identical to an in-process run of the same pipeline into a local directory, and nothing may be
written under the driver's or any node's working directory (every byte goes through the run's storage).
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
    nodes = ray_nodes.start(worker_cpus=[1, 1], env={**os.environ, **S3_ENV})
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
