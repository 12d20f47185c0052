"""Hugging Face datasets reader: a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, or a
hub-style folder of Parquet / JSON Lines files (``data/train-00000-of-00002.parquet``, ``train.jsonl`` ...).

The input's path names the folder; the plan asks ``expand_directory`` for its data files, one unit each, so a
``save_to_disk`` folder is read with pyarrow (Arrow IPC streams, through ``gristmill.core.storage``: local or
object store alike) without importing ``datasets``. ``split`` picks a split of a ``DatasetDict`` (subfolders named
in ``dataset_dict.json``) or of a hub folder (the split a file belongs to is its folder's name or the part of its
name before ``-``/``_``/``.``, as the hub names them); a folder with several splits and no ``split`` is an error
that lists them.
"""

from __future__ import annotations

import re
from typing import Iterator

import pyarrow as pa

from gristmill.core import storage
from gristmill.stages.ingest.base import InputFileError, Unit
from gristmill.stages.ingest.jsonl import JsonlReader
from gristmill.stages.ingest.parquet import ParquetOptions, ParquetReader

ARROW_SUFFIX = ".arrow"
PARQUET_SUFFIX = ".parquet"
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".json.gz", ".json.zst")
_HUB_SPLIT = re.compile(r"^([A-Za-z][A-Za-z0-9]*)(?:[-_.]|$)")


class HfDatasetError(ValueError):
    """A folder that is neither a ``save_to_disk`` dataset nor a hub-style folder, or an unknown split."""


class HfOptions(ParquetOptions):
    split: str | None = None  # a split of a DatasetDict or of a hub folder; required where there are several


class HfReader(ParquetReader):
    """A ``save_to_disk`` folder (Dataset or DatasetDict) or a hub-style folder of Parquet / JSON Lines files."""

    name = "ingest.hf_v1"
    format = "hf"
    Params = HfOptions

    def expand_directory(self, path: str) -> list[str]:
        """The data files of the dataset folder ``path``, in the order the dataset lists them."""
        folder = storage.resolve(path)
        split = self.options.split  # type: ignore[attr-defined]
        if (folder / "dataset_dict.json").is_file():
            splits = (folder / "dataset_dict.json").read_json()["splits"]
            chosen = _choose_split(path, split, splits)
            return _saved_files(folder / chosen)
        if (folder / "state.json").is_file():
            if split is not None:
                saved = (folder / "state.json").read_json().get("_split")
                if saved is not None and saved != split:
                    raise HfDatasetError(f"{path}: a saved dataset of split {saved!r}, not {split!r}")
            return _saved_files(folder)
        return _hub_files(path, folder, split)

    def _read_file(self, path: str) -> Iterator[pa.Table]:
        name = storage.resolve(path).name
        try:
            if name.endswith(ARROW_SUFFIX):
                yield from self._read_arrow(path)
            elif name.endswith(JSONL_SUFFIXES):
                yield from self._read_jsonl(path)
            else:
                yield from super()._read_file(path)
        except ValueError as exc:
            if isinstance(exc, pa.ArrowException):
                raise  # a corrupt file: read() makes it a rejected row or an error, per the input's on_error
            raise InputFileError(str(exc)) from exc  # a column the options name is not in the dataset

    def _read_arrow(self, path: str) -> Iterator[pa.Table]:
        """A ``save_to_disk`` shard: an Arrow IPC stream, re-batched to the batch limits."""
        opts: HfOptions = self.options  # type: ignore[assignment]
        loc = storage.resolve(path)
        source = pa.memory_map(loc.path, "r") if loc.is_local else loc.open_input()
        with source, pa.ipc.open_stream(source) as stream:
            names = stream.schema.names
            wanted = list(dict.fromkeys(f for f in (opts.text_field, opts.id_field, opts.url_field) if f is not None))
            missing = [f for f in wanted if f not in names]
            if missing:
                raise ValueError(f"{path}: no column {missing[0]!r} (text_field/id_field/url_field); "
                                 f"columns are {names}")
            first_row = 0
            pending: list[pa.RecordBatch] = []
            for batch in stream:
                pending.append(batch.select(wanted))
                if sum(b.num_rows for b in pending) >= self.limits.batch_rows:
                    chunks, pending = _full_batches(pending, self.limits.batch_rows)
                    for chunk in chunks:
                        yield self._records(path, chunk, first_row)
                        first_row += chunk.num_rows
            rest = pa.Table.from_batches(pending) if pending else None
            if rest is not None and rest.num_rows:
                yield self._records(path, rest.combine_chunks().to_batches()[0], first_row)

    def _read_jsonl(self, path: str) -> Iterator[pa.Table]:
        reader = JsonlReader(self.options, self.limits, self.base_dir, self.skip_unreadable_files)  # type: ignore[arg-type]
        yield from reader.read(Unit(0, (path,)))


def _full_batches(batches: list[pa.RecordBatch], rows: int) -> tuple[list[pa.RecordBatch], list[pa.RecordBatch]]:
    """``batches`` cut into batches of exactly ``rows`` rows, and the rows left over."""
    table = pa.Table.from_batches(batches)
    full = table.num_rows - table.num_rows % rows
    chunks = [table.slice(start, rows).combine_chunks().to_batches()[0] for start in range(0, full, rows)]
    return chunks, table.slice(full).to_batches() if full < table.num_rows else []


def _choose_split(path: str, split: str | None, splits: list[str]) -> str:
    if split is None:
        if len(splits) == 1:
            return splits[0]
        raise HfDatasetError(f"{path}: a dataset with splits {splits}: choose one with options.split")
    if split not in splits:
        raise HfDatasetError(f"{path}: no split {split!r}; the dataset's splits are {splits}")
    return split


def _saved_files(folder: storage.Location) -> list[str]:
    state = (folder / "state.json").read_json()
    return [str(folder / f["filename"]) for f in state["_data_files"]]


def _hub_files(path: str, folder: storage.Location, split: str | None) -> list[str]:
    files = [f for f in folder.walk_files() if _is_data_file(f.name) and not _hidden(f, folder)]
    if not files:
        raise HfDatasetError(f"{path}: neither a save_to_disk folder (state.json, dataset_dict.json) nor a folder "
                             f"of {PARQUET_SUFFIX}, {ARROW_SUFFIX} or {'/'.join(JSONL_SUFFIXES)} files")
    by_split: dict[str, list[str]] = {}
    for f in files:
        by_split.setdefault(_hub_split(f, folder), []).append(str(f))
    named = sorted(s for s in by_split if s)
    if split is None:
        if len(by_split) == 1:
            return next(iter(by_split.values()))
        raise HfDatasetError(f"{path}: files of splits {named}: choose one with options.split")
    if split not in by_split:
        raise HfDatasetError(f"{path}: no file of split {split!r}; the folder's splits are {named}")
    return by_split[split]


def _is_data_file(name: str) -> bool:
    return name.endswith((PARQUET_SUFFIX, ARROW_SUFFIX) + JSONL_SUFFIXES)


def _hidden(f: storage.Location, folder: storage.Location) -> bool:
    return any(p.startswith((".", "_")) for p in _relative_parts(f, folder))


def _relative_parts(f: storage.Location, folder: storage.Location) -> list[str]:
    return f.path[len(folder.path.rstrip("/")) + 1:].split("/")


def _hub_split(f: storage.Location, folder: storage.Location) -> str:
    """The split a hub file belongs to: ``data/train/x.parquet`` or ``data/train-0000-of-0002.parquet`` -> train."""
    parts = _relative_parts(f, folder)
    for directory in parts[:-1]:
        if directory not in ("data",) and _HUB_SPLIT.fullmatch(directory + "-"):
            return directory
    match = _HUB_SPLIT.match(parts[-1])
    return match.group(1) if match else ""
