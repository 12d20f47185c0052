"""A real multi-node Ray cluster on this machine for the tests: ``ray start --head`` and ``ray start --address``
processes with a private temp dir, token authentication on, each node started in a directory of its own (a
node's workers run there, so a test can see what they leave behind), stopped by killing exactly the processes
that name the temp dir (``ray stop`` would stop every Ray on the machine, the test session's own included)."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Cluster:
    root: Path  # the temp dir every process of the cluster names
    address: str  # GCS address, for ``gristmill run --address`` / ``ray.init(address=...)``
    env: dict  # what a driver needs: token auth, no RAY_ADDRESS of the test session's
    node_dirs: list[Path]  # the working directory of each node's raylet and workers (head first)
    dashboard: str | None = None  # http://127.0.0.1:PORT when the head runs the dashboard (Ray Jobs)

    def driver_env(self) -> dict:
        return dict(self.env)


def _pids_mentioning(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if text.encode() in fh.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def stop(root: Path | str, grace: float = 4.0) -> None:
    """Stop every process naming ``root``: SIGTERM, then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in _pids_mentioning(str(root)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while _pids_mentioning(str(root)) and time.monotonic() < deadline:
            time.sleep(0.2)


def start(worker_cpus: list[int], env: dict | None = None, head_cpus: int = 0, dashboard: bool = False) -> Cluster:
    """A head with ``head_cpus`` CPUs (0: it runs no tasks) and one worker node per entry of ``worker_cpus``;
    ``dashboard`` runs the head's dashboard on loopback, which Ray Jobs (``gristmill submit``) need."""
    # A short path: Ray's unix sockets live under the temp dir and their paths are limited to ~107 bytes.
    root = Path(tempfile.mkdtemp(prefix="gm-nodes-", dir="/tmp"))
    token = root / "auth_token"
    token.write_text(os.urandom(16).hex())
    env = {**(env or os.environ), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    common = ["--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    node_dirs = []
    dashboard_port = free_port()
    head_dashboard = (["--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port",
                       str(dashboard_port)] if dashboard else ["--include-dashboard", "false"])
    try:
        for i, cpus in enumerate([head_cpus, *worker_cpus]):
            node_dir = root / ("head" if i == 0 else f"node-{i}")
            node_dir.mkdir()
            node_dirs.append(node_dir)
            if i == 0:
                cmd = ["ray", "start", "--head", "--port", str(port), *head_dashboard, "--temp-dir", str(root / "ray")]
            else:
                # A worker node on the head's machine uses the head's temp dir: its processes name it too.
                cmd = ["ray", "start", "--address", f"127.0.0.1:{port}"]
            # Every node's agents get ports of their own: with Ray's fixed defaults the second node on one
            # machine cannot bind its dashboard agent, and its raylet dies with it (fate sharing).
            ports = [arg for flag in ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                                      "--metrics-export-port", "--runtime-env-agent-port")
                     for arg in (flag, str(free_port()))]
            done = subprocess.run([str(BIN / cmd[0]), *cmd[1:], "--num-cpus", str(cpus), *common, *ports], env=env,
                                  cwd=node_dir, capture_output=True, text=True, timeout=180)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    except BaseException:
        stop(root)
        raise
    return Cluster(root, f"127.0.0.1:{port}", env, node_dirs,
                   f"http://127.0.0.1:{dashboard_port}" if dashboard else None)


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))
