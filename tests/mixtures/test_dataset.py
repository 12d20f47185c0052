"""ShardDataset / ShardLoader with the real torch DataLoader, over a finished run (tests/packed_run.py): every row
once per epoch across ranks x workers, a seeded shuffle, exact resume, document boundaries, an object-store run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")

from gristmill.core import storage  # noqa: E402
from gristmill.mixtures.dataset import ShardDataset, ShardLoader, document_positions  # noqa: E402
from gristmill.mixtures.shards import ShardReader, load_manifest  # noqa: E402


def rows_of(batches) -> list[tuple[int, ...]]:
    return [tuple(row.tolist()) for batch in batches for row in batch["input_ids"]]


def single_rows(dataset) -> list[tuple[int, ...]]:
    return [tuple(item["input_ids"].tolist()) for item in dataset]


@pytest.fixture(scope="module")
def reference(packed_run) -> list[tuple[int, ...]]:
    """Every row of the run, in manifest order."""
    return [tuple(row.tolist()) for row in ShardReader(packed_run)]


def test_unshuffled_stream_is_the_manifest_order(packed_run, reference):
    dataset = ShardDataset(packed_run)
    items = list(dataset)
    assert len(items) == len(dataset) == load_manifest(packed_run)["rows"] == len(reference)
    first = items[0]
    assert set(first) == {"input_ids", "position_ids", "segment_ids"}
    for tensor in first.values():
        assert tensor.dtype == torch.long and tuple(tensor.shape) == (64,)
    assert [tuple(item["input_ids"].tolist()) for item in items] == reference


@pytest.mark.parametrize("world_size, num_workers, batch_size", [(2, 2, 4), (3, 2, 5), (1, 3, 7)])
def test_every_row_once_per_epoch_across_ranks_and_workers(packed_run, reference, world_size, num_workers,
                                                           batch_size):
    seen, sizes = [], []
    for rank in range(world_size):
        dataset = ShardDataset(packed_run, rank=rank, world_size=world_size, shuffle=True, seed=5, shuffle_window=40)
        rows = rows_of(dataset.loader(batch_size=batch_size, num_workers=num_workers))
        assert len(rows) == len(dataset)
        seen += rows
        sizes.append(len(rows))
    assert sorted(seen) == sorted(reference)  # the same multiset: each row exactly once
    assert max(sizes) - min(sizes) <= 1


def test_a_plain_dataloader_with_workers_also_yields_every_row_once(packed_run, reference):
    seen = []
    for rank in range(2):
        dataset = ShardDataset(packed_run, rank=rank, world_size=2, shuffle=True, seed=1)
        seen += rows_of(torch.utils.data.DataLoader(dataset, batch_size=6, num_workers=2))
    assert sorted(seen) == sorted(reference)


def test_workers_do_not_change_the_order(packed_run):
    def batches(num_workers):
        dataset = ShardDataset(packed_run, rank=1, world_size=2, shuffle=True, seed=2, shuffle_window=50)
        return rows_of(dataset.loader(batch_size=4, num_workers=num_workers))

    assert batches(0) == batches(2) == batches(3)


def test_shuffle_is_seeded(packed_run, reference):
    def stream(**kwargs):
        return single_rows(ShardDataset(packed_run, shuffle=True, shuffle_window=100, **kwargs))

    once, again, other = stream(seed=7), stream(seed=7), stream(seed=8)
    assert once == again
    assert once != other and once != reference
    assert sorted(once) == sorted(other) == sorted(reference)


def test_the_next_epoch_is_another_permutation(packed_run, reference):
    dataset = ShardDataset(packed_run, shuffle=True, seed=7)
    first, second = single_rows(dataset), single_rows(dataset)
    assert dataset.state_dict()["epoch"] == 1
    assert first != second and sorted(first) == sorted(second) == sorted(reference)
    dataset.set_epoch(1)
    assert single_rows(dataset) == second


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_mid_epoch_equals_the_uninterrupted_stream(packed_run, num_workers):
    def dataset():
        return ShardDataset(packed_run, rank=1, world_size=2, shuffle=True, seed=3, shuffle_window=60)

    uninterrupted = dataset()
    loader = uninterrupted.loader(batch_size=8, num_workers=num_workers)
    expected = rows_of(loader) + rows_of(loader)[:40]  # an epoch and five batches of the next

    interrupted = dataset()
    loader = interrupted.loader(batch_size=8, num_workers=num_workers)
    got = []
    for step, batch in enumerate(loader):
        got += rows_of([batch])
        if step == 12:
            break
    state = json.loads(json.dumps(loader.state_dict()))  # what a checkpoint keeps
    assert state["consumed"] == 13 * 8

    resumed = dataset()
    resumed_loader = resumed.loader(batch_size=8, num_workers=num_workers)
    resumed_loader.load_state_dict(state)
    got += rows_of(resumed_loader)
    assert resumed.state_dict()["consumed"] == len(resumed)
    got += rows_of(resumed_loader)[:40]
    assert got == expected


def test_resume_without_a_loader_is_exact_at_any_row(packed_run):
    expected = single_rows(ShardDataset(packed_run, shuffle=True, seed=4, shuffle_window=30))
    dataset = ShardDataset(packed_run, shuffle=True, seed=4, shuffle_window=30)
    got = []
    for item in dataset:
        got.append(tuple(item["input_ids"].tolist()))
        if len(got) == 77:
            break
    resumed = ShardDataset(packed_run, shuffle=True, seed=4, shuffle_window=30)
    resumed.load_state_dict(dataset.state_dict())
    assert got + single_rows(resumed) == expected


def test_a_state_from_another_stream_is_refused(packed_run):
    state = ShardDataset(packed_run, shuffle=True, seed=4).state_dict()
    with pytest.raises(ValueError, match=r"state\['seed'\] is 4 but this dataset has 5"):
        ShardDataset(packed_run, shuffle=True, seed=5).load_state_dict(state)
    with pytest.raises(ValueError, match=r"state\['world_size'\]"):
        ShardDataset(packed_run, rank=0, world_size=2, shuffle=True, seed=4).load_state_dict(state)
    with pytest.raises(ValueError, match=r"state\['shards'\]"):
        ShardDataset(packed_run, shuffle=True, seed=4).load_state_dict({**state, "shards": "0" * 16})


def test_rank_and_world_size_come_from_torch_distributed(packed_run, tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        dataset = ShardDataset(packed_run)
        assert (dataset.rank, dataset.world_size) == (0, 1)
        with pytest.raises(ValueError, match="contradict the initialised torch.distributed"):
            ShardDataset(packed_run, rank=1, world_size=2)
    finally:
        dist.destroy_process_group()
    assert ShardDataset(packed_run, rank=1, world_size=2).rank == 1
    with pytest.raises(ValueError, match="rank 2 is outside world_size 2"):
        ShardDataset(packed_run, rank=2, world_size=2)


RANK_PROCESS = """
import json, sys
import torch.distributed as dist
from gristmill.mixtures.dataset import ShardDataset
dist.init_process_group("gloo", init_method=sys.argv[1], rank=int(sys.argv[2]), world_size=2)
dataset = ShardDataset(sys.argv[3], shuffle=True, seed=6)
print(json.dumps({"rank": dataset.rank, "world_size": dataset.world_size,
                  "rows": [row for batch in dataset.loader(batch_size=4, num_workers=1)
                           for row in batch["input_ids"].tolist()]}))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_processes_of_a_process_group_split_the_rows(packed_run, reference, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[2]),
                                                                     os.environ.get("PYTHONPATH")]))}
    store = f"file://{tmp_path / 'store'}"
    ranks = [subprocess.Popen([sys.executable, "-c", RANK_PROCESS, store, str(r), str(packed_run)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    outputs = []
    for process in ranks:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert [(o["rank"], o["world_size"]) for o in outputs] == [(0, 2), (1, 2)]
    assert sorted(tuple(row) for o in outputs for row in o["rows"]) == sorted(reference)
    expected = [single_rows(ShardDataset(packed_run, rank=r, world_size=2, shuffle=True, seed=6)) for r in range(2)]
    assert [[tuple(row) for row in o["rows"]] for o in outputs] == expected


def test_document_boundaries_match_the_shards_and_gristmill_show(packed_run, capsys):
    from gristmill.pipeline.cli import main

    manifest = load_manifest(packed_run)
    separator = manifest["tokenizer"]["separator_id"]
    table = pq.read_table(packed_run / manifest["shards"][0]["path"], columns=["input_ids", "doc_offsets"])
    items = list(ShardDataset(packed_run))[: table.num_rows]
    multi_document_rows = 0
    for row, item in enumerate(items):
        offsets = table.column("doc_offsets")[row].as_py()
        starts = np.flatnonzero(item["position_ids"].numpy() == 0)
        assert starts.tolist() == sorted(set([0] + offsets))
        ids, segments = item["input_ids"].numpy(), item["segment_ids"].numpy()
        assert (ids[starts[1:] - 1] == separator).all()  # every document ends with the separator
        assert segments.tolist() == np.repeat(np.arange(len(starts)), np.diff([*starts, 64])).tolist()
        multi_document_rows += len(starts) > 1
        if row < 4:
            assert main(["show", str(packed_run), "--row", str(row)]) == 0
            shown = [int(t) for t in re.findall(r"^--- doc_id \d+ at token (\d+)", capsys.readouterr().out, re.M)]
            assert shown == starts.tolist()
    assert multi_document_rows > 0


def test_document_positions():
    starts = np.zeros((2, 6), dtype=bool)
    starts[:, 0] = True
    starts[0, [2, 5]] = True
    positions, segments = document_positions(starts)
    assert positions.tolist() == [[0, 1, 0, 1, 2, 0], [0, 1, 2, 3, 4, 5]]
    assert segments.tolist() == [[0, 0, 1, 1, 1, 2], [0, 0, 0, 0, 0, 0]]


def test_a_run_on_the_object_store(packed_run, s3_query):
    root = storage.resolve(f"s3://gristmill-run/runs/packed?{s3_query}")
    for file in sorted(Path(packed_run).rglob("*")):
        if file.is_file() and file.suffix in (".json", ".parquet") and "segments" not in file.parts:
            (root / str(file.relative_to(packed_run))).write_bytes(file.read_bytes())

    def stream(run_dir, num_workers):
        dataset = ShardDataset(run_dir, rank=0, world_size=2, shuffle=True, seed=9, shuffle_window=50)
        return rows_of(dataset.loader(batch_size=4, num_workers=num_workers))

    local = stream(packed_run, 0)
    assert stream(root.uri, 0) == local
    assert stream(root.uri, 2) == local


def test_shard_loader_refuses_persistent_workers(packed_run):
    with pytest.raises(ValueError, match="persistent_workers"):
        ShardLoader(ShardDataset(packed_run), batch_size=2, num_workers=1, persistent_workers=True)


def test_a_shard_that_disagrees_with_the_manifest_is_named(packed_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(packed_run, copy, ignore=shutil.ignore_patterns("segments", "rejects", "stats"))
    manifest = load_manifest(copy)
    first = copy / manifest["shards"][0]["path"]
    pq.write_table(pq.read_table(first).slice(0, 3), first)
    with pytest.raises(ValueError, match=r"part-00000\.parquet: 3 rows, manifest.json says 16"):
        list(ShardDataset(copy))
