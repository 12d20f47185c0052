"""The stage contract.

A streaming stage maps one ``pyarrow.Table`` (a batch of the document table) to a ``StageOutput``: the same
rows, possibly with changed or added columns, plus an optional ``reject_reason`` string array aligned with
the rows (null = keep). The framework splits kept and rejected rows, checks the row accounting and records
stats, so a stage never has to count anything itself and can never lose a row silently.

A head stage starts the run: it turns one unit of the pipeline's input (one file, or a group of small files) into
record batches. It yields every record it sees, kept or rejected, and the framework numbers the rows into
``doc_id``s, counts its notes, applies the input's size limits, ``sample`` and ``limit`` and accounts every row
the same way as for any other stage. ``inputs[].format`` names the head stage that reads an input.

A global stage sees the whole output of the previous segment at once (dedup clustering, tokenizer training,
mixture solving); it runs between streaming segments. It fans work out through the ``Runtime`` in its context
and reads and writes only through the ``Location``s its context and the ``RunLayout`` give it, so it never
learns which executor runs it or where the run directory lives.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, ClassVar, Iterator, Mapping

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from gristmill.core.layout import RunLayout
from gristmill.core.runtime import Runtime
from gristmill.core.stats import StepStats
from gristmill.core.storage import Location, resolve

# Columns every document table carries from ingest on (DESIGN.md, "The document table").
DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.uint64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("origin", pa.string(), nullable=False),
    ]
)

# Internal column: the ingest part a row belongs to. Parts are the unit of output files, stats and rejects,
# so they never depend on how an executor happens to batch rows.
PART_COLUMN = "_part"
REJECT_REASON = "reject_reason"


@dataclasses.dataclass(frozen=True)
class Threshold:
    """A numeric cut a step applies (``lang_score >= 0.65`` for ``lang``), for the report."""

    column: str
    op: str
    value: float
    lang: str | None = None


class StageParams(BaseModel):
    """Base class of every stage's parameters: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one worker of the stage needs. ``actor`` stages keep state (a model): set up once per worker process
    and reused by every batch that process runs."""

    num_cpus: float = 1.0
    actor: bool = False


@dataclasses.dataclass
class StageOutput:
    """Rows out of a stage: ``table`` has exactly the input's rows; ``reject_reason`` (null = keep) is aligned."""

    table: pa.Table
    reject_reason: pa.Array | None = None
    # Rows the stage noted without dropping them (name -> rows), into the step's counters. A counter that
    # covers every row of a batch is split over the batch's parts; any other needs a batch of one part.
    counters: dict[str, int] | None = None


class MissingDependency(ImportError):
    """An optional dependency a stage needs is not installed; the message carries the install hint."""


def require(module: str, extra: str) -> Any:
    """Import ``module`` or fail early with the pip command that installs it. Stages ask per record or batch, so
    a module already imported is answered from ``sys.modules`` (``import_module`` takes the import lock)."""
    loaded = sys.modules.get(module)
    if loaded is not None:
        return loaded
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependency(
            f"{module!r} is required here: pip install 'gristmill[{extra}]'"
        ) from exc


class Stage:
    """Base of all stages. Subclasses set ``name`` (versioned, e.g. ``clean.normalize_v1``) and ``Params``."""

    name: ClassVar[str] = ""
    # What the stage is to the framework: ``head`` (reads input units), ``streaming`` or ``global``.
    kind: ClassVar[str] = "streaming"
    Params: ClassVar[type[StageParams]] = StageParams
    resources: ClassVar[Resources] = Resources()
    # Columns this stage adds (name -> type); the planner checks filter expressions against them.
    output_columns: ClassVar[Mapping[str, pa.DataType]] = {}
    # Columns this stage needs besides the document table's.
    required_columns: ClassVar[tuple[str, ...]] = ()
    is_global: ClassVar[bool] = False
    # Set by the executor before ``setup()``: the run's layout, so a stage can load what an earlier global
    # step left there (e.g. ``layout.tokenizer``). None when a stage is used on its own.
    layout: RunLayout | None = None
    # Set by the executor before ``setup()``: the CPUs this worker may use (for a native library's thread
    # pool); None when not limited (in-process runs use every core).
    worker_cpus: int | None = None

    def __init__(self, params: StageParams | Mapping[str, Any] | None = None):
        if params is None or isinstance(params, Mapping):
            params = self.Params(**(params or {}))
        self.params = params

    @classmethod
    def thresholds(cls, params: Mapping[str, Any]) -> list[Threshold]:
        """The numeric cuts this step applies with these params (none for most stages)."""
        return []

    @classmethod
    def column_errors(cls, params: Mapping[str, Any],
                      available: Mapping[str, pa.DataType]) -> list[tuple[str, str]]:
        """What is wrong with the columns this step would read, given the columns that exist before it (for
        the planner, before any data is read): (YAML key within the step, or "", message) pairs."""
        missing = [c for c in cls.required_columns if c not in available]
        if missing:
            return [("", f"stage {cls.name} needs column(s) {missing} from an earlier step")]
        return []

    def setup(self) -> None:
        """Load per-worker state (models, tokenizers). Called once per worker before the first batch."""


class StreamingStage(Stage):
    """A batch-to-batch stage. Must be vectorized, deterministic and total (see module docstring)."""

    def process(self, table: pa.Table) -> StageOutput:  # pragma: no cover - abstract
        raise NotImplementedError


# --- head stages ------------------------------------------------------------------------------------------

# What a head stage yields per batch: every record it saw, in order (the framework adds doc_id, source, _part).
NOTES = "notes"
RECORD_SCHEMA = pa.schema(
    [
        pa.field("text", pa.large_string()),
        pa.field("url", pa.string()),
        pa.field("origin", pa.string()),
        pa.field(REJECT_REASON, pa.string()),
        # Names of things that happened to a record without rejecting it (bytes replaced while decoding, a payload
        # the crawler cut); the framework counts each name once per row into the step's counters. null = none.
        pa.field(NOTES, pa.list_(pa.string())),
    ]
)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds that keep one record from blowing up a worker's memory."""

    # Raw bytes of one record (HTML, a JSON line, a file) read at most; larger ones are rejected unread.
    max_record_bytes: int = 16 * 1024 * 1024
    # Rows per yielded batch and approximate bytes of text per batch.
    batch_rows: int = 2048
    batch_bytes: int = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Unit:
    """One unit of input work: ``paths`` (one file, or several small files) read by one task. ``index`` is the
    high half of the ``doc_id`` of every record read from it."""

    index: int
    paths: tuple[str, ...]


class InputFileError(RuntimeError):
    """A file of an input that cannot be read at all: a directory, no permission, not in the input's format."""


class HeadStage(Stage):
    """Reads the pipeline's input: plans units of work over an input's files (``units``) and turns one unit into
    record batches of ``RECORD_SCHEMA`` (``read``). ``format`` is the short name ``inputs[].format`` may give
    instead of the stage's versioned name; ``Params`` are the input's ``options``.

    A head stage yields **every record it sees, in order**: a record that is no document (a non-HTML response,
    a truncated record, an undecodable line) is a row with its ``reject_reason``, and the rest of the file is
    still read. The framework builds ``doc_id = (unit.index << 32) | ordinal`` from the rows' order, so ids are
    stable for the same inputs whatever is later filtered. ``setup()`` runs before each unit is read (readers keep
    no state across files; one that must can cache it in its module)."""

    kind: ClassVar[str] = "head"
    format: ClassVar[str] = ""

    def __init__(self, params: StageParams | Mapping[str, Any] | None = None, limits: Limits | None = None,
                 base_dir: str | None = None, skip_unreadable_files: bool = False):
        super().__init__(params)
        self.limits = limits or Limits()
        # The pipeline file's directory: relative paths in params (e.g. ``relative_to``) are read against it.
        self.base_dir = base_dir
        # The input's ``on_error: skip``: a file that cannot be read becomes a rejected row instead of an error.
        self.skip_unreadable_files = skip_unreadable_files

    @property
    def options(self) -> StageParams:
        """The input's ``options`` (this stage's params)."""
        return self.params

    def expand_directory(self, path: str) -> list[str] | None:
        """The files to read when an input's path names the folder ``path``, for a stage that reads folders (a
        dataset saved as a folder); None (the default): a folder is not an input of this stage."""
        return None

    def units(self, paths: list[str], first_index: int) -> list[Unit]:
        """Split the input's (sorted) files into units numbered from ``first_index``; one per file by default."""
        return [Unit(first_index + i, (p,)) for i, p in enumerate(paths)]

    def read(self, unit: Unit) -> Iterator[pa.Table]:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclasses.dataclass
class GlobalContext:
    """What a global stage's ``build`` gets: the committed parts of the previous segment, a directory of its
    own for what it keeps (``state``: signatures, filters, staging files), the run's layout for run-wide
    files (the tokenizer, shards, manifest), the runtime to fan work out with, and the run's seed. ``stats`` is
    where ``build`` records what it counted and measured; the framework stores them with the run's statistics
    (a stage never writes statistics files of its own)."""

    input_parts: list[Location]
    state: Location
    layout: RunLayout
    runtime: Runtime
    seed: int
    stats: StepStats = dataclasses.field(default_factory=StepStats)

    @classmethod
    def for_step(cls, layout: RunLayout | str | Location, stage_name: str, position: int,
                 input_parts: list, runtime: Runtime, seed: int) -> "GlobalContext":
        """The context of the global step at ``position`` of a run (its state directory created)."""
        if not isinstance(layout, RunLayout):
            layout = RunLayout(layout)
        ctx = cls([resolve(p) for p in input_parts], layout.step_state(stage_name, position), layout, runtime, seed)
        ctx.state.mkdir()
        return ctx

    def map(self, fn, items: list, num_cpus: float = 1.0) -> list:
        """``[fn(item) for item in items]``, in parallel where the runtime can, in order."""
        return self.runtime.map(fn, items, num_cpus=num_cpus)


class GlobalStage(Stage):
    """A barrier over the whole dataset, in two phases.

    ``build(ctx)`` sees every input part (it may fan work out with ``ctx.map`` / ``ctx.runtime``), records its
    statistics in ``ctx.stats`` and returns a picklable state (e.g. the ``doc_id``s to drop). ``apply(table, state)`` then runs per part like a
    streaming stage, so removal is a vectorized anti-join on ``doc_id`` with the usual accounting, and the
    streaming stages after it run in the same pass.
    """

    is_global: ClassVar[bool] = True
    kind: ClassVar[str] = "global"
    # The error ``build`` raises on an input with no rows, for a step that cannot produce anything from
    # nothing (a mixture with every source missing); None means an empty input gives an empty output.
    empty_input_error: ClassVar[type[Exception] | None] = None

    def build(self, ctx: GlobalContext) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, table: pa.Table, state: Any) -> StageOutput:
        return StageOutput(table, None)


def keep_all(table: pa.Table) -> StageOutput:
    return StageOutput(table, None)
