"""deploy/: no Docker engine or Kubernetes here, so the files are checked for what would break a deployment:
YAML that parses, commands the gristmill CLI accepts, the pipeline in the ConfigMap valid, bounds consistent,
Ray versions matching the installed one, token auth on, the dashboard not opened to the network."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from gristmill.pipeline.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _parses(argv: list[str]) -> None:
    """The gristmill CLI accepts this command line (argparse exits on anything it does not know)."""
    assert argv[0] == "gristmill", argv
    args = build_parser().parse_args(argv[1:])
    assert callable(args.func)


def _dockerfile() -> list[tuple[str, str]]:
    lines = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    out = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def test_dockerfile_builds_from_the_installed_ray_and_ends_in_the_cli():
    instructions = _dockerfile()
    args = dict(rest.split("=", 1) for kind, rest in instructions if kind == "ARG" and "=" in rest)
    assert args["RAY_VERSION"] == metadata.version("ray"), "image and client Ray versions must match"
    froms = [rest for kind, rest in instructions if kind == "FROM"]
    assert froms == ["rayproject/ray:${RAY_VERSION}-${PYTHON_TAG}-cpu"]
    assert not [rest for kind, rest in instructions if kind == "ENTRYPOINT"], \
        "an ENTRYPOINT would break `docker run IMAGE bash` (cluster launcher) and KubeRay's ray start"
    cmd = json.loads(next(rest for kind, rest in instructions if kind == "CMD"))
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert cmd[0] in scripts and scripts[cmd[0]] == "gristmill.pipeline.cli:main"
    with pytest.raises(SystemExit) as exited:  # `gristmill --help` prints the commands and exits 0
        build_parser().parse_args(cmd[1:])
    assert exited.value.code == 0
    env = " ".join(rest for kind, rest in instructions if kind == "ENV")
    assert "RAY_AUTH_MODE=token" in env and "RAY_AUTH_TOKEN=" not in env


def test_dockerfile_copies_every_package_and_only_existing_paths():
    copied = set()
    for kind, rest in _dockerfile():
        if kind == "COPY":
            sources = [a for a in rest.split() if not a.startswith("--")][:-1]
            for src in sources:
                assert (REPO / src).exists(), f"COPY {src}: no such path in the repository"
                copied.add(src)
    package_dirs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    missing = set(package_dirs.values()) - copied
    assert not missing, f"packages not copied into the image: {missing}"
    assert "pyproject.toml" in copied


def test_cluster_launcher_config():
    config = yaml.safe_load((DEPLOY / "cluster.yaml").read_text())
    for key in ("cluster_name", "max_workers", "provider", "available_node_types", "head_node_type", "docker"):
        assert key in config, key
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    head = types[config["head_node_type"]]
    assert head["resources"]["CPU"] == 0 and head["max_workers"] == 0
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert workers
    for t in workers:
        assert 0 <= t["min_workers"] <= t["max_workers"] <= config["max_workers"]
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "--object-store-memory=" in head_start
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head_start
    assert "$RAY_HEAD_IP:6379" in " ".join(config["worker_start_ray_commands"])
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    assert "/home/ray/.ray/auth_token" in config["file_mounts"]


def _rayjob() -> tuple[dict, dict]:
    docs = list(yaml.safe_load_all((DEPLOY / "rayjob.yaml").read_text()))
    by_kind = {d["kind"]: d for d in docs}
    assert set(by_kind) == {"ConfigMap", "RayJob"}
    return by_kind["ConfigMap"], by_kind["RayJob"]


def test_rayjob_runs_the_pipeline_from_its_configmap():
    from gristmill.pipeline.spec import parse_pipeline

    configmap, job = _rayjob()
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    argv = shlex.split(spec["entrypoint"])
    _parses(argv)
    pipeline_path = Path(argv[2])
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for c in head["containers"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in head["volumes"]}
    (volume_name, mount_path), = [(n, p) for n, p in mounts.items() if pipeline_path.parent == Path(p)]
    assert volumes[volume_name]["configMap"]["name"] == configmap["metadata"]["name"]
    text = configmap["data"][pipeline_path.name]
    pipeline = parse_pipeline(text, f"ConfigMap {configmap['metadata']['name']}/{pipeline_path.name}")
    assert pipeline.execution.executor == "ray"
    run_dir = argv[argv.index("--run-dir") + 1]
    assert re.match(r"^(s3|gs)://", run_dir), "pods share no disk: the run directory must be an object store"
    assert all(re.match(r"^(s3|gs)://", p) for inp in pipeline.inputs for p in inp.paths)


def test_rayjob_cluster_bounds_versions_and_auth():
    _, job = _rayjob()
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == metadata.version("ray")
    assert cluster["authOptions"] == {"mode": "token"}
    assert cluster["enableInTreeAutoscaling"] is True
    for group in cluster["workerGroupSpecs"]:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    assert yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]
    images = {c["image"] for g in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
              for c in g["template"]["spec"]["containers"]}
    assert len(images) == 1, "head and workers must run the same image"


@pytest.mark.parametrize("path", [DEPLOY / "runtime_env.yaml"])
def test_runtime_env_is_one_ray_accepts(path):
    from ray.runtime_env import RuntimeEnv

    from gristmill.pipeline.jobs import load_runtime_env

    env = load_runtime_env(path)
    RuntimeEnv(**env)  # raises on unknown or malformed fields
    assert "pip" not in env and "working_dir" not in env  # dependencies are in the image; submit adds the code
    assert not any(re.search(r"(KEY|SECRET|TOKEN|PASSWORD)", k) for k in env.get("env_vars", {}))


def test_readme_commands_parse():
    """Every `gristmill ...` command line shown in deploy/README.md is one the CLI accepts."""
    text = (DEPLOY / "README.md").read_text()
    commands = [line.strip() for line in re.findall(r"^\s*(gristmill [^\n#]+)", text, flags=re.M)]
    assert len(commands) >= 4
    for command in commands:
        argv = shlex.split(command.replace("$JOB", "job-id").replace("$(", "").rstrip(")"))
        _parses(argv)
