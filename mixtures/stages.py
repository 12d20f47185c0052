"""``mixture.pack_v1``: the global step that solves the mixture, packs every source and writes the shards.

``build(ctx)``:
1. counts tokens per source from the ``n_tokens`` column alone (one task per input part);
2. solves the mixture (fails here, before any file is touched, when it is infeasible);
3. splits the parts by source (one task per part: each part's tokens are read once) and packs each source
   (one task per source) into Arrow IPC staging files under ``RUN_DIR/mixture/staging/``;
4. writes the shards (one task per shard), then ``manifest.json``, and removes the staging files.
``apply`` passes the documents through unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from gristmill.mixtures import packer, shards
from gristmill.mixtures.solver import InfeasibleMixture, MixturePlan, MixtureSolver, MixtureSpec, load_mixture
from gristmill.core.layout import TOKENIZER_FILE, RunLayout
from gristmill.core.stats import StepStats
from gristmill.core.storage import Location, resolve
from gristmill.stages.base import GlobalContext, GlobalStage, StageParams, require

SEPARATOR_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
DEFAULT_MIXTURE = "llama"


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
    chunk_tokens: int = Field(packer.DEFAULT_CHUNK_TOKENS, gt=0)

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
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no tokenizer (train one with tokenize.bbpe_v1 first, or set `tokenizer:` to its path)"
        )
    spec = path.read_bytes()
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
    """Every document with tokens, in (part, row) order: its part, doc_id, span (n_tokens + 1 separator)
    and source."""

    part: np.ndarray
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
    part = np.repeat(np.arange(len(counts)), [t.num_rows for t in counts])
    encoded = pc.dictionary_encode(table.column("source")).combine_chunks()
    names = encoded.dictionary.to_pylist()
    order = sorted(range(len(names)), key=names.__getitem__)
    remap = np.empty(len(names), dtype=np.int64)
    remap[order] = np.arange(len(names))
    codes = remap[encoded.indices.to_numpy(zero_copy_only=False)] if len(names) else np.zeros(0, np.int64)
    keep = n_tokens > 0  # an empty document would add only a separator
    return DocIndex(
        part=part[keep],
        doc_id=table.column("doc_id").to_numpy().astype(np.uint64)[keep],
        span=n_tokens[keep] + 1,
        source=codes[keep],
        sources=[names[i] for i in order],
    )


# --- step 3: split parts by source, then pack one source ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SplitJob:
    part: Location
    index: int
    sources: tuple[str, ...]  # the mixture's sources; others are left out
    staging: Location


def split_file(staging: Location, source: str, part_index: int) -> Location:
    return staging / "split" / _safe(source) / f"{part_index:06d}.arrow"


def split_part(job: SplitJob) -> dict[str, int]:
    """Read one part's tokens once and stage each mixture source's documents (with tokens, in row order)
    apart, so that packing a source never re-reads parts for the other sources' sake."""
    try:
        table = job.part.read_parquet(columns=["source", "tokens", "n_tokens"])
    except (KeyError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{job.part}: needs a `tokens` list<int32> column (run tokenize first): {exc}") from exc
    has_tokens = pc.greater(pc.fill_null(table.column("n_tokens"), 0), 0)
    rows = {}
    for source in job.sources:
        docs = table.filter(pc.and_(has_tokens, pc.equal(table.column("source"), source))).select(["tokens"])
        if docs.num_rows:
            packer.write_ipc(split_file(job.staging, source, job.index), docs.schema, [docs])
            rows[source] = docs.num_rows
    return rows


@dataclasses.dataclass(frozen=True)
class PackJob:
    source: str
    split_files: tuple[Location, ...]  # the source's documents, part by part, in (part, row) order
    doc_id: np.ndarray  # in the same order
    span: np.ndarray
    rows: int
    stream_tokens: int
    seq_len: int
    seed: int
    sep_id: int
    pad_id: int
    staging_path: Location
    chunk_tokens: int


def read_source_tokens(job: PackJob) -> pa.Array:
    """The token lists of the job's documents, checked against the n_tokens the plan was solved with."""
    chunks = [c for path in job.split_files for c in path.read_ipc().column("tokens").chunks]
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


def pack_job(job: PackJob) -> shards.StagedSource:
    tokens = read_source_tokens(job)
    stream = packer.draw_stream(job.doc_id, job.span, job.stream_tokens, job.seed)
    tables = packer.pack_source(
        tokens, job.doc_id, stream, job.source, job.seq_len, job.rows, job.stream_tokens,
        job.sep_id, job.pad_id, job.chunk_tokens,
    )
    rows = packer.write_ipc(job.staging_path, packer.rows_schema(job.seq_len), tables)
    return shards.StagedSource(job.source, job.staging_path, rows)


# --- the stage ---------------------------------------------------------------------------------------------


def plan_provenance(ctx: GlobalContext) -> dict[str, Any]:
    """The plan hash of the run directory's ``plan.json``, and the name and hash of the segment this step
    heads (the step whose state directory is ``ctx.state``): what ``verify`` compares the manifest with."""
    layout = ctx.layout
    plan = layout.plan.read_json() if layout.plan.is_file() else {}
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
        index = build_index(ctx.map(count_part, parts))
        plan = solver.solve(
            index.tokens_per_source(), index.docs_per_source(), params.seq_len, params.total_tokens,
            params.pad_last,
        )
        staging = ctx.state / "staging"
        staging.delete_tree()
        try:
            sources = tuple(plan.sources)
            ctx.map(split_part, [SplitJob(p, i, sources, staging) for i, p in enumerate(parts)])
            jobs = [self._pack_job(s, plan, index, tok, ctx.seed, staging) for s in sources]
            staged = {st.source: st for st in ctx.map(pack_job, jobs)}
            reference = json.dumps(tok.reference(ctx.layout), sort_keys=True)
            options = shards.WriterOptions(params.rows_per_shard, params.row_group_rows, params.compression_level,
                                           ((shards.TOKENIZER_METADATA_KEY, reference),))
            shard_jobs = shards.shard_jobs(staged, ctx.seed, ctx.layout, params.seq_len, options)
            entries = ctx.map(shards.write_shard, shard_jobs)
        finally:
            staging.delete_tree()
        shards.remove_stale_shards(ctx.layout, keep=len(entries))
        manifest = build_manifest(params, plan, index, tok, entries, ctx, parts)
        shards.write_manifest(manifest, ctx.layout.manifest)
        record_stats(ctx.stats, manifest)
        return None

    def _pack_job(self, source, plan, index, tok, seed, staging) -> PackJob:
        sel = index.of(source)  # already in (part, row) order
        p = plan.sources[source]
        present = np.unique(index.part[sel])
        return PackJob(
            source=source,
            split_files=tuple(split_file(staging, source, int(i)) for i in present),
            doc_id=index.doc_id[sel],
            span=index.span[sel],
            rows=p.rows,
            stream_tokens=p.stream_tokens,
            seq_len=plan.seq_len,
            seed=seed,
            sep_id=tok.sep_id,
            pad_id=tok.pad_id,
            staging_path=staging / f"{_safe(source)}.arrow",
            chunk_tokens=self.params.chunk_tokens,
        )


def _safe(source: str) -> str:
    """A file name for a source name whatever characters it holds."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]
