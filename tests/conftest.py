"""Shared fixtures. One local Ray cluster per test session (starting Ray costs seconds): mark tests `ray`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gristmill.pipeline.executors import import_ray_single_machine

# Imported here, before any test module imports it, so that the session's Ray listens on loopback only, as
# `gristmill run`'s does (init_local_ray).
import_ray_single_machine()

DATA = Path(__file__).parent / "data"

# Shared fixtures: a corpus with a tokenizer trained on it (tokenize stages, train-tokenizer), a tokenized
# run directory to pack (mixture step, shard commands), a finished run with shards, and an S3 server.
pytest_plugins = ["tokenizer_fixtures", "mixture_fixtures", "packed_run", "object_store"]

@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    from gristmill.pipeline.executors import init_local_ray

    from object_store import S3_TEST_ENV

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    added = {k: v for k, v in S3_TEST_ENV.items() if k not in os.environ}
    os.environ.update(added)  # inherited by Ray's processes only: a test on the S3 server may run its tasks
    try:
        init_local_ray(num_cpus=2)  # as `gristmill run` starts its embedded Ray
    finally:
        for key in added:
            del os.environ[key]
    yield ray
    ray.shutdown()
