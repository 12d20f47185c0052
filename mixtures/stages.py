"""``mixture.pack_v1``: the global step that solves the mixture, packs every source and writes the shards.

``build(ctx)``:
1. counts tokens per source from the ``n_tokens`` column alone (one task per input part);
2. solves the mixture (fails here, before any file is touched, when it is infeasible);
3. draws each source's packing order from the counts alone and cuts it into token ranges of whole rows, whose
   first document and offset come from a prefix sum of the documents' spans: each range is packed apart from
   the others, into exactly the rows the whole source would have put there;
4. splits the parts by source and range (one task per part: each part's tokens are read once) and packs every
   range (one task each): a small build's tasks hand their output on through the runtime; a larger one's
   (over ``memory_staging_bytes``) stage it as Arrow IPC files under the step's ``staging/``;
5. writes the shards (one task per shard), then ``manifest.json``, and removes the staging files.
A build that fails keeps what it staged; the next build with the same inputs, parameters, seed and ranges
reuses it. The shards are the same for any number of ranges, so for any number of workers, and the same
whether staged in memory or in files.
``apply`` passes the documents through unchanged.

Every fanned-out phase records its task count, its tasks' summed seconds and its wall time in ``ctx.stats``
(``phase.NAME.tasks``, ``phase.NAME.task_seconds``, ``phase.NAME.wall_seconds``), so a scaling model can tell
the build's parallel work from its serial rest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Any, ClassVar, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from gristmill.mixtures import packer, shards
from gristmill.mixtures.solver import InfeasibleMixture, MixturePlan, MixtureSolver, MixtureSpec, load_mixture
from gristmill.core.layout import TOKENIZER_FILE, RunLayout
from gristmill.core.stats import StepStats
from gristmill.core.storage import WHOLE_READ_MAX_BYTES, Location, resolve
from gristmill.stages.base import GlobalContext, GlobalStage, StageParams, require

SEPARATOR_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
DEFAULT_MIXTURE = "llama"
# Packing tasks per CPU (more than one, so that uneven ranges even out) and the fewest tokens worth a task.
TASKS_PER_CPU = 2
MIN_TASK_TOKENS = 1 << 20
STAGING_FORMAT = 2  # bumped when the staged files change, so a resumed build never reads an older layout


class MixturePackParams(StageParams):
    # A preset name (``llama``) or a YAML path; or ``ratios`` instead. Neither: the LLaMA preset.
    mixture: str | None = None
    ratios: dict[str, float] | None = None
    # Tokens in all; null = as many as the max_epochs caps allow.
    total_tokens: int | None = Field(None, gt=0)
    # Per-source caps on repetition; override the preset's suggestions; others get default_max_epochs.
    max_epochs: dict[str, float] = {}
    default_max_epochs: float = Field(1.0, gt=0)
    seq_len: int = Field(2048, gt=0)
    rows_per_shard: int = Field(8192, gt=0)
    row_group_rows: int = Field(1024, gt=0)
    pad_last: bool = False
    compression_level: int = Field(3, ge=1, le=22)
    # Path of tokenizer.json; default RUN_DIR/tokenizer/tokenizer.json (separator id and sha256).
    tokenizer: str | None = None
    # Tokens the packer gathers at once (its working memory), and the most tokens one packing task packs.
    chunk_tokens: int = Field(packer.DEFAULT_CHUNK_TOKENS, gt=0)
    # Packed output (4 bytes a token) up to this size passes between the build's tasks in memory, through the
    # runtime, instead of through staging files (a failed build then packs it again); 0: always staged files.
    memory_staging_bytes: int = Field(64 << 20, ge=0)

    @model_validator(mode="after")
    def _one_mixture(self) -> "MixturePackParams":
        if self.mixture is not None and self.ratios is not None:
            raise ValueError("give either `mixture` (a preset name or YAML path) or `ratios`, not both")
        return self

    def spec(self) -> MixtureSpec:
        if self.ratios is not None:
            return MixtureSpec(name=None, ratios=dict(self.ratios), max_epochs={})
        return load_mixture(self.mixture or DEFAULT_MIXTURE)

    def solver(self) -> MixtureSolver:
        spec = self.spec()
        return MixtureSolver(
            spec.ratios, {**spec.max_epochs, **self.max_epochs}, self.default_max_epochs, name=spec.name
        )


@dataclasses.dataclass(frozen=True)
class TokenizerInfo:
    path: Location
    sha256: str
    sep_id: int
    pad_id: int
    vocab_size: int

    def reference(self, layout: RunLayout) -> dict[str, Any]:
        """What the manifest and every shard's key-value metadata say about the tokenizer. Documents are
        separated by ``<|endoftext|>``, which is therefore the eos token and, as in GPT-2, the bos token too."""
        return {
            "path": relative(self.path, layout),
            "sha256": self.sha256,
            "vocab_size": self.vocab_size,
            "separator_id": self.sep_id,
            "bos_id": self.sep_id,
            "eos_id": self.sep_id,
            "pad_id": self.pad_id,
        }


def load_tokenizer_info(path: Location) -> TokenizerInfo:
    tokenizers = require("tokenizers", "tokenize")
    try:
        spec = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise FileNotFoundError(
            f"{path}: no tokenizer (train one with tokenize.bbpe_v1 first, or set `tokenizer:` to its path)"
        ) from None
    tok = tokenizers.Tokenizer.from_str(spec.decode("utf-8"))
    sep_id = tok.token_to_id(SEPARATOR_TOKEN)
    if sep_id is None:
        raise ValueError(f"{path}: the tokenizer has no {SEPARATOR_TOKEN!r} token to separate documents")
    pad_id = tok.token_to_id(PAD_TOKEN)
    return TokenizerInfo(path, hashlib.sha256(spec).hexdigest(), sep_id, sep_id if pad_id is None else pad_id,
                         tok.get_vocab_size(with_added_tokens=True))


def tokenizer_in_run(tok: TokenizerInfo, ctx: GlobalContext) -> TokenizerInfo:
    """The tokenizer as a file of the run: one from elsewhere is copied into the step's state directory, so
    the shards reference it by a run-relative path (the same wherever the run directory is) and it travels
    with them."""
    try:
        ctx.layout.relative(tok.path)
        return tok
    except ValueError:
        copy = ctx.state / TOKENIZER_FILE
        copy.write_bytes(tok.path.read_bytes())
        return dataclasses.replace(tok, path=copy)


def timed_call(job: tuple) -> tuple[Any, float]:
    fn, item = job
    start = time.perf_counter()
    return fn(item), time.perf_counter() - start


def timed_map(ctx: GlobalContext, phase: str, fn, items: list) -> list:
    """``ctx.map(fn, items)``, recording the phase's tasks, their summed seconds and its wall time."""
    start = time.perf_counter()
    results = ctx.map(timed_call, [(fn, item) for item in items])
    ctx.stats.count(f"phase.{phase}.tasks", len(items))
    ctx.stats.figure(f"phase.{phase}.task_seconds", sum(seconds for _, seconds in results))
    ctx.stats.figure(f"phase.{phase}.wall_seconds", time.perf_counter() - start)
    return [result for result, _ in results]


# --- step 1: count -----------------------------------------------------------------------------------------


def count_part(path: Location) -> pa.Table:
    """doc_id, source, n_tokens of one part: the only columns counting needs."""
    try:
        table = path.read_parquet(columns=["doc_id", "source", "n_tokens"])
    except (KeyError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{path}: needs columns doc_id, source, n_tokens (run tokenize first): {exc}") from exc
    return table.combine_chunks()


@dataclasses.dataclass(frozen=True)
class DocIndex:
    """Every document with tokens, in (part, row) order: its part, row in the part, doc_id, span (n_tokens + 1
    separator) and source."""

    part: np.ndarray
    row: np.ndarray
    doc_id: np.ndarray
    span: np.ndarray
    source: np.ndarray  # index into ``sources``
    sources: list[str]

    def of(self, source: str) -> np.ndarray:
        if source not in self.sources:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.source == self.sources.index(source))

    def tokens_per_source(self) -> dict[str, int]:
        sums = np.bincount(self.source, weights=self.span, minlength=len(self.sources))
        return {s: int(n) for s, n in zip(self.sources, sums)}

    def docs_per_source(self) -> dict[str, int]:
        return {s: int(n) for s, n in zip(self.sources, np.bincount(self.source, minlength=len(self.sources)))}


def build_index(counts: list[pa.Table]) -> DocIndex:
    table = pa.concat_tables(counts)
    n_tokens = pc.fill_null(table.column("n_tokens"), 0).to_numpy().astype(np.int64)
    rows = np.array([t.num_rows for t in counts], dtype=np.int64)
    part = np.repeat(np.arange(len(counts)), rows)
    row = np.arange(len(part)) - np.repeat(np.cumsum(rows) - rows, rows)
    encoded = pc.dictionary_encode(table.column("source")).combine_chunks()
    names = encoded.dictionary.to_pylist()
    order = sorted(range(len(names)), key=names.__getitem__)
    remap = np.empty(len(names), dtype=np.int64)
    remap[order] = np.arange(len(names))
    codes = remap[encoded.indices.to_numpy(zero_copy_only=False)] if len(names) else np.zeros(0, np.int64)
    keep = n_tokens > 0  # an empty document would add only a separator
    return DocIndex(
        part=part[keep],
        row=row[keep],
        doc_id=table.column("doc_id").to_numpy().astype(np.uint64)[keep],
        span=n_tokens[keep] + 1,
        source=codes[keep],
        sources=[names[i] for i in order],
    )


# --- step 3: draw each source and cut it into token ranges (on the driver) ---------------------------------


@dataclasses.dataclass(frozen=True)
class TokenRange:
    """Rows [row_start, row_stop) of one source's packed stream: the stream documents ``first``..``stop`` - 1
    cover them, ``skip`` tokens of the first one lie before the range, and ``tokens`` (from the first one's
    start) end it, at the range's last row or where the stream ends."""

    row_start: int
    row_stop: int
    first: int
    stop: int
    skip: int
    tokens: int


@dataclasses.dataclass(frozen=True)
class SourceDraw:
    """One source's documents (``docs``: positions in the index, in (part, row) order), the order they are
    packed in (``stream``: indices into ``docs``) and that stream cut into token ranges, one task each."""

    source: str
    docs: np.ndarray
    stream: np.ndarray
    ranges: tuple[TokenRange, ...]

    def range_docs(self, r: TokenRange) -> np.ndarray:
        """Indices into ``docs`` of the documents range ``r`` packs, ascending (so in (part, row) order)."""
        return np.unique(self.stream[r.first : r.stop])


def task_tokens(total_stream_tokens: int, cpus: int, chunk_tokens: int) -> int:
    """Tokens per packing task: enough tasks for every CPU (TASKS_PER_CPU each, for balance), none under
    MIN_TASK_TOKENS (a task costs scheduling and reads), none over ``chunk_tokens`` (the packer's working set)."""
    share = -(-total_stream_tokens // (TASKS_PER_CPU * max(cpus, 1)))
    return max(1, min(max(share, MIN_TASK_TOKENS), chunk_tokens))


def cut_ranges(starts: np.ndarray, stream_tokens: int, rows: int, seq_len: int, range_tokens: int
               ) -> tuple[TokenRange, ...]:
    """The stream (its documents starting at ``starts``, a prefix sum of their spans) cut into ranges of
    whole rows of about ``range_tokens`` tokens each."""
    rows_per_range = max(1, range_tokens // seq_len)
    ranges = []
    for row_start in range(0, rows, rows_per_range):
        row_stop = min(rows, row_start + rows_per_range)
        lo, hi = row_start * seq_len, min(row_stop * seq_len, stream_tokens)
        first = int(np.searchsorted(starts, lo, side="right")) - 1
        stop = int(np.searchsorted(starts, hi, side="left"))
        ranges.append(TokenRange(row_start, row_stop, first, stop, lo - int(starts[first]), hi - int(starts[first])))
    return tuple(ranges)


def draw_source(source: str, plan: MixturePlan, index: DocIndex, seed: int, range_tokens: int) -> SourceDraw:
    docs = index.of(source)  # already in (part, row) order
    p = plan.sources[source]
    stream = packer.draw_stream(index.doc_id[docs], index.span[docs], p.stream_tokens, seed)
    spans = index.span[docs][stream]
    starts = np.cumsum(spans) - spans
    return SourceDraw(source, docs, stream, cut_ranges(starts, p.stream_tokens, p.rows, plan.seq_len, range_tokens))


def staging_key(params: "MixturePackParams", seed: int, tok: "TokenizerInfo", parts: list[Location],
                index: DocIndex, draws: list[SourceDraw]) -> str:
    """What the staged files depend on: a resumed build reuses them only when all of it is the same."""
    h = hashlib.sha256(json.dumps({"format": STAGING_FORMAT, "params": params.model_dump(mode="json"),
                                   "seed": seed, "tokenizer": tok.sha256, "parts": [p.uri for p in parts],
                                   "sources": index.sources}, sort_keys=True).encode())
    for array in (index.part, index.row, index.doc_id, index.span, index.source):
        h.update(np.ascontiguousarray(array).tobytes())
    for d in draws:
        h.update(json.dumps([d.source, [dataclasses.astuple(r) for r in d.ranges]]).encode())
    return h.hexdigest()[:16]


# --- step 4: split parts by range, then pack every range -----------------------------------------------------
#
# Small builds (packed output up to ``memory_staging_bytes``) pass the split batches and the packed ranges between
# tasks through the runtime; larger ones stage them as Arrow IPC files under ``staging/``, which a failed build
# keeps and the next one reuses. Either way a range packs the same token lists into the same rows.


@dataclasses.dataclass(frozen=True)
class SplitTake:
    """What one part gives one source: the part's rows holding the source's documents ``rows`` (positions in the
    part), one record batch per range in ``batch_rows``."""

    source: str
    rows: np.ndarray
    batch_rows: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class SplitJob:
    part: Location
    index: int
    takes: tuple[SplitTake, ...]
    staging: Location | None  # None: the batches are returned, not staged


def split_file(staging: Location, source: str, part_index: int) -> Location:
    return staging / split_name(source, part_index)


def split_name(source: str, part_index: int) -> str:
    return f"split/{_safe(source)}/{part_index:06d}.arrow"


def range_name(source: str, range_index: int) -> str:
    return f"packed/{_safe(source)}/{range_index:06d}.arrow"


def split_tokens(job: SplitJob) -> list[list[pa.Array]]:
    """Per take, the token lists of its documents, one array per range batch: the part's tokens read once.
    Each batch is taken apart (not a slice of one array), so a batch sent to another task carries only itself."""
    try:
        tokens = job.part.read_parquet(columns=["tokens"]).column("tokens").combine_chunks()
    except (KeyError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{job.part}: needs a `tokens` list<int32> column (run tokenize first): {exc}") from exc
    batches = []
    for take in job.takes:
        bounds = np.concatenate([[0], np.cumsum(take.batch_rows)])
        batches.append([tokens.take(pa.array(take.rows[a:b])) for a, b in zip(bounds[:-1], bounds[1:])])
    return batches


def stage_split(job: SplitJob) -> int:
    """Stage, per source, the documents each range packs, one record batch per range, so that a range task
    reads only its own documents. Returns the files written."""
    for take, batches in zip(job.takes, split_tokens(job)):
        schema = pa.schema([pa.field("tokens", batches[0].type)])
        packer.write_ipc(split_file(job.staging, take.source, job.index), schema,
                         (pa.table([batch], schema=schema) for batch in batches))
    return len(job.takes)


def read_split_batch(path: Location, batch: int) -> pa.Array:
    """One record batch of a staged split file. A small remote file is fetched whole in one request: opening
    it by its footer and then the batch would cost three."""
    with path.open_input() as fh:
        small = not path.is_local and fh.size() <= WHOLE_READ_MAX_BYTES
        return pa.ipc.open_file(pa.BufferReader(fh.read()) if small else fh).get_batch(batch).column(0)


@dataclasses.dataclass(frozen=True)
class RangeJob:
    source: str
    index: int  # of the range within the source
    staging: Location | None  # None: ``chunks`` holds the range's tokens
    parts: np.ndarray  # the parts holding the range's documents, ascending
    batches: np.ndarray  # per part: the record batch of its split file that holds them
    doc_id: np.ndarray  # the range's documents, in (part, row) order
    span: np.ndarray
    stream: np.ndarray  # indices into doc_id, in packing order
    skip: int
    stream_tokens: int
    rows: int
    seq_len: int
    sep_id: int
    pad_id: int
    chunk_tokens: int
    chunks: tuple[pa.Array, ...] | None = None  # in memory: per part, its batch

    @property
    def out(self) -> Location:
        return self.staging / range_name(self.source, self.index)


def read_range_tokens(job: RangeJob) -> pa.Array:
    """The token lists of the range's documents, checked against the n_tokens the plan was solved with."""
    if job.chunks is not None:
        chunks = list(job.chunks)
    else:
        chunks = [read_split_batch(split_file(job.staging, job.source, part), batch)
                  for part, batch in zip(job.parts.tolist(), job.batches.tolist())]
    tokens = pa.chunked_array(chunks, pa.list_(pa.int32()) if not chunks else None).combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(tokens), 0).to_numpy().astype(np.int64) + 1
    if len(lengths) != len(job.span):
        raise ValueError(f"source {job.source!r}: staged {len(lengths)} documents, the index has {len(job.span)}")
    bad = np.flatnonzero(lengths != job.span)
    if len(bad):
        raise ValueError(
            f"source {job.source!r}: doc_id {int(job.doc_id[bad[0]])} has {int(lengths[bad[0]] - 1)} tokens but "
            f"n_tokens says {int(job.span[bad[0]] - 1)} ({len(bad)} documents disagree)"
        )
    return tokens


def packed_tables(job: RangeJob) -> Iterator[pa.Table]:
    return packer.pack_source(
        read_range_tokens(job), job.doc_id, job.stream, job.source, job.seq_len, job.rows, job.stream_tokens,
        job.sep_id, job.pad_id, job.chunk_tokens, skip=job.skip,
    )


def pack_range(job: RangeJob) -> pa.Table:
    """In memory: one token range of a source packed into its rows."""
    return pa.concat_tables([packer.rows_schema(job.seq_len).empty_table(), *packed_tables(job)])


def stage_range(job: RangeJob) -> int:
    """One token range of a source packed into its staging file; the rows written."""
    return packer.write_ipc(job.out, packer.rows_schema(job.seq_len), packed_tables(job))


def with_split_batches(range_jobs: list[RangeJob], split_jobs: list[SplitJob], split: list[list[list[pa.Array]]]
                       ) -> list[RangeJob]:
    """The range jobs, each holding its batches of what the split jobs returned."""
    batches = {(job.index, take.source): per_take
               for job, per_part in zip(split_jobs, split) for take, per_take in zip(job.takes, per_part)}
    return [dataclasses.replace(r, chunks=tuple(batches[(part, r.source)][batch]
                                                for part, batch in zip(r.parts.tolist(), r.batches.tolist())))
            for r in range_jobs]


def staged_names(staging: Location) -> set[str]:
    """Names (relative to ``staging``) of the files an earlier, failed build staged: one listing, instead of
    asking for each file in turn (on an object store a request, two when the file is missing)."""
    prefix = staging.path.rstrip("/") + "/"
    return {f.path[len(prefix):] for f in staging.walk_files() if f.path.startswith(prefix)}


def not_staged(job: SplitJob, staged: set[str]) -> SplitJob:
    """``job`` with only the takes whose split file is not staged yet."""
    return dataclasses.replace(job, takes=tuple(t for t in job.takes if split_name(t.source, job.index) not in staged))


@dataclasses.dataclass(frozen=True)
class SplitLayout:
    """Where one source's documents go in the split files: per part, its ``takes``; per (part, range) pair with
    documents (sorted by part, then range), the part, the range and the pair's record batch in the part's file."""

    takes: dict[int, SplitTake]
    pair_part: np.ndarray
    pair_range: np.ndarray
    pair_batch: np.ndarray

    def batches_of(self, n_ranges: int) -> list[np.ndarray]:
        """Per range: indices of its pairs, by part."""
        by_range = np.lexsort((self.pair_part, self.pair_range))
        bounds = np.searchsorted(self.pair_range[by_range], np.arange(n_ranges + 1))
        return [by_range[bounds[j] : bounds[j + 1]] for j in range(n_ranges)]


def split_layout(d: SourceDraw, per_range: list[np.ndarray], index: DocIndex) -> SplitLayout:
    """A part's documents of the source grouped by range (a document two ranges share, or one repeated in
    epochs, once per range), one record batch per range with documents in the part."""
    part_of = index.part[d.docs]
    row_of = index.row[d.docs]
    docs = np.concatenate(per_range)
    range_of = np.repeat(np.arange(len(per_range)), [len(x) for x in per_range])
    order = np.lexsort((range_of, part_of[docs]))  # by part, then range, then (part, row)
    docs, range_of = docs[order], range_of[order]
    part_sorted = part_of[docs]
    pair_start = np.flatnonzero(np.r_[True, (np.diff(part_sorted) != 0) | (np.diff(range_of) != 0)])
    pair_stop = np.r_[pair_start[1:], len(docs)]
    pair_part = part_sorted[pair_start]
    pair_batch = np.arange(len(pair_part)) - np.searchsorted(pair_part, pair_part)
    part_first = np.flatnonzero(np.r_[True, np.diff(pair_part) != 0])
    takes = {}
    for a, b in zip(part_first, np.r_[part_first[1:], len(pair_part)]):
        rows = row_of[docs[pair_start[a] : pair_stop[b - 1]]]
        takes[int(pair_part[a])] = SplitTake(d.source, rows, tuple((pair_stop[a:b] - pair_start[a:b]).tolist()))
    return SplitLayout(takes, pair_part, range_of[pair_start], pair_batch)


def split_and_range_jobs(draws: list[SourceDraw], index: DocIndex, parts: list[Location], staging: Location | None,
                         tok: "TokenizerInfo", seq_len: int, chunk_tokens: int
                         ) -> tuple[list[SplitJob], list[RangeJob]]:
    """One split job per part with documents to pack, one packing job per token range."""
    takes: list[list[SplitTake]] = [[] for _ in parts]
    range_jobs = []
    for d in draws:
        per_range = [d.range_docs(r) for r in d.ranges]
        if not per_range:
            continue
        layout = split_layout(d, per_range, index)
        for p, take in layout.takes.items():
            takes[p].append(take)
        for j, (r, own, pairs) in enumerate(zip(d.ranges, per_range, layout.batches_of(len(per_range)))):
            range_jobs.append(RangeJob(
                source=d.source, index=j, staging=staging,
                parts=layout.pair_part[pairs], batches=layout.pair_batch[pairs],
                doc_id=index.doc_id[d.docs[own]], span=index.span[d.docs[own]],
                stream=np.searchsorted(own, d.stream[r.first : r.stop]),
                skip=r.skip, stream_tokens=r.tokens, rows=r.row_stop - r.row_start,
                seq_len=seq_len, sep_id=tok.sep_id, pad_id=tok.pad_id, chunk_tokens=chunk_tokens,
            ))
    split_jobs = [SplitJob(part, i, tuple(takes[i]), staging) for i, part in enumerate(parts) if takes[i]]
    return split_jobs, range_jobs


# --- the stage ---------------------------------------------------------------------------------------------


def plan_provenance(ctx: GlobalContext) -> dict[str, Any]:
    """The plan hash of the run directory's ``plan.json``, and the name and hash of the segment this step
    heads (the step whose state directory is ``ctx.state``): what ``verify`` compares the manifest with."""
    layout = ctx.layout
    plan = _read_text_or_none(layout.plan)
    plan = json.loads(plan) if plan is not None else {}
    segment = next((s for s in plan.get("segments", []) for t in s.get("steps", [])
                    if layout.step_state(t["stage_name"], t["position"]) == ctx.state), {})
    return {"plan_hash": plan.get("plan_hash"), "segment": segment.get("name"), "segment_hash": segment.get("hash")}


def relative(path: Location, layout: RunLayout) -> str:
    """A run file's path relative to the run directory; anything outside it as its full URI or path."""
    try:
        return layout.relative(path)
    except ValueError:
        return path.uri


def build_manifest(
    params: MixturePackParams,
    plan: MixturePlan,
    index: DocIndex,
    tok: TokenizerInfo,
    shard_entries: list[dict[str, Any]],
    ctx: GlobalContext,
    parts: list[Location],
) -> dict[str, Any]:
    realized = plan.realized_shares()
    docs = index.docs_per_source()
    return {
        "format": shards.MANIFEST_FORMAT,
        "seq_len": plan.seq_len,
        "rows_per_shard": params.rows_per_shard,
        "rows": plan.total_rows,
        "tokens": plan.total_tokens,
        "seed": ctx.seed,
        **plan_provenance(ctx),
        "params_sha256": hashlib.sha256(params.model_dump_json().encode()).hexdigest(),
        "tokenizer": tok.reference(ctx.layout),
        "mixture": {
            "name": params.spec().name,
            "total_tokens_requested": plan.requested_total,
            "total_tokens_solved": plan.solved_total,
            "target": {s: p.share for s, p in plan.sources.items()},
            "realized": realized,
            "max_share_error": plan.max_share_error(),
        },
        "sources": {
            s: {
                "available_tokens": p.available_tokens,
                "available_docs": docs.get(s, 0),
                "target_tokens": p.target_tokens,
                "rows": p.rows,
                "tokens": p.tokens,
                "padding_tokens": p.padding_tokens,
                "epochs": p.rate,
                "max_epochs": p.max_epochs,
                "target_share": p.share,
                "realized_share": realized[s],
            }
            for s, p in plan.sources.items()
        },
        "unused_sources": plan.unused_sources,
        "inputs": [relative(p, ctx.layout) for p in parts],
        "shards": shard_entries,
    }


def record_stats(stats: StepStats, manifest: dict[str, Any]) -> None:
    """What the packing produced, overall and per source, from its manifest (``build_manifest``)."""
    mixture = manifest["mixture"]
    stats.count("rows", manifest["rows"])
    stats.count("tokens", manifest["tokens"])
    stats.count("shards", len(manifest["shards"]))
    stats.figure("seq_len", manifest["seq_len"])
    stats.figure("rows_per_shard", manifest["rows_per_shard"])
    stats.figure("total_tokens_solved", mixture["total_tokens_solved"])
    if mixture["total_tokens_requested"] is not None:
        stats.figure("total_tokens_requested", mixture["total_tokens_requested"])
    stats.figure("max_share_error", mixture["max_share_error"])
    for name, source in manifest["sources"].items():
        per_source = stats.source(name)
        per_source.count("tokens_in", source["available_tokens"])
        per_source.count("documents_in", source["available_docs"])
        per_source.count("target_tokens", source["target_tokens"])
        per_source.count("tokens_out", source["tokens"])
        per_source.count("rows", source["rows"])
        per_source.count("padding_tokens", source["padding_tokens"])
        per_source.figure("epochs", source["epochs"])
        per_source.figure("max_epochs", source["max_epochs"])
        per_source.figure("target_share", source["target_share"])
        per_source.figure("realized_share", source["realized_share"])


class MixturePack(GlobalStage):
    """Mixture sampling + packing + shard writing (see the module docstring)."""

    name: ClassVar[str] = "mixture.pack_v1"
    Params = MixturePackParams
    required_columns: ClassVar[tuple[str, ...]] = ("tokens", "n_tokens")
    # Nothing can be packed from no documents: build() says which source is missing instead.
    empty_input_error: ClassVar[type[Exception]] = InfeasibleMixture

    @classmethod
    def contract_params(cls, tmp_path) -> dict:
        """A tiny real tokenizer and a two-source mixture, for the stage contract test."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        path = os.path.join(str(tmp_path), "contract-tokenizer.json")
        if not os.path.exists(path):
            tok = Tokenizer(models.BPE())
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            tok.decoder = decoders.ByteLevel()
            trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=[SEPARATOR_TOKEN, PAD_TOKEN],
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
            tok.train_from_iterator(["gristmill packs tokens into rows"] * 10, trainer)
            tok.save(path)
        return {"ratios": {"common_crawl": 0.5, "github": 0.5}, "seq_len": 16, "default_max_epochs": 50.0,
                "tokenizer": path}

    def contract_table(self, table: pa.Table) -> pa.Table:
        """The document table as the tokenize stage leaves it."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(self.params.tokenizer)
        ids = [e.ids for e in tok.encode_batch(table.column("text").to_pylist())]
        return table.append_column("tokens", pa.array(ids, pa.list_(pa.int32()))).append_column(
            "n_tokens", pa.array([len(i) for i in ids], pa.int64()))

    def build(self, ctx: GlobalContext) -> None:
        params: MixturePackParams = self.params
        # First of all: the old manifest must not vouch for shards this packing replaces, nor survive a
        # packing that fails (an infeasible mixture) to look current.
        ctx.layout.manifest.delete()
        solver = params.solver()  # a malformed preset fails before any reading
        tok = tokenizer_in_run(
            load_tokenizer_info(resolve(params.tokenizer) if params.tokenizer else ctx.layout.tokenizer), ctx)
        parts = sorted(ctx.input_parts, key=lambda loc: loc.path)
        index = build_index(timed_map(ctx, "count", count_part, parts))
        plan = solver.solve(
            index.tokens_per_source(), index.docs_per_source(), params.seq_len, params.total_tokens,
            params.pad_last,
        )
        staged = self._pack(ctx, plan, index, tok, parts)
        reference = json.dumps(tok.reference(ctx.layout), sort_keys=True)
        options = shards.WriterOptions(params.rows_per_shard, params.row_group_rows, params.compression_level,
                                       ((shards.TOKENIZER_METADATA_KEY, reference),))
        shard_jobs = shards.shard_jobs(staged, ctx.seed, ctx.layout, params.seq_len, options)
        entries = timed_map(ctx, "write", shards.write_shard, shard_jobs)
        shards.remove_stale_shards(ctx.layout, keep=len(entries))
        manifest = build_manifest(params, plan, index, tok, entries, ctx, parts)
        shards.write_manifest(manifest, ctx.layout.manifest)
        record_stats(ctx.stats, manifest)
        (ctx.state / "staging").delete_tree()  # kept until here: a failed build resumes from what it staged
        return None

    def _pack(self, ctx: GlobalContext, plan: MixturePlan, index: DocIndex, tok: TokenizerInfo,
              parts: list[Location]) -> dict[str, shards.StagedSource]:
        """Steps 3 and 4: every source drawn, cut into token ranges, split and packed range by range."""
        params: MixturePackParams = self.params
        sources = tuple(plan.sources)
        range_tokens = task_tokens(sum(p.stream_tokens for p in plan.sources.values()), ctx.runtime.cpus,
                                   params.chunk_tokens)
        draws = [draw_source(s, plan, index, ctx.seed, range_tokens) for s in sources]
        if 4 * sum(p.stream_tokens for p in plan.sources.values()) <= params.memory_staging_bytes:
            split_jobs, range_jobs = split_and_range_jobs(draws, index, parts, None, tok, params.seq_len,
                                                          params.chunk_tokens)
            split = timed_map(ctx, "split", split_tokens, split_jobs)
            packed = timed_map(ctx, "pack", pack_range, with_split_batches(range_jobs, split_jobs, split))
            pieces = [(table, table.num_rows) for table in packed]
        else:
            staging = self._staging(ctx, staging_key(params, ctx.seed, tok, parts, index, draws))
            split_jobs, range_jobs = split_and_range_jobs(draws, index, parts, staging, tok, params.seq_len,
                                                          params.chunk_tokens)
            pieces = self._stage(ctx, staging, split_jobs, range_jobs)
        by_source: dict[str, list] = {s: [] for s in sources}
        for job, piece in zip(range_jobs, pieces):
            by_source[job.source].append(piece)
        return {s: shards.StagedSource(s, tuple(by_source[s])) for s in sources}

    @staticmethod
    def _stage(ctx: GlobalContext, staging: Location, split_jobs: list[SplitJob], range_jobs: list[RangeJob]
               ) -> list[tuple[Location, int]]:
        """Split and pack through staging files, reusing those an earlier build staged; per range, its file."""
        staged = staged_names(staging)
        split_todo = [job for job in (not_staged(j, staged) for j in split_jobs) if job.takes]
        written = timed_map(ctx, "split", stage_split, split_todo)
        ctx.stats.count("staged_split_files_reused", sum(len(j.takes) for j in split_jobs) - sum(written))
        pack_todo = [job for job in range_jobs if range_name(job.source, job.index) not in staged]
        timed_map(ctx, "pack", stage_range, pack_todo)
        ctx.stats.count("pack_ranges_reused", len(range_jobs) - len(pack_todo))
        return [(job.out, job.rows) for job in range_jobs]

    @staticmethod
    def _staging(ctx: GlobalContext, key: str) -> Location:
        """The staging directory for ``key``; what an earlier build with another key staged is removed."""
        staging = ctx.state / "staging"
        marker = staging / "KEY"
        if _read_text_or_none(marker) != key:
            staging.delete_tree()
            marker.write_text(key)
        return staging


def _safe(source: str) -> str:
    """A file name for a source name whatever characters it holds."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _read_text_or_none(path: Location) -> str | None:
    """The file's text, None if there is none (one request on an object store where asking first costs two)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
