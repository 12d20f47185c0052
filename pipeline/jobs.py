"""Running a pipeline on a Ray cluster through the Ray Jobs API: ``gristmill submit / status / logs / stop``.

``gristmill submit P.yaml --address http://HEAD:8265`` sends ``gristmill run P.yaml`` as a Ray job. The job
driver runs on the cluster, where the Jobs API sets ``RAY_ADDRESS``, so ``gristmill run`` joins that cluster
instead of starting an embedded one; a plain ``ray job submit -- gristmill run P.yaml`` works the same way.

Code reaches the cluster one of two ways:

- packaged (default): the working directory (default: the current directory, which must contain the pipeline
  file) is uploaded as the job's ``runtime_env.working_dir`` and the job runs ``python -m gristmill run`` from
  it, so the cluster runs the gristmill of that checkout (the dependencies must be installed there, e.g. the
  image in deploy/Dockerfile).
- ``--installed``: nothing but the pipeline file is uploaded and the job runs the gristmill installed on the
  cluster; the pipeline's inputs must then be absolute paths or URIs that the cluster can read.

Ray runs a job's entrypoint in a shell on the head, with the head's ``PATH``: a head started from a virtual
environment that is not on its ``PATH`` finds another ``python`` there, or none. The job's driver runs on the
interpreter of the job's runtime environment instead (``job_command``): the runtime_env's ``py_executable``
(``--python``) when set; ``python`` as activated by a ``pip``/``uv``/``conda``/container runtime_env; else the
interpreter Ray starts the head's workers with, the one ``ray start`` ran on.

The run directory must be somewhere every node can write and that outlives the job: a shared filesystem path
or an object-store URI. It comes from ``--run-dir`` or the pipeline's ``output.run_dir``; relative ones are
refused (they would land in the job's temporary working directory on the head node).

Ray token authentication: the token is read as Ray itself reads it (``RAY_AUTH_TOKEN``, then the file named
by ``RAY_AUTH_TOKEN_PATH``, then ``~/.ray/auth_token``) and sent as a bearer header, so submitting works
whatever the auth mode of the submitting process is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import yaml

EXIT_USAGE = 2
EXIT_JOB_FAILED = 1

# Never uploaded with a packaged working directory (Ray also honours the directory's .gitignore).
DEFAULT_EXCLUDES = [".git", ".venv", "venv", "runs", "**/__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache",
                    ".hypothesis", "*.egg-info"]


class JobError(RuntimeError):
    """A submission that cannot be made, or a job the cluster does not know; the message says what to do."""


# --- the client -------------------------------------------------------------------------------------------

def read_auth_token() -> str | None:
    """The Ray auth token from the places Ray looks, in Ray's order; None when there is none."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        try:
            token = Path(path).expanduser().read_text().strip()
        except OSError as exc:
            raise JobError(f"RAY_AUTH_TOKEN_PATH={path}: cannot read the token: {exc.strerror}") from None
        if not token:
            raise JobError(f"RAY_AUTH_TOKEN_PATH={path}: the token file is empty")
        return token
    default = Path.home() / ".ray" / "auth_token"
    if default.is_file():
        return default.read_text().strip() or None
    return None


def resolve_address(address: str | None) -> str:
    """The Jobs API address: the argument, else ``RAY_API_SERVER_ADDRESS`` or ``RAY_ADDRESS`` (as ``ray job``)."""
    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address:
        raise JobError("no cluster address: pass --address http://HEAD:8265 or set RAY_ADDRESS")
    return address


def sends_in_clear(address: str) -> bool:
    """Whether a request to this Jobs API address crosses the network unencrypted: plain http (Ray's default for
    an address without a scheme) to a host other than this machine's loopback."""
    import ipaddress
    from urllib.parse import urlsplit

    if address == "auto":  # the cluster this machine runs, found through its local session
        return False
    parts = urlsplit(address if "://" in address else f"http://{address}")
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return True


_warned_in_clear: set[str] = set()


def make_client(address: str | None):
    from ray.job_submission import JobSubmissionClient

    address = resolve_address(address)
    token = read_auth_token()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    if token and sends_in_clear(address) and address not in _warned_in_clear:
        _warned_in_clear.add(address)  # once per command, not once per poll of --wait
        print(f"warning: sending the Ray auth token unencrypted over http to {address}; anyone on the path can "
              "read it (use https, or an SSH tunnel to 127.0.0.1)", file=sys.stderr)
    try:
        return JobSubmissionClient(address, headers=headers)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise JobError(f"cannot reach the Ray Jobs API at {address}: {exc}") from None


# --- building a submission --------------------------------------------------------------------------------

def load_runtime_env(path: str | os.PathLike) -> dict[str, Any]:
    """A ``runtime_env`` YAML (e.g. deploy/runtime_env.yaml), loaded safely; must be a mapping."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise JobError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise JobError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise JobError(f"{path}: a runtime_env must be a mapping (working_dir, pip, env_vars, ...)")
    return data


def _is_absolute(path: str) -> bool:
    from gristmill.core.storage import is_absolute

    return is_absolute(path)


# Runtime_env fields that give the job an environment of its own, which Ray activates in the entrypoint's shell.
ENVIRONMENT_FIELDS = ("pip", "uv", "conda", "image_uri", "container")

# Finds the interpreter Ray starts the node's workers with (the python that ran `ray start`): the first word of
# --python_worker_command on the command line of the raylet, the nearest ancestor of the job's shell that has one
# (the job supervisor, a Ray worker, is the shell's parent). Ray hands the entrypoint no other trace of it.
_WORKER_PYTHON = ('p=$PPID; py=; while [ -z "$py" ] && [ "${p:-0}" -gt 1 ]; do'
                  ' py=$(tr "\\000" "\\n" < /proc/$p/cmdline 2>/dev/null'
                  ' | sed -n "s/^--python_worker_command=\\([^ ]*\\).*/\\1/p");'
                  ' p=$(sed -n "s/.*) . \\([0-9]*\\).*/\\1/p" /proc/$p/stat 2>/dev/null); done;'
                  ' exec "${py:-python}"')


def job_command(runtime_env: dict[str, Any], args: list[str]) -> str:
    """The job's entrypoint: ``args`` run by the interpreter of the job's runtime environment (module
    docstring); where that cannot be found, by ``python`` on the head's PATH."""
    import shlex

    if runtime_env.get("py_executable"):
        return shlex.join([*shlex.split(runtime_env["py_executable"]), *args])
    if any(runtime_env.get(field) for field in ENVIRONMENT_FIELDS):
        return shlex.join(["python", *args])
    return f"{_WORKER_PYTHON} {shlex.join(args)}"


def build_submission(pipeline: str, *, run_dir: str | None = None, working_dir: str | None = None,
                     installed: bool = False, runtime_env: dict[str, Any] | None = None,
                     force: bool = False, python: str | None = None) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(entrypoint, runtime_env, metadata) for running ``pipeline`` as a Ray job.

    The pipeline is validated here (schema, stage names, params) before anything is uploaded; its input
    paths are not globbed, since they only need to exist where the job runs.
    """
    from gristmill.pipeline.spec import SpecError, parse_pipeline

    path = Path(pipeline)
    try:
        spec = parse_pipeline(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from None
    run_dir = run_dir or spec.output.run_dir
    if not run_dir:
        raise JobError(f"{path}: no run directory: pass --run-dir (a shared path or a URI such as "
                       "s3://bucket/runs/NAME that every node can write) or set output.run_dir")
    if not _is_absolute(run_dir):
        raise JobError(f"run directory {run_dir!r} is relative: on the cluster it would land in the job's "
                       "temporary working directory; give an absolute shared path or a URI")

    env = dict(runtime_env or {})
    if python:
        env["py_executable"] = python  # the job's workers run on it too
    if installed:
        relative = [f"inputs[{i}].paths[{j}]" for i, inp in enumerate(spec.inputs)
                    for j, p in enumerate(inp.paths) if not _is_absolute(p)]
        if relative:
            raise JobError(f"{path}: {relative[0]} is relative; with --installed only the pipeline file is "
                           "uploaded, so inputs must be absolute paths or URIs the cluster can read")
        env["working_dir"] = _pipeline_only_dir(path)
        command = ["-m", "gristmill", "run", path.name]
    else:
        root = Path(working_dir or os.getcwd()).resolve()
        try:
            rel = path.resolve().relative_to(root)
        except ValueError:
            raise JobError(f"{path} is not inside the working directory {root} that would be uploaded; "
                           "run from the checkout, pass --working-dir, or use --installed") from None
        env["working_dir"] = str(root)
        env["excludes"] = list(dict.fromkeys(list(env.get("excludes", [])) + DEFAULT_EXCLUDES))
        command = ["-m", "gristmill", "run", rel.as_posix()]
    # A job always runs on the cluster it was sent to, whatever execution.executor says.
    command += ["--run-dir", run_dir, "--executor", "ray", "--quiet"]
    if force:
        command.append("--force")
    metadata = {"gristmill_pipeline": spec.name, "gristmill_run_dir": run_dir}
    return job_command(env, command), env, metadata


def _pipeline_only_dir(path: Path) -> str:
    """A fresh directory holding only the pipeline file, to upload as the job's working directory."""
    tmp = tempfile.mkdtemp(prefix="gristmill-submit-")
    shutil.copyfile(path, os.path.join(tmp, path.name))
    return tmp


def new_submission_id(pipeline_name: str) -> str:
    return f"gristmill-{pipeline_name}-{secrets.token_hex(4)}"


# --- the API wrappers -------------------------------------------------------------------------------------

def submit(address: str | None, pipeline: str, submission_id: str | None = None, **kwargs) -> str:
    entrypoint, runtime_env, metadata = build_submission(pipeline, **kwargs)
    client = make_client(address)
    job_id = submission_id or new_submission_id(metadata["gristmill_pipeline"])
    try:
        return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env, metadata=metadata,
                                 submission_id=job_id)
    except RuntimeError as exc:
        raise JobError(f"the cluster refused the job: {exc}") from None


def job_info(address: str | None, job_id: str):
    client = make_client(address)
    try:
        return client.get_job_info(job_id)
    except RuntimeError as exc:
        raise JobError(f"job {job_id}: {exc}") from None


def wait(address: str | None, job_id: str, timeout: float | None = None, interval: float = 1.0):
    """Poll until the job is SUCCEEDED, FAILED or STOPPED; returns its final ``JobDetails``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        info = job_info(address, job_id)
        if info.status.is_terminal():
            return info
        if deadline is not None and time.monotonic() > deadline:
            raise JobError(f"job {job_id} still {info.status} after {timeout:.0f}s")
        time.sleep(interval)


def logs(address: str | None, job_id: str, follow: bool = False, out: TextIO = sys.stdout) -> None:
    client = make_client(address)
    try:
        if not follow:
            out.write(client.get_job_logs(job_id))
            out.flush()
            return

        async def tail() -> None:
            async for chunk in client.tail_job_logs(job_id):
                out.write(chunk)
                out.flush()

        asyncio.run(tail())
    except RuntimeError as exc:
        raise JobError(f"job {job_id}: {exc}") from None


def stop(address: str | None, job_id: str) -> bool:
    client = make_client(address)
    try:
        return client.stop_job(job_id)
    except RuntimeError as exc:
        raise JobError(f"job {job_id}: {exc}") from None


# --- the CLI ----------------------------------------------------------------------------------------------

def _exit_code(status) -> int:
    return 0 if str(status) == "SUCCEEDED" else EXIT_JOB_FAILED


STATUS_EXIT_CODES = f"""exit status:
  0  the job is PENDING, RUNNING or SUCCEEDED
  {EXIT_JOB_FAILED}  the job FAILED or was STOPPED
  {EXIT_USAGE}  no such job, the cluster cannot be reached, or the token is refused"""


def cmd_submit(args) -> int:
    runtime_env = load_runtime_env(args.runtime_env) if args.runtime_env else None
    job_id = submit(args.address, args.pipeline, submission_id=args.submission_id, run_dir=args.run_dir,
                    working_dir=args.working_dir, installed=args.installed, runtime_env=runtime_env,
                    force=args.force, python=args.python)
    print(job_id, flush=True)  # alone on stdout, so JOB=$(gristmill submit ...) works
    if args.follow:
        logs(args.address, job_id, follow=True, out=sys.stderr)
    if args.follow or args.wait:
        info = wait(args.address, job_id)
        print(f"{job_id} {info.status}" + (f": {info.message}" if info.message else ""), file=sys.stderr)
        return _exit_code(info.status)
    return 0


def cmd_status(args) -> int:
    info = job_info(args.address, args.job_id)
    print(f"{args.job_id}  {info.status}")
    if info.message:
        print(f"  {info.message}")
    print(f"  entrypoint: {info.entrypoint}")
    for key in ("gristmill_pipeline", "gristmill_run_dir"):
        if info.metadata and key in info.metadata:
            print(f"  {key.removeprefix('gristmill_')}: {info.metadata[key]}")
    return EXIT_JOB_FAILED if str(info.status) in ("FAILED", "STOPPED") else 0


def cmd_logs(args) -> int:
    logs(args.address, args.job_id, follow=args.follow)
    return 0


def cmd_stop(args) -> int:
    stopped = stop(args.address, args.job_id)
    print(f"{args.job_id}: {'stop requested' if stopped else 'already finished'}")
    return 0


def _guarded(func):
    """Job errors and an unreachable cluster end the command with a one-line message and exit code 2."""

    def run(args) -> int:
        try:
            return func(args)
        except JobError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except ConnectionError as exc:
            print(f"error: cannot reach the Ray Jobs API: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except Exception as exc:
            from ray.exceptions import AuthenticationError  # a wrong or missing token

            if not isinstance(exc, AuthenticationError):
                raise
            first = str(exc).strip().splitlines()[0]
            print(f"error: {first} (the token comes from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
                  "~/.ray/auth_token)", file=sys.stderr)
            return EXIT_USAGE

    return run


def add_job_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``submit``, ``status``, ``logs`` and ``stop`` to the ``gristmill`` parser (pipeline/cli.py)."""
    address_help = "Ray dashboard / Jobs API address, e.g. http://HEAD:8265 (default: $RAY_ADDRESS)"

    p = sub.add_parser("submit", help="run a pipeline on a Ray cluster through the Ray Jobs API")
    p.add_argument("pipeline")
    p.add_argument("--address", help=address_help)
    p.add_argument("--run-dir", help="run directory every node can write: a shared path or a URI "
                                     "(default: output.run_dir)")
    p.add_argument("--working-dir", help="directory to upload with the job (default: the current directory)")
    p.add_argument("--installed", action="store_true",
                   help="use the gristmill installed on the cluster; upload only the pipeline file")
    p.add_argument("--runtime-env", help="a runtime_env YAML to merge in (pip, env_vars, ...)")
    p.add_argument("--python", help="the Python to run the job (and its workers) with on the cluster, e.g. "
                                    "/opt/venv/bin/python (runtime_env py_executable; default: the one Ray's "
                                    "workers run on)")
    p.add_argument("--submission-id", help="job id to use (default: gristmill-NAME-RANDOM)")
    p.add_argument("--force", action="store_true", help="rebuild segments committed by a different plan")
    p.add_argument("--wait", action="store_true", help="wait for the job; exit 0 only if it succeeded")
    p.add_argument("--follow", action="store_true", help="stream the job's logs to stderr, then as --wait")
    p.set_defaults(func=_guarded(cmd_submit))

    for name, func, text in (("status", cmd_status, "show a submitted job's status"),
                             ("logs", cmd_logs, "print a submitted job's logs"),
                             ("stop", cmd_stop, "stop a submitted job")):
        p = sub.add_parser(name, help=text, description=text,
                           epilog=STATUS_EXIT_CODES if name == "status" else None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("job_id")
        p.add_argument("--address", help=address_help)
        if name == "logs":
            p.add_argument("--follow", action="store_true", help="keep streaming until the job ends")
        p.set_defaults(func=_guarded(func))
