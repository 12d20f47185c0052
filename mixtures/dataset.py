"""``ShardDataset``: a PyTorch ``IterableDataset`` over a finished run's shards (local or on an object store).

The rows of one epoch form a single sequence: the shards in manifest order, or in a seeded permutation when
shuffling. Rank ``r`` of ``world_size`` takes the contiguous slice ``[N*r//W, N*(r+1)//W)`` of it (sizes differ
by at most one row, and each rank reads only its own shards). When shuffling, the rank's slice is cut into
windows of ``shuffle_window`` rows and each window is permuted with a seed of (seed, epoch, rank, window):
a shuffle buffer whose output can be recomputed from any position, which makes resuming exact and cheap.

DataLoader workers split a rank's stream further, in blocks of ``block_rows`` rows dealt round-robin (block
``j`` to worker ``j % num_workers``). ``ShardLoader`` sets ``block_rows`` to its batch size: the DataLoader
collects batches from its workers round-robin too, so the batches arrive in the order of the rank's stream,
whatever the number of workers, and the loader can count the rows handed out in the main process. That count
is the state: ``state_dict()`` is (epoch, rows consumed), and a dataset loaded with it yields exactly the rest
of the uninterrupted stream.
"""

from __future__ import annotations

import collections
import hashlib
from typing import Any, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.core.layout import RunLayout
from gristmill.core.storage import Location
from gristmill.mixtures.shards import load_manifest
from gristmill.stages.base import require

torch = require("torch", "torch")
from torch.utils.data import DataLoader, IterableDataset, get_worker_info  # noqa: E402

STATE_FORMAT = "gristmill.shard_dataset/1"
# SeedSequence streams: the shard order of an epoch, and the permutation of a window of a rank's stream.
_SHARD_ORDER, _WINDOW = 0, 1
# State keys that must match for a resume to continue the same stream.
_STREAM_KEYS = ("shards", "rows", "world_size", "rank", "shuffle", "seed", "shuffle_window")
_CACHED_SHARDS = 2
# Rows turned into int64 tensors at a time: bounds the memory of a window's tensors (3 x 8 bytes per token).
_TENSOR_ROWS = 256


def distributed_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world_size) from ``torch.distributed`` when it is initialised, else from the arguments
    (default 0 of 1); arguments that contradict an initialised process group are an error."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        group_rank, group_size = dist.get_rank(), dist.get_world_size()
        if (rank is not None and rank != group_rank) or (world_size is not None and world_size != group_size):
            raise ValueError(f"rank={rank}, world_size={world_size} contradict the initialised torch.distributed "
                             f"process group (rank {group_rank} of {group_size}); leave them out")
        return group_rank, group_size
    rank = 0 if rank is None else int(rank)
    world_size = 1 if world_size is None else int(world_size)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world_size {world_size}")
    return rank, world_size


def document_positions(starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From a (rows, seq_len) mask of document starts: each token's position within its document (from the
    row's start for a document begun in an earlier row) and the row-local index of its document."""
    columns = np.arange(starts.shape[1], dtype=np.int64)
    last_start = np.maximum.accumulate(np.where(starts, columns, 0), axis=1)
    return columns - last_start, np.cumsum(starts, axis=1, dtype=np.int64) - 1


class _ShardFiles:
    """Rows of the shards, read by row group; the last few shard files stay open (an object-store shard is
    held in memory, see ``Location.parquet_file``)."""

    def __init__(self, layout: RunLayout, entries: list[dict[str, Any]], seq_len: int):
        self.layout, self.entries, self.seq_len = layout, entries, seq_len
        self.open: collections.OrderedDict[int, tuple[pq.ParquetFile, np.ndarray]] = collections.OrderedDict()

    def _file(self, shard: int) -> tuple[pq.ParquetFile, np.ndarray]:
        if shard in self.open:
            self.open.move_to_end(shard)
            return self.open[shard]
        entry = self.entries[shard]
        pf = self.layout.file(entry["path"]).parquet_file()
        if pf.metadata.num_rows != entry["rows"]:
            raise ValueError(f"{self.layout.file(entry['path'])}: {pf.metadata.num_rows} rows, manifest.json "
                             f"says {entry['rows']} (run `gristmill verify`)")
        bounds = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
        self.open[shard] = (pf, bounds)
        if len(self.open) > _CACHED_SHARDS:
            self.open.popitem(last=False)
        return pf, bounds

    def read(self, shard: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``rows`` of ``shard`` (any order): input_ids (n, seq_len) int32 and the document-start mask."""
        pf, bounds = self._file(shard)
        first = int(np.searchsorted(bounds, rows.min(), side="right")) - 1
        last = int(np.searchsorted(bounds, rows.max(), side="right")) - 1
        table = pf.read_row_groups(list(range(first, last + 1)), columns=["input_ids", "doc_offsets"])
        table = table.combine_chunks().take(pa.array(rows - bounds[first]))
        ids = table.column("input_ids").chunk(0).flatten().to_numpy().reshape(-1, self.seq_len)
        offsets = table.column("doc_offsets").chunk(0)
        starts = np.zeros((len(rows), self.seq_len), dtype=bool)
        row_of = np.repeat(np.arange(len(rows)), np.diff(offsets.offsets.to_numpy()))
        starts[row_of, offsets.flatten().to_numpy()] = True
        starts[:, 0] = True
        return ids, starts


class ShardDataset(IterableDataset):
    """Rows of a run's shards as dicts of 1-D ``torch.long`` tensors of ``seq_len``: ``input_ids``,
    ``position_ids`` (position within the document, restarting at every document boundary of the row) and
    ``segment_ids`` (index of the token's document within the row, from 0), which is what intra-row document
    masking needs (e.g. flash-attention's varlen kernels take boundaries where ``position_ids == 0``).

    Every row is yielded exactly once per epoch across ranks and DataLoader workers. Iterating again after
    an epoch is complete starts the next epoch (another shuffle); ``set_epoch`` picks one explicitly.
    Use ``ShardLoader`` (or ``dataset.loader(...)``) with DataLoader workers to keep ``state_dict()`` exact.
    """

    def __init__(self, run_dir: str | Location, rank: int | None = None, world_size: int | None = None,
                 shuffle: bool = False, seed: int = 0, shuffle_window: int = 4096, read_rows: int = 1024):
        if seed < 0 or shuffle_window < 1 or read_rows < 1:
            raise ValueError(f"seed {seed}, shuffle_window {shuffle_window}, read_rows {read_rows}: seed must be "
                             f">= 0 and the windows at least one row")
        self.layout = RunLayout(run_dir)
        self.manifest = load_manifest(self.layout.root)
        self.seq_len = int(self.manifest["seq_len"])
        self.rank, self.world_size = distributed_rank(rank, world_size)
        self.shuffle, self.seed = bool(shuffle), int(seed)
        self.shuffle_window, self.read_rows = int(shuffle_window), int(read_rows)
        self.block_rows = 1  # rows per block dealt to DataLoader workers; ShardLoader sets its batch size
        self.shard_rows = np.array([e["rows"] for e in self.manifest["shards"]], dtype=np.int64)
        self.total_rows = int(self.shard_rows.sum())
        # Which shards these are: a saved position is refused on a run packed again with other rows.
        listing = "".join(e["sha256"] for e in self.manifest["shards"]).encode()
        self.shards_digest = hashlib.sha256(listing).hexdigest()[:16]
        self.start = self.total_rows * self.rank // self.world_size
        self.stop = self.total_rows * (self.rank + 1) // self.world_size
        self.epoch = 0
        self.consumed = 0  # rows of this rank's current epoch handed out
        self._files: _ShardFiles | None = None

    def __len__(self) -> int:
        """Rows of this rank in one epoch."""
        return self.stop - self.start

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_files": None}  # open files stay with their process

    # --- state --------------------------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.consumed = int(epoch), 0

    def state_dict(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "epoch": self.epoch, "consumed": self.consumed, "shards": self.shards_digest,
                "rows": self.total_rows, "world_size": self.world_size, "rank": self.rank, "shuffle": self.shuffle,
                "seed": self.seed, "shuffle_window": self.shuffle_window}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"state format {state.get('format')!r}, expected {STATE_FORMAT!r}")
        mine = self.state_dict()
        for key in _STREAM_KEYS:
            if state.get(key) != mine[key]:
                raise ValueError(f"state[{key!r}] is {state.get(key)!r} but this dataset has {mine[key]!r}: "
                                 f"the saved position belongs to another stream")
        if not 0 <= int(state["consumed"]) <= len(self):
            raise ValueError(f"state['consumed'] {state['consumed']} is outside this rank's {len(self)} rows")
        self.epoch, self.consumed = int(state["epoch"]), int(state["consumed"])

    def advance(self, rows: int) -> None:
        """Count ``rows`` more rows as consumed (ShardLoader calls this for each batch it hands out)."""
        self.consumed = min(self.consumed + rows, len(self))

    def begin_iteration(self) -> None:
        """A finished epoch rolls over to the next one before a new pass starts."""
        if self.consumed >= len(self):
            self.epoch, self.consumed = self.epoch + 1, 0

    # --- the stream ---------------------------------------------------------------------------------------

    def shard_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.shard_rows))
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, _SHARD_ORDER]))
        return rng.permutation(len(self.shard_rows))

    def _window(self, epoch: int, index: int, size: int) -> np.ndarray:
        """Stream positions of a window -> their rows' order within it."""
        if not self.shuffle:
            return np.arange(size)
        seq = np.random.SeedSequence([self.seed, epoch, _WINDOW, self.rank, index])
        return np.random.default_rng(seq).permutation(size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = get_worker_info()
        in_worker = worker is not None
        workers, worker_id = (worker.num_workers, worker.id) if in_worker else (1, 0)
        self.begin_iteration()
        epoch, begin = self.epoch, self.consumed
        for positions, ids, starts in self._rows(epoch, begin, workers, worker_id):
            for low in range(0, len(positions), _TENSOR_ROWS):
                chunk = slice(low, low + _TENSOR_ROWS)
                position_ids, segment_ids = document_positions(starts[chunk])
                columns = {"input_ids": torch.from_numpy(ids[chunk].astype(np.int64)),
                           "position_ids": torch.from_numpy(position_ids),
                           "segment_ids": torch.from_numpy(segment_ids)}
                for i, position in enumerate(positions[chunk]):
                    if not in_worker:
                        self.consumed = int(position) + 1
                    yield {name: column[i] for name, column in columns.items()}
        if in_worker:  # a worker's copy: the pass is over, whatever its share was
            self.consumed = len(self)

    def _rows(self, epoch: int, begin: int, workers: int, worker_id: int):
        """(stream positions, input_ids, start mask) of this worker's rows from stream position ``begin``."""
        order = self.shard_order(epoch)
        first_row = np.concatenate([[0], np.cumsum(self.shard_rows[order])])
        window = self.shuffle_window if self.shuffle else self.read_rows
        rank_rows = len(self)
        for index in range(begin // window, -(-rank_rows // window)):
            low, high = index * window, min((index + 1) * window, rank_rows)
            positions = np.arange(max(low, begin), high)
            mine = positions[((positions - begin) // self.block_rows) % workers == worker_id]
            if not len(mine):
                continue
            sources = self.start + low + self._window(epoch, index, high - low)[mine - low]
            slot = np.searchsorted(first_row, sources, side="right") - 1
            ids, starts = self._read(order[slot], sources - first_row[slot])
            yield mine, ids, starts

    def _read(self, shards: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._files is None:
            self._files = _ShardFiles(self.layout, self.manifest["shards"], self.seq_len)
        ids = np.empty((len(rows), self.seq_len), dtype=np.int32)
        starts = np.empty((len(rows), self.seq_len), dtype=bool)
        for shard in dict.fromkeys(shards.tolist()):  # in order of first use
            where = np.flatnonzero(shards == shard)
            ids[where], starts[where] = self._files.read(shard, rows[where])
        return ids, starts

    def loader(self, batch_size: int = 1, num_workers: int = 0, **kwargs) -> "ShardLoader":
        return ShardLoader(self, batch_size=batch_size, num_workers=num_workers, **kwargs)


class ShardLoader(DataLoader):
    """A ``DataLoader`` over a ``ShardDataset`` that keeps the dataset's state exact with workers: batches
    arrive in the order of the rank's stream and are counted as they are handed out.

    ``state_dict()`` after ``k`` batches resumes at batch ``k + 1``: a new loader over a dataset loaded with
    that state yields the same batches as the uninterrupted loader (same batch size), with any number of
    workers. ``persistent_workers`` is refused: workers kept across passes would not see a loaded state.
    """

    def __init__(self, dataset: ShardDataset, batch_size: int = 1, num_workers: int = 0, **kwargs):
        if not isinstance(dataset, ShardDataset):
            raise TypeError(f"ShardLoader takes a ShardDataset, not {type(dataset).__name__}")
        if kwargs.get("persistent_workers"):
            raise ValueError("ShardLoader: persistent_workers=True would keep workers that miss load_state_dict")
        if batch_size is None or batch_size < 1:
            raise ValueError(f"ShardLoader: batch_size must be a positive number of rows, not {batch_size}")
        dataset.block_rows = batch_size
        super().__init__(dataset, batch_size=batch_size, num_workers=num_workers, **kwargs)

    def __iter__(self):
        dataset: ShardDataset = self.dataset
        dataset.begin_iteration()  # before the workers take their copy of the dataset
        for batch in super().__iter__():
            if self.num_workers:
                dataset.advance(len(batch["input_ids"]))
            yield batch
        dataset.consumed = len(dataset)  # also the rows a drop_last batch left out: the pass is over

    def state_dict(self) -> dict[str, Any]:
        return self.dataset.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.dataset.load_state_dict(state)
