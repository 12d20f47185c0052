"""The plan: input files expanded into units, steps resolved to stages, steps grouped into segments.

A segment is a streaming pass that ends in committed Parquet parts. Segment 0 starts at ingest; every global
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
from gristmill.pipeline.registry import get_reader, get_stage
from gristmill.pipeline.spec import InputSpec, PipelineSpec, SpecError, env_references, spec_as_written
from gristmill.stages.base import DOCUMENT_SCHEMA, Stage
from gristmill.stages.filter import columns_of, type_errors
from gristmill.stages.ingest.base import Limits, Reader, Unit

PLAN_VERSION = 1


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
    def is_global(self) -> bool:
        return get_stage(self.stage_name).is_global

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
        head = self.steps[0]
        return f"{self.index:02d}-{'ingest' if head.position == 0 else head.stage_name}"

    @property
    def global_step(self) -> Step | None:
        return None if self.index == 0 else self.steps[0]


@dataclasses.dataclass
class Plan:
    spec: PipelineSpec
    base_dir: Path
    units: list[IngestUnit]
    steps: list[Step]
    segments: list[Segment]
    plan_hash: str
    input_files: list[dict[str, Any]]

    def reader(self, input_index: int) -> Reader:
        inp = self.spec.inputs[input_index]
        return make_reader(inp, self.spec, self.base_dir)

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
            "units": len(self.units),
            "segments": [
                {"index": s.index, "name": s.name, "hash": s.hash,
                 "steps": [{**dataclasses.asdict(t), "params": refs.conceal(t.params, f"steps[{t.position - 1}].")}
                           for t in s.steps]}
                for s in self.segments
            ],
            "versions": dependency_versions(),
        }


def make_reader(inp: InputSpec, spec: PipelineSpec, base_dir: Path | None = None) -> Reader:
    cls = get_reader(inp.format)
    limits = Limits(
        max_record_bytes=inp.max_record_bytes,
        batch_rows=spec.execution.batch_rows,
        batch_bytes=spec.execution.batch_bytes,
    )
    reader = cls(cls.Options.model_validate(inp.options), limits)
    reader.base_dir = str(base_dir) if base_dir is not None else None
    return reader


def expand_paths(inp: InputSpec, base_dir: Path, where: str) -> list[str]:
    """Glob every pattern (relative ones against the pipeline file's directory), sorted and de-duplicated."""
    files: list[str] = []
    for j, pattern in enumerate(inp.paths):
        # Local patterns behave exactly as glob.glob; URIs (s3://bucket/crawl/*.warc.gz) list the object store.
        # normpath: "examples/../tests/data/x" and "tests/data/x" are one file, and origins should say so.
        matches = [str(loc) if storage.is_uri(str(loc)) else os.path.normpath(str(loc))
                   for loc in storage.glob(pattern, base=base_dir)]
        if not matches:
            raise SpecError(f"{where}[{j}]: no file matches {pattern!r} (looked in {base_dir})")
        files.extend(matches)
    return list(dict.fromkeys(files))


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_plan(spec: PipelineSpec, base_dir: Path) -> Plan:
    units: list[IngestUnit] = []
    input_files: list[dict[str, Any]] = []
    for i, inp in enumerate(spec.inputs):
        files = expand_paths(inp, base_dir, f"inputs[{i}].paths")
        input_files += [{"input": i, "path": f, "bytes": storage.file_size(f)} for f in files]
        reader = make_reader(inp, spec, base_dir)
        units += [IngestUnit(i, inp.source, u) for u in reader.units(files, len(units))]
        if len(units) >= 2**32:
            raise SpecError(f"inputs[{i}]: more than 2^32 ingest units")

    steps = [Step(0, "ingest", "ingest", {})]
    for i, step_spec in enumerate(spec.steps):
        name, params = step_spec.resolved()
        # Validated again so params carry their defaults: the hash then covers what actually runs.
        params = get_stage(name).Params.model_validate(params).model_dump(mode="json")
        steps.append(Step(i + 1, f"steps[{i}]", name, params))
    _check_columns(steps)

    # Everything that decides segment 0's output: inputs (paths and sizes), how they are read, the seed.
    ingest_key = {
        "inputs": [inp.model_dump(mode="json") for inp in spec.inputs],
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
    return Plan(spec, base_dir, units, steps, segments, plan_hash, input_files)


def _stable_path(path: str, base_dir: Path) -> str:
    return path if "://" in path else os.path.relpath(path, base_dir)


def _segment(index: int, steps: list[Step], upstream_hash: str) -> Segment:
    key = {"upstream": upstream_hash, "steps": [(s.stage_name, s.params) for s in steps]}
    return Segment(index, tuple(steps), _digest(key))


def _check_columns(steps: list[Step]) -> None:
    """A filter may only read columns that exist by then: the document table's or an earlier stage's."""
    available: dict[str, pa.DataType] = {f.name: f.type for f in DOCUMENT_SCHEMA}
    for step in steps[1:]:
        cls = get_stage(step.stage_name)
        if step.stage_name == "filter_v1":
            missing = sorted(columns_of(step.params["expr"]) - set(available))
            if missing:
                raise SpecError(
                    f"{step.label}.filter: column(s) {missing} do not exist at this step; "
                    f"available: {sorted(available)}"
                )
            mismatched = type_errors(step.params["expr"], available)
            if mismatched:
                raise SpecError(f"{step.label}.filter: " + "; ".join(mismatched))
        missing_req = [c for c in cls.required_columns if c not in available]
        if missing_req:
            raise SpecError(f"{step.label}: stage {step.stage_name} needs column(s) {missing_req} from an earlier step")
        available.update(cls.output_columns)


def dependency_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("gristmill", "pyarrow", "ray", "duckdb", "resiliparse", "fastwarc", "tokenizers", "pydantic"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out
