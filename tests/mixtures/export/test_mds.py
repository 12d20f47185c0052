"""The MDS export read with mosaicml-streaming's own StreamingDataset and LocalDataset.

``import streaming`` runs the package's ``__init__``, which imports ``streaming.vision`` and with it torchvision
(not installed: no torchvision build matches this torch). The readers live in ``streaming.base`` and need none
of it, so ``streaming_base`` registers the ``streaming`` package by its real path without running its
``__init__`` and imports the real ``streaming.base`` modules from it.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest

from shard_rows import shard_table, token_rows

from gristmill.mixtures.export.exporter import export_run

PARAMS = {"mixture": "llama", "seq_len": 48, "rows_per_shard": 40, "row_group_rows": 16}


def streaming_base():
    if "streaming" not in sys.modules:
        spec = importlib.util.find_spec("streaming")
        if spec is None:
            pytest.skip("mosaicml-streaming is not installed")
        package = types.ModuleType("streaming")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["streaming"] = package
    import streaming.base

    return streaming.base


@pytest.fixture
def packed(run_dir, run_pack):
    run_pack(run_dir, PARAMS)
    return run_dir


def check_samples(samples, run_dir):
    rows = token_rows(run_dir)
    table = shard_table(run_dir)
    assert len(samples) == len(rows)
    assert np.array_equal(np.stack([s["input_ids"] for s in samples]), rows)
    assert [s["source"] for s in samples] == table.column("source").to_pylist()
    assert [s["doc_ids"].tolist() for s in samples] == table.column("doc_ids").to_pylist()
    assert [s["doc_offsets"].tolist() for s in samples] == table.column("doc_offsets").to_pylist()


def test_streaming_dataset_reads_every_row_in_manifest_order(packed, tmp_path):
    base = streaming_base()
    out = tmp_path / "mds"
    # A small size limit: several MDS shards, so the reader crosses shard files.
    summary = export_run(packed, "mds", out, size_limit=20_000)
    assert summary["mds_shards"] > 2
    dataset = base.StreamingDataset(local=str(out), shuffle=False, batch_size=8)
    check_samples([dataset[i] for i in range(dataset.num_samples)], packed)
    check_samples(list(iter(dataset)), packed)


def test_local_dataset_reads_the_same(packed, tmp_path):
    base = streaming_base()
    export_run(packed, "mds", tmp_path / "mds")
    dataset = base.LocalDataset(str(tmp_path / "mds"))
    check_samples([dataset[i] for i in range(len(dataset))], packed)
