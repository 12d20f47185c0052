"""The plan: input files expanded into units, steps resolved to stages, steps grouped into segments.

A segment is a streaming pass that ends in committed Parquet parts. Segment 0 starts at ingest, the step that
reads the pipeline's inputs, each input with the head stage its ``format`` names; every global
step (dedup clustering, tokenizer training, mixture packing) starts a new segment: its ``build`` runs over the
previous segment's parts, then its per-part ``apply`` and the streaming steps after it run in one pass.
Each segment has a hash of everything that determines its output, so a re-run skips committed segments whose
hash matches and refuses stale ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from gristmill.core import storage
from gristmill.pipeline.registry import canonical_format, get_stage, head_stage
from gristmill.pipeline.spec import InputSpec, PipelineSpec, SpecError, env_references, spec_as_written
from gristmill.stages.base import DOCUMENT_SCHEMA, HeadStage, Limits, Stage, Unit

PLAN_VERSION = 1
# The name of every plan's first step, which reads the pipeline's inputs: its stage differs per input (the head
# stage each input's ``format`` names, ``Plan.head_stage``), so the step is named for what it does.
INGEST = "ingest"


@dataclasses.dataclass(frozen=True)
class IngestUnit:
    """A unit of ingest work together with the input it came from."""

    input_index: int
    source: str
    unit: Unit


@dataclasses.dataclass(frozen=True)
class Step:
    position: int  # 0 is ingest; steps[i] of the YAML is position i + 1
    label: str  # "ingest" or "steps[i]" (or the step's own name)
    stage_name: str
    params: dict[str, Any]

    def instantiate(self) -> Stage:
        return get_stage(self.stage_name)(self.params)

    @property
    def kind(self) -> str:
        """``head`` (the step reading the inputs), ``streaming`` or ``global``."""
        return "head" if self.stage_name == INGEST else get_stage(self.stage_name).kind

    @property
    def is_global(self) -> bool:
        return self.kind == "global"

    @property
    def slug(self) -> str:
        """Directory-safe name: ``03-filter_v1``."""
        return f"{self.position:02d}-{self.stage_name}"


@dataclasses.dataclass(frozen=True)
class Segment:
    index: int
    steps: tuple[Step, ...]  # steps[0] is ingest (segment 0) or a global step
    hash: str

    @property
    def name(self) -> str:
        return f"{self.index:02d}-{self.steps[0].stage_name}"

    @property
    def reads_inputs(self) -> bool:
        """Whether the segment starts at ingest, reading the pipeline's inputs, rather than at a global step."""
        return self.steps[0].kind == "head"

    @property
    def global_step(self) -> Step | None:
        return self.steps[0] if self.steps[0].is_global else None


@dataclasses.dataclass
class Plan:
    spec: PipelineSpec
    base_dir: Path
    units: list[IngestUnit]
    steps: list[Step]
    segments: list[Segment]
    plan_hash: str
    input_files: list[dict[str, Any]]
    # Things the user should see that do not stop the run (an optional input whose pattern matched nothing).
    warnings: list[str] = dataclasses.field(default_factory=list)
    # Per input with a ``limit``: the doc_id of its last document within the limit (None: the input has fewer),
    # found once by the driver before ingest (pipeline/_internal/limits.py) so workers need not look for it.
    limit_cutoffs: dict[int, int | None] = dataclasses.field(default_factory=dict)

    def head_stage(self, input_index: int) -> HeadStage:
        """The head stage that reads input ``input_index``, with the input's options and limits."""
        return make_head_stage(self.spec.inputs[input_index], self.spec, self.base_dir)

    def to_json(self) -> dict[str, Any]:
        """The plan as written to plan.json: ``${ENV}`` references of the YAML stay references (module spec),
        while the hashes cover the values they resolved to."""
        refs = env_references(self.spec)
        return {
            "plan_version": PLAN_VERSION,
            "plan_hash": self.plan_hash,
            "pipeline": spec_as_written(self.spec),
            "input_files": [{**f, "path": refs.conceal_within(f["path"], f"inputs[{f['input']}].paths")}
                            for f in self.input_files],
            "warnings": self.warnings,
            "units": len(self.units),
            "segments": [
                {"index": s.index, "name": s.name, "hash": s.hash,
                 "steps": [{**dataclasses.asdict(t), "params": refs.conceal(t.params, f"steps[{t.position - 1}].")}
                           for t in s.steps]}
                for s in self.segments
            ],
            "versions": dependency_versions(),
        }


def make_head_stage(inp: InputSpec, spec: PipelineSpec, base_dir: Path | None = None) -> HeadStage:
    """The head stage the input's ``format`` names, set up with its ``options``, limits and ``on_error``."""
    cls = head_stage(inp.format)
    limits = Limits(
        max_record_bytes=inp.max_record_bytes,
        batch_rows=spec.execution.batch_rows,
        batch_bytes=spec.execution.batch_bytes,
    )
    return cls(cls.Params.model_validate(inp.options), limits,
               base_dir=str(base_dir) if base_dir is not None else None,
               skip_unreadable_files=inp.on_error == "skip")


def expand_paths(inp: InputSpec, base_dir: Path, where: str, warnings: list[str] | None = None,
                 reader: HeadStage | None = None) -> list[str]:
    """Glob every pattern (relative ones against the pipeline file's directory), sorted and de-duplicated.

    A pattern that matches no file is an error naming the input and the pattern (a warning appended to
    ``warnings`` for an ``optional`` input). A pattern that names a directory is read by a reader that reads
    folders (``HeadStage.expand_directory``; ``hf``: its data files, in the dataset's order); for other readers it
    is an error, unless the input skips unreadable files: then the directory is listed and its reader counts it as
    a rejected row.
    """
    files: list[str] = []
    for j, pattern in enumerate(inp.paths):
        # Local patterns behave exactly as glob.glob; URIs (s3://bucket/crawl/*.warc.gz) list the object store.
        # normpath: "examples/../tests/data/x" and "tests/data/x" are one file, and origins should say so.
        try:
            matches = [_normalized(str(loc)) for loc in storage.glob(pattern, base=base_dir)]
        except OSError as exc:  # an object store or server that cannot be reached, no permission to list
            raise storage.StorageError(f"{where}[{j}]: cannot list {pattern!r} (source {inp.source}): "
                                       f"{' '.join(str(exc).split())}") from exc
        if not matches:
            directory = _directory(pattern, base_dir)
            folder_files = _folder_files(reader, directory, f"{where}[{j}]")
            if folder_files is not None:
                matches = folder_files
            elif directory is not None and inp.on_error == "skip":
                matches = [directory]
            elif directory is not None:
                raise SpecError(f"{where}[{j}]: {directory!r} is a directory, not a file (source {inp.source}); "
                                f"give a pattern such as {pattern.rstrip('/') + '/**/*'!r}")
            elif inp.optional:
                if warnings is not None:
                    warnings.append(f"{where}[{j}]: no file matches {pattern!r} (optional input of source "
                                    f"{inp.source}; looked in {base_dir})")
            else:
                _raise_if_unreachable(pattern, f"{where}[{j}]", inp.source)
                raise SpecError(f"{where}[{j}]: no file matches {pattern!r} (source {inp.source}; looked in "
                                f"{base_dir}); mark the input 'optional: true' if it may be empty")
        files.extend(matches)
    return list(dict.fromkeys(files))


def _raise_if_unreachable(pattern: str, where: str, source: str) -> None:
    """fsspec filesystems (``http://``) report a server that cannot be reached as a missing file; for a URI
    without wildcards, ask the filesystem itself and say which it was."""
    if not storage.is_uri(pattern) or any(c in pattern.split("?", 1)[0] for c in "*["):
        return
    try:
        loc = storage.resolve(pattern)
        fsspec_fs = getattr(getattr(loc.fs, "handler", None), "fs", None)
        if fsspec_fs is not None:
            fsspec_fs.info(loc.path)
    except FileNotFoundError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError) and not isinstance(cause, FileNotFoundError):
            raise storage.StorageError(f"{where}: cannot reach {pattern!r} (source {source}): "
                                       f"{' '.join(str(cause).split())}") from exc
    except OSError:
        return


def _folder_files(reader: HeadStage | None, directory: str | None, where: str) -> list[str] | None:
    """The files the head stage reads for the folder, or None when there is no folder or it reads none."""
    if reader is None or directory is None:
        return None
    try:
        files = reader.expand_directory(directory)
    except (ValueError, KeyError, OSError) as exc:
        raise SpecError(f"{where}: {exc}") from None
    return None if files is None else [_normalized(f) for f in files]


def _normalized(path: str) -> str:
    return path if storage.is_uri(path) else os.path.normpath(path)


def _directory(pattern: str, base_dir: Path) -> str | None:
    """The directory a wildcard-free pattern names, if it names one."""
    path_part = pattern.split("?", 1)[0] if storage.is_uri(pattern) else pattern  # a URI's query is no wildcard
    if any(c in path_part for c in "*?["):
        return None
    try:
        loc = storage.resolve(pattern, base=base_dir)
        return _normalized(str(loc)) if loc.is_dir() else None
    except OSError:
        return None


def _input_file(input_index: int, path: str) -> dict[str, Any]:
    try:
        size = storage.file_size(path)
    except OSError:  # a directory listed for an input that skips unreadable files; its reader rejects it
        size = 0
    return {"input": input_index, "path": path, "bytes": size}


def _input_key(inp: InputSpec) -> dict[str, Any]:
    """The input as hashed: ``optional``, ``on_error``, ``sample`` and ``limit`` only when set, so existing plans
    keep their hashes, and the reader by its short format whichever way the YAML spells it."""
    key = inp.model_dump(mode="json")
    key["format"] = canonical_format(inp.format)
    for name in ("optional", "on_error", "sample", "limit"):
        if key[name] == InputSpec.model_fields[name].default:
            del key[name]
    return key


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_plan(spec: PipelineSpec, base_dir: Path) -> Plan:
    units: list[IngestUnit] = []
    input_files: list[dict[str, Any]] = []
    warnings: list[str] = []
    for i, inp in enumerate(spec.inputs):
        reader = make_head_stage(inp, spec, base_dir)
        files = expand_paths(inp, base_dir, f"inputs[{i}].paths", warnings, reader)
        input_files += [_input_file(i, f) for f in files]
        units += [IngestUnit(i, inp.source, u) for u in reader.units(files, len(units))]
        if len(units) >= 2**32:
            raise SpecError(f"inputs[{i}]: more than 2^32 ingest units")
    if not input_files:
        raise SpecError("inputs: no input file at all (every input is optional and none of their patterns matched): "
                        + "; ".join(warnings))

    steps = [Step(0, INGEST, INGEST, {})]
    for i, step_spec in enumerate(spec.steps):
        name, params = step_spec.resolved()
        # Validated again so params carry their defaults: the hash then covers what actually runs.
        params = get_stage(name).Params.model_validate(params).model_dump(mode="json")
        steps.append(Step(i + 1, f"steps[{i}]", name, params))
    _check_columns(steps)

    # Everything that decides segment 0's output: inputs (paths and sizes), how they are read, the seed.
    ingest_key = {
        "inputs": [_input_key(inp) for inp in spec.inputs],
        # Relative to the pipeline file where possible, so a checkout moved or uploaded elsewhere (a Ray job's
        # working directory) hashes the same and can resume.
        "files": [(_stable_path(f["path"], base_dir), f["bytes"]) for f in input_files],
        "seed": spec.seed,
        "batch": [spec.execution.batch_rows, spec.execution.batch_bytes],
        "plan_version": PLAN_VERSION,
    }
    segments: list[Segment] = []
    current: list[Step] = [steps[0]]
    running_hash = _digest(ingest_key)
    for step in steps[1:]:
        if step.is_global:
            segments.append(_segment(len(segments), current, running_hash))
            running_hash = segments[-1].hash
            current = []
        current.append(step)
    segments.append(_segment(len(segments), current, running_hash))
    plan_hash = _digest({"segments": [s.hash for s in segments]})
    return Plan(spec, base_dir, units, steps, segments, plan_hash, input_files, warnings)


def _stable_path(path: str, base_dir: Path) -> str:
    return path if "://" in path else os.path.relpath(path, base_dir)


def _segment(index: int, steps: list[Step], upstream_hash: str) -> Segment:
    key = {"upstream": upstream_hash, "steps": [(s.stage_name, s.params) for s in steps]}
    return Segment(index, tuple(steps), _digest(key))


def _check_columns(steps: list[Step]) -> None:
    errors = column_errors(steps[1:])
    if errors:
        first = [(step, key, message) for step, key, message in errors if step is errors[0][0]]
        raise SpecError("; ".join(f"{step.label}{'.' + key if key else ''}: {message}" for step, key, message in first))


def column_errors(steps: list[Step]) -> list[tuple[Step, str, str]]:
    """(step, YAML key within it, message) for every step that reads a column that does not exist by then:
    neither the document table's nor an earlier stage's."""
    available: dict[str, pa.DataType] = {f.name: f.type for f in DOCUMENT_SCHEMA}
    errors = []
    for step in steps:
        cls = get_stage(step.stage_name)
        errors += [(step, key, message) for key, message in cls.column_errors(step.params, available)]
        available.update(cls.output_columns)
    return errors


def dependency_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("gristmill", "pyarrow", "ray", "duckdb", "resiliparse", "fastwarc", "tokenizers", "pydantic"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out
