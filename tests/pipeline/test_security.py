"""What the embedded local Ray (``init_local_ray``, as ``gristmill run`` starts it) exposes: every TCP socket its
processes listen on, and what each answers to an HTTP request that carries no token."""

from __future__ import annotations

import http.client
import json
import ipaddress
import os
import socket
import time
from pathlib import Path

import pytest

from gristmill.pipeline.executors import SINGLE_MACHINE_ENV


def _listening_sockets() -> dict[str, tuple[str, int]]:
    """Socket inode -> (address, port) of every listening TCP socket in this network namespace."""
    sockets = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A":  # TCP_LISTEN
                continue
            hex_address, hex_port = local.split(":")
            raw = bytes.fromhex(hex_address)
            # The kernel prints each 32-bit word of the address in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            sockets[inode] = (socket.inet_ntop(family, raw), int(hex_port, 16))
    return sockets


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _process_name(pid: int) -> str:
    try:
        return Path("/proc", str(pid), "cmdline").read_bytes().split(b"\0")[0].decode()[:80]
    except OSError:
        return "?"


def _is_ray_process(pid: int) -> bool:
    """A process of the embedded Ray: its program lives in the ray package, or Ray named it ``ray::...``."""
    try:
        cmdline = Path("/proc", str(pid), "cmdline").read_bytes()
    except OSError:
        return False
    return cmdline.startswith(b"ray::") or any(f"{packages}/ray/".encode() in cmdline
                                               for packages in ("site-packages", "dist-packages"))


def ray_listeners() -> set[tuple[int, str, int]]:
    """(pid, address, port) of every socket listened on by this process (the driver) and the Ray processes it
    started: the embedded Ray's GCS, raylet, agents, dashboard, autoscaler monitor and workers."""
    sockets = _listening_sockets()
    found = set()
    me = os.getpid()
    for pid in [p for p in _descendants(me) if p == me or _is_ray_process(p)]:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in sockets:
                found.add((pid, *sockets[target[8:-1]]))
    return found


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


def http_status(address: str, port: int, path: str) -> int | None:
    """The status of an unauthenticated GET, or None where the socket speaks no HTTP/1 (Ray's gRPC ports)."""
    host = "127.0.0.1" if ipaddress.ip_address(address).is_unspecified else address
    if ipaddress.ip_address(host).version == 6 and ipaddress.ip_address(host).ipv4_mapped is None:
        host = f"[{host}]"
    connection = http.client.HTTPConnection(host.removeprefix("::ffff:"), port, timeout=3)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def _settled_listeners(quiet_s: float = 2.0, limit_s: float = 20.0) -> set[tuple[int, str, int]]:
    """The agents open their servers after ``ray.init`` returns: wait until the set stops changing."""
    deadline = time.monotonic() + limit_s
    seen, since = ray_listeners(), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.5)
        now = ray_listeners()
        if now != seen:
            seen, since = now, time.monotonic()
    return seen


@pytest.mark.ray
def test_embedded_ray_answers_no_unauthenticated_http_beyond_loopback(ray_cluster):
    ray = ray_cluster
    ray.get(ray.remote(lambda: os.getpid()).remote())  # a worker process, listening like the others
    listeners = _settled_listeners()
    assert len({pid for pid, _, _ in listeners}) >= 4, listeners  # driver, GCS, raylet, agents, workers

    exposed = {(pid, address, port) for pid, address, port in listeners if not _is_loopback(address)}
    answered = {(_process_name(pid), address, port, path, status)
                for pid, address, port in exposed for path in ("/metrics", "/")
                if (status := http_status(address, port, path)) is not None and status < 300}
    assert not answered, f"answer an unauthenticated GET beyond loopback: {answered}"
    # What Ray lets us keep off the network, it keeps: every process of the node listens on loopback only.
    assert not exposed, [(_process_name(pid), address, port) for pid, address, port in exposed]
    # The switch that keeps it there is not handed down to `ray start` processes of a real cluster.
    assert SINGLE_MACHINE_ENV not in os.environ


# --- ${ENV} values stay out of the run directory ---------------------------------------------------------------

PIPELINE_WITH_REFERENCES = """
name: with-references
seed: 42
inputs:
  - source: github
    format: text
    paths: ["${GM_TEST_DATA}/python-stdlib/*.py"]
    options: {files_per_unit: 4, relative_to: "${GM_TEST_DATA}"}
steps:
  - stage: clean.normalize_v1
  # A credential in a stage's params: here a filter that keeps every document (none is the token itself).
  - filter: {all: [{col: text, ne: "${GM_TEST_SECRET}"}]}
    reason: "${GM_TEST_REASON:-filtered}"
output:
  rejects: true
"""


def _pipeline_file(tmp_path: Path, text: str = PIPELINE_WITH_REFERENCES) -> Path:
    path = tmp_path / "with-references.yaml"
    path.write_text(text)
    return path


def test_env_values_appear_nowhere_in_the_run_directory(tmp_path, monkeypatch, data_dir):
    from gristmill.pipeline.cli import main

    secret = "s3cr3t-" + os.urandom(8).hex()
    monkeypatch.setenv("GM_TEST_SECRET", secret)
    monkeypatch.setenv("GM_TEST_DATA", str(data_dir))
    run_dir = tmp_path / "run"
    assert main(["run", str(_pipeline_file(tmp_path)), "--run-dir", str(run_dir), "--executor", "local",
                 "--quiet"]) == 0

    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) > 5
    assert [p for p in files if secret.encode() in p.read_bytes()] == []
    plan = json.loads((run_dir / "plan.json").read_text())
    filter_step = plan["pipeline"]["steps"][1]
    assert filter_step["filter"] == {"all": [{"col": "text", "ne": "${GM_TEST_SECRET}"}]}
    assert filter_step["reason"] == "${GM_TEST_REASON:-filtered}"
    assert plan["segments"][0]["steps"][2]["params"]["expr"] == filter_step["filter"]
    assert plan["pipeline"]["inputs"][0]["paths"] == ["${GM_TEST_DATA}/python-stdlib/*.py"]
    assert all(f["path"].startswith("${GM_TEST_DATA}/python-stdlib/") for f in plan["input_files"])


def test_hashes_follow_the_resolved_values_not_how_they_were_written(tmp_path, data_dir):
    from gristmill.pipeline.plan import build_plan
    from gristmill.pipeline.spec import parse_pipeline

    def plan_of(text: str, **env: str):
        return build_plan(parse_pipeline(text, "p.yaml", env={"GM_TEST_DATA": str(data_dir), **env}), tmp_path)

    one = plan_of(PIPELINE_WITH_REFERENCES, GM_TEST_SECRET="a")
    assert plan_of(PIPELINE_WITH_REFERENCES, GM_TEST_SECRET="a").plan_hash == one.plan_hash
    # A value written out instead of referenced runs the same pipeline: the same hashes.
    literal = PIPELINE_WITH_REFERENCES.replace("${GM_TEST_SECRET}", "a").replace("${GM_TEST_DATA}", str(data_dir))
    assert plan_of(literal, GM_TEST_SECRET="unused").plan_hash == one.plan_hash
    # Another value is another pipeline: the segment that runs the step, and those after it, are rebuilt.
    other = plan_of(PIPELINE_WITH_REFERENCES, GM_TEST_SECRET="b")
    assert other.segments[-1].hash != one.segments[-1].hash and other.plan_hash != one.plan_hash


def test_only_what_a_reference_resolved_to_is_put_back(data_dir):
    from gristmill.pipeline.spec import env_references, parse_pipeline

    text = PIPELINE_WITH_REFERENCES.replace('reason: "${GM_TEST_REASON:-filtered}"', 'reason: "the ${SHORT} rule"')
    refs = env_references(parse_pipeline(text, env={"GM_TEST_DATA": str(data_dir), "GM_TEST_SECRET": "x",
                                                     "SHORT": "en"}))
    # A step's params: whole strings only, so other strings holding the same letters stay as they are.
    params = {"reason": "the en rule", "mode": "sentence", "expr": {"all": [{"col": "text", "ne": "x"}]}}
    assert refs.conceal(params, "steps[1].") == {"reason": "the ${SHORT} rule", "mode": "sentence",
                                                 "expr": {"all": [{"col": "text", "ne": "${GM_TEST_SECRET}"}]}}
    assert refs.conceal(params, "steps[0].") == params
    # A file a referenced glob matched: the variable's value inside it.
    assert refs.conceal_within(f"{data_dir}/python-stdlib/abc.py", "inputs[0].paths") == \
        "${GM_TEST_DATA}/python-stdlib/abc.py"


@pytest.mark.ray
def test_embedded_ray_serves_no_metrics_even_on_loopback(ray_cluster):
    """Metrics collection is off in the embedded Ray (``RAY_enable_metrics_collection`` in ``LOCAL_RAY_ENV``): the
    metrics agent answers no Prometheus scrape (with collection on, it does). The autoscaler monitor and the
    dashboard head serve their own process metrics on loopback either way; that setting does not reach them."""
    ray = ray_cluster
    ray.get(ray.remote(lambda: os.getpid()).remote())
    scraped = []
    own_metrics = (b"autoscaler/_private/monitor.py", b"dashboard/dashboard.py")
    for pid, address, port in _settled_listeners():
        if any(name in Path("/proc", str(pid), "cmdline").read_bytes() for name in own_metrics):
            continue
        host = f"[{address}]" if ":" in address else address
        connection = http.client.HTTPConnection(host, port, timeout=3)
        try:
            connection.request("GET", "/metrics")
            response = connection.getresponse()
            body = response.read(4096).decode("utf-8", "replace")
            if response.status == 200 and ("# HELP" in body or "# TYPE" in body):
                scraped.append((_process_name(pid), port))
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
    assert not scraped, scraped
