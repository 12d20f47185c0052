"""The declarative ``filter`` step: drop rows by an expression over columns (score first, filter later).

Grammar (YAML)::

    {col: NAME, OP: VALUE}          OP in eq ne lt le gt ge in not_in; or {col: NAME, is_null: true|false}
    {all: [EXPR, ...]}  {any: [EXPR, ...]}  {not: EXPR}
    {preset: NAME}                   a registered preset (e.g. gopher, c4, fineweb) expanded to an expression

A comparison with a null is unknown (SQL semantics) and an unknown row is dropped. A step may name the mixture
``sources`` it applies to; rows of other sources pass. Each top-level clause of an ``all`` is evaluated
separately, so a dropped row is counted under the first clause it fails (``lang_score<0.65``), which is what makes
the drops of a filter countable by reason.

Values compared with the ``lang`` column are language codes: aliases are read as gristmill's code (``iw`` as
``he``, ``no`` as ``nb``, ``zh-Hans`` as ``zh``; see ``stages/lang/codes.py``), an unknown code is refused with the
list of known ones, and YAML's boolean false (an unquoted ``no``) is read as ``no``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import field_validator

from gristmill.stages.base import StageOutput, StageParams, StreamingStage, Threshold
from gristmill.stages.lang.codes import LANG_COLUMN, LanguageCodeError, to_code

COMPARISONS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
SET_OPS = ("in", "not_in")
_COMPARE = {"eq": pc.equal, "ne": pc.not_equal, "lt": pc.less, "le": pc.less_equal, "gt": pc.greater,
            "ge": pc.greater_equal}
_PRESETS: dict[str, dict] = {}


class FilterExpressionError(ValueError):
    """A malformed expression; ``path`` is the location inside the expression (e.g. ``all[2].ge``)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


def register_filter_preset(name: str, expression: Mapping[str, Any]) -> None:
    """Register a named expression besides the built-in ones (``stages/quality/presets.py``); names are unique."""
    if name in filter_presets() and filter_presets()[name] != expression:
        raise ValueError(f"filter preset {name!r} is already registered")
    _PRESETS[name] = dict(expression)


def filter_presets() -> dict[str, dict]:
    """The built-in presets (Gopher, C4, FineWeb ...) and the registered ones, by name."""
    from gristmill.stages.quality.presets import PRESETS

    return {**PRESETS, **_PRESETS}


def expand(expr: Any, path: str = "") -> dict:
    """Validate an expression and expand presets; raises FilterExpressionError naming the bad spot."""
    if not isinstance(expr, Mapping):
        raise FilterExpressionError(path, f"expected a mapping, got {type(expr).__name__}")
    keys = set(expr)
    where = f"{path}." if path else ""
    if keys == {"preset"}:
        presets = filter_presets()
        name = expr["preset"]
        if name not in presets:
            raise FilterExpressionError(f"{where}preset", f"unknown preset {name!r}; known: {sorted(presets)}")
        return expand(presets[name], f"{where}preset")
    if keys in ({"all"}, {"any"}):
        (op,) = keys
        items = expr[op]
        if not isinstance(items, list) or not items:
            raise FilterExpressionError(f"{where}{op}", "expected a non-empty list of expressions")
        return {op: [expand(e, f"{where}{op}[{i}]") for i, e in enumerate(items)]}
    if keys == {"not"}:
        return {"not": expand(expr["not"], f"{where}not")}
    if "col" in keys and len(keys) == 2:
        (op,) = keys - {"col"}
        if not isinstance(expr["col"], str):
            raise FilterExpressionError(f"{where}col", "column name must be a string")
        value = expr[op]
        if op in COMPARISONS:
            if isinstance(value, (list, dict)) or value is None:
                raise FilterExpressionError(f"{where}{op}", "expected a scalar")
        elif op in SET_OPS:
            if not isinstance(value, list):
                raise FilterExpressionError(f"{where}{op}", "expected a list")
        elif op == "is_null":
            if not isinstance(value, bool):
                raise FilterExpressionError(f"{where}{op}", "expected true or false")
        else:
            raise FilterExpressionError(
                f"{where}{op}", f"unknown operator; use one of {sorted([*COMPARISONS, *SET_OPS, 'is_null'])}"
            )
        if expr["col"] == LANG_COLUMN and op != "is_null":
            return {"col": LANG_COLUMN, op: _language_codes(value, f"{where}{op}")}
        return dict(expr)
    raise FilterExpressionError(
        path, f"cannot read keys {sorted(keys)}: use {{col, OP}}, all, any, not or preset"
    )


def _language_codes(value: Any, path: str) -> Any:
    """gristmill's code for a compared value (or each value of a list), FilterExpressionError naming the spot."""
    if not isinstance(value, list):
        try:
            return to_code(value)
        except LanguageCodeError as exc:
            raise FilterExpressionError(path, str(exc)) from None
    return [_language_codes(v, f"{path}[{i}]") for i, v in enumerate(value)]


def columns_of(expr: Mapping[str, Any]) -> set[str]:
    """All column names an (expanded) expression reads."""
    if "col" in expr:
        return {expr["col"]}
    if "not" in expr:
        return columns_of(expr["not"])
    (op,) = expr
    return set().union(*(columns_of(e) for e in expr[op]))


def type_errors(expr: Mapping[str, Any], types: Mapping[str, pa.DataType], path: str = "") -> list[str]:
    """Comparisons whose value cannot be compared with the column's type (a number against a string column,
    text against a numeric one), found before any data is read."""
    if "col" in expr:
        (op,) = set(expr) - {"col"}
        col_type = types.get(expr["col"])
        if col_type is None or op == "is_null":
            return []
        values = expr[op] if op in SET_OPS else [expr[op]]
        numeric = pa.types.is_integer(col_type) or pa.types.is_floating(col_type)
        textual = pa.types.is_string(col_type) or pa.types.is_large_string(col_type)
        for v in values:
            is_number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if (numeric and not is_number) or (textual and not isinstance(v, str)):
                return [f"{path or expr['col']}: {op} {v!r} cannot be compared with column {expr['col']!r} "
                        f"of type {col_type}"]
        return []
    if "not" in expr:
        return type_errors(expr["not"], types, f"{path}.not" if path else "not")
    (op,) = expr
    out = []
    for i, e in enumerate(expr[op]):
        out += type_errors(e, types, f"{path}.{op}[{i}]" if path else f"{op}[{i}]")
    return out


def describe(expr: Mapping[str, Any]) -> str:
    """A short human name of an expression, used as the drop reason."""
    if "col" in expr:
        (op,) = set(expr) - {"col"}
        value = expr[op]
        if op in COMPARISONS:
            return f"{expr['col']}{COMPARISONS[op]}{value}"
        if op == "is_null":
            return f"{expr['col']} is {'' if value else 'not '}null"
        return f"{expr['col']} {op.replace('_', ' ')} {value}"
    if "not" in expr:
        return f"not({describe(expr['not'])})"
    (op,) = expr
    return f"{op}(" + ", ".join(describe(e) for e in expr[op]) + ")"


def evaluate(expr: Mapping[str, Any], table: pa.Table) -> pa.ChunkedArray:
    """Boolean mask of the rows the expression keeps. SQL semantics: a comparison with a null is unknown, and
    unknown stays unknown through ``not`` (so ``not: {col: x, lt: 0.5}`` does not keep a row whose x is null);
    only the final result counts unknown as false."""
    return pc.fill_null(_evaluate(expr, table), False)


def _evaluate(expr: Mapping[str, Any], table: pa.Table):
    if "col" in expr:
        name = expr["col"]
        try:
            column = table[name]
        except KeyError:
            raise KeyError(f"filter reads column {name!r}, which the table does not have") from None
        op = next(key for key in expr if key != "col")
        value = expr[op]
        if op in _COMPARE:
            return _COMPARE[op](column, value)
        if op in SET_OPS:
            member = pc.is_in(column, value_set=pa.array(value, type=column.type))
            member = pc.if_else(pc.is_null(column), pa.scalar(None, pa.bool_()), member)
            return member if op == "in" else pc.invert(member)
        return pc.is_null(column) if value else pc.is_valid(column)
    if "not" in expr:
        return pc.invert(_evaluate(expr["not"], table))
    (op,) = expr
    masks = [_evaluate(e, table) for e in expr[op]]
    combine = pc.and_kleene if op == "all" else pc.or_kleene
    out = masks[0]
    for m in masks[1:]:
        out = combine(out, m)
    return out


def reject_reasons(expr: Mapping[str, Any], table: pa.Table, prefix: str = "filter",
                   labels: pa.Array | None = None) -> pa.Array:
    """Per-row drop reason (null = keep): the first failing clause of a top-level ``all``, else the expression.
    ``labels``: the reasons of the top-level clauses, when the caller keeps them (``clause_labels``)."""
    labels = clause_labels(expr, prefix) if labels is None else labels
    return labels.take(first_failing(top_level_clauses(expr), table))


def top_level_clauses(expr: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The clauses of a top-level ``all``, each its own drop reason; else the expression alone."""
    return expr["all"] if set(expr) == {"all"} else [expr]


def clause_labels(expr: Mapping[str, Any], prefix: str) -> pa.Array:
    """The drop reason of each top-level clause."""
    return pa.array([f"{prefix}:{describe(clause)}" for clause in top_level_clauses(expr)], pa.string())


def first_failing(clauses: list[Mapping[str, Any]], table: pa.Table) -> pa.Array:
    """Per row, the index of the first clause it fails (null where it passes them all)."""
    failed = np.stack([~_truth(clause, table)[0] for clause in clauses])
    first = np.where(failed.any(axis=0), failed.argmax(axis=0), len(clauses)).astype(np.int32)
    return pa.array(first, pa.int32(), mask=first == len(clauses))


def _truth(expr: Mapping[str, Any], table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(rows where the expression is true, rows where it is false) as numpy masks: ``evaluate``'s SQL logic with
    unknown as neither. A batch of a crawl holds ~15 rows, where one Arrow call costs ~10 µs whatever the rows and
    a numpy comparison ~1 µs; the Gopher presets are 23 comparisons and their combination."""
    if "col" in expr:
        return _leaf_truth(expr, table)
    if "not" in expr:
        true, false = _truth(expr["not"], table)
        return false, true
    (op,) = expr
    parts = [_truth(e, table) for e in expr[op]]
    trues, falses = np.array([t for t, _ in parts]), np.array([f for _, f in parts])
    if op == "all":
        return trues.all(axis=0), falses.any(axis=0)
    return trues.any(axis=0), falses.all(axis=0)


def _leaf_truth(expr: Mapping[str, Any], table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    op = next(key for key in expr if key != "col")
    values = _comparable_numbers(table, expr["col"], expr[op]) if op in _COMPARE else None
    if values is not None:
        true = _NUMPY_COMPARE[op](values, expr[op])
        return true, ~true
    mask = _to_array(_evaluate(expr, table))
    if mask.null_count == 0:
        true = mask.to_numpy(zero_copy_only=False)
        return true, ~true
    known = mask.is_valid().to_numpy(zero_copy_only=False)
    true = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
    return true, known & ~true


_NUMPY_COMPARE = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
                  "ge": np.greater_equal}


def _comparable_numbers(table: pa.Table, name: str, value: Any) -> np.ndarray | None:
    """The column as numpy values that compare with ``value`` as Arrow compares them, or None where numpy could
    differ (nulls, strings, unsigned 64-bit, a bool against a number): those go through ``_evaluate``. Arrow
    compares in the common type of column and value, so integers widen to int64, and floats, or integers
    against a float, to float64 (numpy would compare a float32 column with 0.1 rounded to float32)."""
    try:
        column = table[name]
    except KeyError:
        return None  # _evaluate names the missing column
    if column.null_count:
        return None
    kind = column.type
    if pa.types.is_boolean(kind):
        return column.to_numpy() if isinstance(value, bool) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if pa.types.is_floating(kind) or (pa.types.is_integer(kind) and isinstance(value, float)):
        return column.to_numpy().astype(np.float64, copy=False)
    if pa.types.is_integer(kind) and kind != pa.uint64() and -2**63 <= value < 2**63:
        return column.to_numpy().astype(np.int64, copy=False)
    return None


def _to_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def numeric_clauses(expr: Mapping[str, Any]) -> list[Threshold]:
    """Every numeric comparison of an expanded expression, as a threshold."""
    if "col" in expr:
        return [Threshold(expr["col"], COMPARISONS[op], float(value)) for op, value in expr.items()
                if op in COMPARISONS and isinstance(value, (int, float)) and not isinstance(value, bool)]
    if "not" in expr:
        return numeric_clauses(expr["not"])
    return [t for key in ("all", "any") for e in expr.get(key, []) for t in numeric_clauses(e)]


class FilterParams(StageParams):
    expr: dict
    # Optional name used in drop reasons instead of "filter".
    reason: str = "filter"
    # Mixture sources the filter applies to; rows of other sources pass untouched. None: every source.
    sources: list[str] | None = None

    @field_validator("expr")
    @classmethod
    def _valid(cls, value: dict) -> dict:
        try:
            return expand(value)
        except FilterExpressionError as exc:
            raise ValueError(str(exc)) from None


class Filter(StreamingStage):
    """Drops rows whose columns fail ``expr``; the YAML step ``- filter: EXPR`` is sugar for this stage."""

    name: ClassVar[str] = "filter_v1"
    Params = FilterParams

    @classmethod
    def thresholds(cls, params: Mapping[str, Any]) -> list[Threshold]:
        return numeric_clauses(expand(params["expr"]))

    @classmethod
    def column_errors(cls, params: Mapping[str, Any],
                      available: Mapping[str, pa.DataType]) -> list[tuple[str, str]]:
        """The expression may only read columns that exist by then, with values of their types."""
        missing = sorted(columns_of(params["expr"]) - set(available))
        if missing:
            return [("filter", f"column(s) {missing} do not exist at this step; available: {sorted(available)}")]
        mismatched = type_errors(params["expr"], available)
        return [("filter", "; ".join(mismatched))] if mismatched else []

    labels: pa.Array | None = None  # the drop reason of each top-level clause, built once

    def process(self, table: pa.Table) -> StageOutput:
        if table.num_rows == 0:
            return StageOutput(table, None)
        if self.labels is None:
            self.labels = clause_labels(self.params.expr, self.params.reason)
        reasons = reject_reasons(self.params.expr, table, labels=self.labels)
        if self.params.sources is not None:
            applies = pc.is_in(table["source"], value_set=pa.array(self.params.sources, pa.string()))
            reasons = pc.if_else(applies, reasons, pa.scalar(None, pa.string()))
        return StageOutput(table, _to_array(reasons))

    @classmethod
    def contract_params(cls, tmp_path) -> dict:
        return {"expr": {"col": "text", "ne": ""}}
