"""A real S3-compatible server (moto, on 127.0.0.1) for the object-store code paths, with a bucket
``gristmill-run``; ``s3_query`` is the query string that points a ``s3://`` URI at it."""

from __future__ import annotations

import pyarrow.fs as pafs
import pytest


@pytest.fixture
def s3_query(monkeypatch):
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in dict(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                           AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true").items():
        monkeypatch.setenv(key, value)
    pafs.S3FileSystem(endpoint_override=f"http://{host}:{port}", region="us-east-1",
                      allow_bucket_creation=True).create_dir("gristmill-run")
    yield f"endpoint_override={host}:{port}&scheme=http"
    server.stop()
