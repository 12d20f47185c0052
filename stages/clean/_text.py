"""Helpers shared by the clean stages: get the text column as one array, restrict work to the rows of chosen
sources, and put a rewritten text column back without touching any other column."""

from __future__ import annotations

from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

TEXT = "text"
SOURCE = "source"


def text_array(table: pa.Table) -> pa.Array:
    """The ``text`` column as one contiguous large_string array (compute kernels and masks want one chunk)."""
    column = table.column(TEXT)
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_large_string(array.type):
        array = array.cast(pa.large_string())
    return array


def with_text(table: pa.Table, text: pa.Array) -> pa.Table:
    """``table`` with its ``text`` column replaced, same position and field name, every other column as is."""
    index = table.schema.get_field_index(TEXT)
    field = table.schema.field(index)
    if text.type != field.type:
        text = text.cast(field.type)
    return table.set_column(index, field, text)


def source_mask(table: pa.Table, sources: list[str] | None) -> pa.Array | None:
    """Rows a stage applies to: those whose ``source`` is in ``sources``; None means every row."""
    if sources is None:
        return None
    column = table.column(SOURCE)
    mask = pc.is_in(column, value_set=pa.array(sources, pa.string()))
    mask = mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask
    return pc.fill_null(mask, False)


def on_rows(array: pa.Array, mask: pa.Array | None, fn: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """Apply ``fn`` (array -> array of the same length) to the rows where ``mask`` is true, keep the others.

    Lets a stage pay for an expensive rewrite only on the rows a cheap pre-check selected (or only on the
    sources it applies to). ``mask`` None means all rows.
    """
    if mask is None:
        return fn(array)
    selected = int(pc.sum(mask).as_py() or 0)
    if selected == 0:
        return array
    if selected == len(array):
        return fn(array)
    changed = fn(array.filter(mask))
    return pc.replace_with_mask(array, mask, changed.cast(array.type))

