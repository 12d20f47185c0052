"""Parquet reader: one row per record, read batch by batch (bounded memory), no per-row Python."""

from __future__ import annotations

from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gristmill.core import storage
from gristmill.stages.ingest import reasons
from gristmill.stages.ingest.base import NOTES, RECORD_SCHEMA, Reader, ReaderOptions, Unit


class ParquetOptions(ReaderOptions):
    text_field: str = "text"
    id_field: str | None = None  # its value (cast to string) becomes ``origin``; default ``path:row``
    url_field: str | None = None


class ParquetReader(Reader):
    """Parquet files, one row per record -> its text field."""

    name = "ingest.parquet_v1"
    format = "parquet"
    Params = ParquetOptions

    def read(self, unit: Unit) -> Iterator[pa.Table]:
        for path in unit.paths:
            try:
                yield from self._read_file(path)
            except (pa.ArrowInvalid, OSError) as exc:  # not Parquet, a corrupt footer or page, no permission
                kind = "not a Parquet file" if _not_parquet(exc) else None
                text, url, origin, reason = self.unreadable(path, exc, kind)
                yield pa.table([[text], [url], [origin], [reason], pa.nulls(1, RECORD_SCHEMA.field(NOTES).type)],
                               schema=RECORD_SCHEMA)

    def _read_file(self, path: str) -> Iterator[pa.Table]:
        opts: ParquetOptions = self.options  # type: ignore[assignment]
        loc = storage.resolve(path)
        pf = pq.ParquetFile(loc.path, filesystem=None if loc.is_local else loc.fs)
        wanted = [f for f in (opts.text_field, opts.id_field, opts.url_field) if f is not None]
        missing = [f for f in wanted if f not in pf.schema_arrow.names]
        if missing:
            raise ValueError(
                f"{path}: no column {missing[0]!r} (text_field/id_field/url_field); "
                f"columns are {pf.schema_arrow.names}"
            )
        first_row = 0
        for batch in pf.iter_batches(batch_size=self.limits.batch_rows, columns=list(dict.fromkeys(wanted))):
            yield self._records(path, batch, first_row)
            first_row += batch.num_rows

    def _records(self, path: str, batch: pa.RecordBatch, first_row: int) -> pa.Table:
        opts: ParquetOptions = self.options  # type: ignore[assignment]
        n = batch.num_rows
        text = _as_string(batch.column(opts.text_field), path, opts.text_field, pa.large_string())
        missing = pc.is_null(text)
        too_large = pc.fill_null(pc.greater(pc.binary_length(text), self.limits.max_record_bytes), False)
        reason = pc.if_else(
            missing,
            pa.scalar(reasons.MISSING_TEXT_FIELD),
            pc.if_else(too_large, pa.scalar(reasons.RECORD_TOO_LARGE), pa.scalar(None, pa.string())),
        )
        text = pc.if_else(pc.or_(missing, too_large), pa.scalar("", pa.large_string()), text)
        if opts.url_field is not None:
            url = _as_string(batch.column(opts.url_field), path, opts.url_field, pa.string())
        else:
            url = pa.nulls(n, pa.string())
        row_origin = pc.binary_join_element_wise(
            pa.scalar(path), pc.cast(pa.arange(first_row, first_row + n), pa.string()), ":"
        )
        if opts.id_field is not None:
            ids = _as_string(batch.column(opts.id_field), path, opts.id_field, pa.string())
            origin = pc.coalesce(ids, row_origin)
        else:
            origin = row_origin
        return pa.table([text, url, origin, reason, pa.nulls(n, RECORD_SCHEMA.field(NOTES).type)], schema=RECORD_SCHEMA)


def _not_parquet(exc: BaseException) -> bool:
    return "magic bytes" in str(exc).lower() or "not a parquet file" in str(exc).lower()


def _as_string(column: pa.Array, path: str, field: str, to: pa.DataType) -> pa.Array:
    try:
        return pc.cast(column, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(f"{path}: column {field!r} of type {column.type} cannot be read as text: {exc}") from None
