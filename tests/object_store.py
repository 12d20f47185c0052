"""A real S3-compatible server (moto, on 127.0.0.1) for the object-store code paths, with a bucket
``gristmill-run``; ``s3_query`` is the query string that points a ``s3://`` URI at it, ``s3_requests`` the log
of the requests it answered."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote

import pyarrow.fs as pafs
import pytest


# The moto server's credentials (any will do). The session's Ray workers get them too (conftest.ray_cluster): they
# keep the environment Ray started with, whichever test started it.
S3_TEST_ENV = dict(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                   AWS_EC2_METADATA_DISABLED="true")


@pytest.fixture
def s3_query(monkeypatch):
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in S3_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    pafs.S3FileSystem(endpoint_override=f"http://{host}:{port}", region="us-east-1",
                      allow_bucket_creation=True).create_dir("gristmill-run")
    yield f"endpoint_override={host}:{port}&scheme=http"
    server.stop()


class RequestLog(logging.Handler):
    """The requests the moto server answered, as ``(method, key)`` (``key`` without the query; a listing is the
    bucket with ``?list-type...``, kept whole), from its own request log (werkzeug's, one record per request)."""

    _LINE = re.compile(r'"(?:\x1b\[[0-9;]*m)*([A-Z]+) (\S+) HTTP/')  # werkzeug may colour the request

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.requests: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = self._LINE.search(record.getMessage())
        if found:
            method, path = found.groups()
            path = unquote(path)
            self.requests.append((method, path if "list-type" in path else path.split("?", 1)[0]))


@pytest.fixture
def s3_requests(s3_query):
    """The requests made to the ``s3_query`` server while the test runs (``.requests``; clear it to start over)."""
    log = RequestLog()
    logger = logging.getLogger("werkzeug")
    level = logger.level
    logger.addHandler(log)
    logger.setLevel(logging.INFO)
    yield log
    logger.removeHandler(log)
    logger.setLevel(level)
