"""The pipeline YAML: pydantic models (unknown keys refused), ``${ENV}`` interpolation, and errors that name the
file, the YAML path and the line (``demo.yaml: steps[3].params.threshold: ... (line 14)``).

``${ENV}`` values are resolved in memory only: a credential passed that way must not land in a run directory. Each
string that held a reference is remembered as written (``EnvReferences``), and what a run writes about its
pipeline (plan.json) shows the reference there, never the value. A whole-scalar reference that resolves to a
number or a boolean (``ge: ${MIN:-0.5}``) is a setting, not a secret, and is written as its value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator


class SpecError(ValueError):
    """A pipeline file that cannot be used; the message names the file and the YAML path."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SOURCE_NAME = r"^[a-z][a-z0-9_]*$"
NAME_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _path_safe_name(value: str) -> str:
    """A pipeline or step name becomes a directory name (``runs/NAME``): one path component that is neither
    hidden nor ``.``/``..``, so a name can never point outside the directory it is joined to."""
    if NAME_CHARS.fullmatch(value):
        return value
    if "/" in value or "\\" in value:
        problem = "contains a path separator"
    elif not value:
        problem = "is empty"
    elif value.strip(".") == "":
        problem = "is only dots (a path to this or the parent directory)"
    elif len(value) > 128:
        problem = "is longer than 128 characters"
    elif not value[0].isascii() or not value[0].isalnum():
        problem = "does not start with a letter or digit"
    else:
        problem = "has characters other than letters, digits, '_', '.' and '-'"
    raise ValueError(f"name {value!r} {problem}; a name is used as a directory name: use 1-128 of A-Z a-z 0-9 _ . "
                     "-, starting with a letter or digit")


Name = Annotated[str, AfterValidator(_path_safe_name)]


class InputSpec(_Model):
    """One input of one mixture source."""

    source: str = Field(pattern=SOURCE_NAME)
    format: str
    paths: list[str] = Field(min_length=1)
    options: dict[str, Any] = {}
    # A document whose text is longer than this (UTF-8 bytes) is truncated or rejected, per ``oversize``.
    max_doc_bytes: int = Field(default=1_000_000, gt=0)
    oversize: Literal["truncate", "reject"] = "truncate"
    # A raw record (HTML page, JSON line, file) larger than this is rejected without being decoded.
    max_record_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    # A pattern that matches no file is an error; for an optional input it is a warning in the run's log and stats.
    optional: bool = False
    # A file that cannot be read at all (a directory, no permission, not in the input's format) stops the run with
    # an error naming it; with "skip" it is one rejected row (reason ``read_error: ...``, origin = the file).
    on_error: Literal["fail", "skip"] = "fail"
    # Trial runs. ``sample``: keep each document with this probability, decided by a hash of (the pipeline's seed,
    # doc_id), so the same documents whatever the executor; the others are dropped with reason ``sample``.
    # ``limit``: only the first N documents of the input (in input order, after ``sample``); reading stops there.
    sample: float | None = Field(default=None, gt=0, le=1)
    limit: int | None = Field(default=None, gt=0)


class StepSpec(_Model):
    """A step: a registered stage with params, or a ``filter`` expression (sugar for ``filter_v1``)."""

    stage: str | None = None
    params: dict[str, Any] = {}
    filter: dict[str, Any] | None = None
    reason: str | None = None
    # With ``filter``: the mixture sources it applies to (others pass), e.g. prose rules that make no sense for code.
    sources: list[str] | None = None
    name: Name | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "StepSpec":
        if (self.stage is None) == (self.filter is None):
            raise ValueError("a step needs exactly one of 'stage' or 'filter'")
        if self.filter is not None and self.params:
            raise ValueError("a filter step takes no 'params'")
        if self.stage is not None and (self.reason is not None or self.sources is not None):
            raise ValueError("'reason' and 'sources' belong to filter steps (stages take 'sources' in params)")
        return self

    def resolved(self) -> tuple[str, dict[str, Any]]:
        """(stage name, params) with the filter sugar expanded."""
        if self.filter is not None:
            return "filter_v1", {"expr": self.filter, "reason": self.reason or "filter", "sources": self.sources}
        return self.stage, dict(self.params)  # type: ignore[return-value]


class OutputSpec(_Model):
    run_dir: str | None = None
    # Keep dropped rows under RUN_DIR/rejects/STEP/ with their reject_reason.
    rejects: bool = False


class ExecutionSpec(_Model):
    executor: Literal["local", "ray"] = "ray"
    # Rows per ingest batch (= per part file); bounds worker memory together with batch_bytes.
    batch_rows: int = Field(default=2048, gt=0)
    batch_bytes: int = Field(default=64 * 1024 * 1024, gt=0)


class EnvReferences:
    """The strings of a pipeline YAML that held ``${ENV}`` references: by YAML path (``inputs[0].paths[1]``),
    the text as written and the value it resolved to, and the environment variables' values substituted."""

    def __init__(self) -> None:
        self.by_path: dict[str, tuple[str, str]] = {}  # path -> (as written, resolved)
        self.values: dict[str, str] = {}  # variable -> the value taken from the environment

    def __eq__(self, other: object) -> bool:  # two parses of one YAML in one environment are one spec
        return isinstance(other, EnvReferences) and (self.by_path, self.values) == (other.by_path, other.values)

    def conceal(self, value: Any, under: str) -> Any:
        """``value`` (JSON-like: a step's params) with every string that a reference under the YAML path prefix
        ``under`` (``steps[2].``) resolved to put back as written."""
        written_for = {resolved: written for path, (written, resolved) in self.by_path.items()
                       if path.startswith(under)}
        if not written_for:
            return value

        def walk(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: walk(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [walk(x) for x in v]
            return written_for.get(v, v) if isinstance(v, str) else v

        return walk(value)

    def conceal_within(self, text: str, under: str) -> str:
        """``text`` derived from the strings under ``under`` (a file a referenced glob matched) with the value of
        each variable they took from the environment replaced by its reference, longest value first."""
        mentioned = {var for path, (written, _) in self.by_path.items() if path.startswith(under)
                     for var in _variables(written)}
        for var, val in sorted(self.values.items(), key=lambda kv: -len(kv[1])):
            if var in mentioned and val:
                text = text.replace(val, f"${{{var}}}")
        return text


def _variables(text: str) -> set[str]:
    return {m.group(1) for m in _ENV.finditer(text)}


class PipelineSpec(_Model):
    # Filled by parse_pipeline; not a field: never in the model's dump.
    _env_references: EnvReferences = PrivateAttr(default_factory=EnvReferences)

    name: Name
    seed: int = 0
    inputs: list[InputSpec] = Field(min_length=1)
    steps: list[StepSpec] = []
    output: OutputSpec = OutputSpec()
    execution: ExecutionSpec = ExecutionSpec()


# --- loading --------------------------------------------------------------------------------------------

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(value: Any, path: str, env: dict[str, str], refs: EnvReferences,
                 unset: list[tuple[tuple, str]] | None = None) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string scalar, noting each in ``refs``. A variable that
    is not set raises ``SpecError``, or is appended to ``unset`` as (YAML location, message) when given."""
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k), env, refs, unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", env, refs, unset) for i, v in enumerate(value)]
    if not isinstance(value, str) or not _ENV.search(value):
        return value

    def sub(match: re.Match) -> str:
        var, default = match.group(1), match.group(2)
        if var in env:
            refs.values[var] = env[var]
            return env[var]
        if default is not None:
            return default
        message = f"environment variable {var!r} is not set (use ${{{var}:-default}})"
        if unset is None:
            raise SpecError(f"{path}: {message}")
        unset.append((parse_loc(path), message))
        return match.group(0)

    whole = _ENV.fullmatch(value)
    out = _ENV.sub(sub, value)
    if whole:
        # A scalar that is exactly one ${VAR} takes the YAML type of its value, so `ge: ${MIN:-0.5}` is a number.
        try:
            typed = yaml.safe_load(out)
        except yaml.YAMLError:
            typed = out
        if isinstance(typed, (int, float, bool)) or typed is None:
            return typed
    refs.by_path[path] = (value, out)
    return out


def env_references(spec: PipelineSpec) -> EnvReferences:
    """The ``${ENV}`` references of the YAML ``spec`` was parsed from (none for a spec built otherwise)."""
    return spec._env_references


def spec_as_written(spec: PipelineSpec) -> dict[str, Any]:
    """The pipeline as JSON with every string that held a ``${ENV}`` reference shown as written."""
    dumped = spec.model_dump(mode="json")
    for path, (written, resolved) in env_references(spec).by_path.items():
        parent, key = _locate(dumped, path)
        if parent is not None and parent[key] == resolved:
            parent[key] = written
    return dumped


def _locate(root: Any, path: str) -> tuple[Any, Any]:
    """(container, key) of the value at a YAML path such as ``inputs[0].paths[1]``; (None, None) if absent."""
    keys: list[Any] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        keys.append(int(index) if index else name)
    node = root
    for key in keys[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None, None
    last = keys[-1] if keys else None
    if isinstance(node, dict) and last in node or isinstance(node, list) and isinstance(last, int) and last < len(node):
        return node, last
    return None, None


def parse_loc(path: str) -> tuple:
    """``inputs[0].paths[1]`` -> ("inputs", 0, "paths", 1)."""
    return tuple(int(index) if index else name for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path))


def format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def line_of(root: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its nearest existing parent)."""
    node, line = root, None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def validation_errors(exc: ValidationError, prefix: tuple = ()) -> list[tuple[tuple, str]]:
    out = []
    for err in exc.errors():
        loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append((loc, msg.removeprefix("Value error, ")))
    return out


def _raise(where: str, root: yaml.Node | None, errors: list[tuple[tuple, str]]) -> None:
    lines = []
    for loc, msg in errors:
        line = line_of(root, loc)
        lines.append(f"{where}: {format_loc(loc)}: {msg}" + (f" (line {line})" if line else ""))
    raise SpecError("\n".join(lines))


def parse_pipeline(text: str, where: str = "<string>", env: dict[str, str] | None = None) -> PipelineSpec:
    """Parse and validate a pipeline from YAML text; stage params are checked against each stage's model."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: the top level must be a mapping with name, inputs, steps")
    refs = EnvReferences()
    try:
        raw = _interpolate(raw, "", dict(os.environ) if env is None else env, refs)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        _raise(where, root, validation_errors(exc))
    spec._env_references = refs
    _check_steps(spec, where, root)
    _check_inputs(spec, where, root)
    return spec


def _check_steps(spec: PipelineSpec, where: str, root: yaml.Node | None) -> None:
    errors = step_errors(enumerate(spec.steps))
    if errors:
        _raise(where, root, errors)


def step_errors(steps) -> list[tuple[tuple, str]]:
    """(YAML location, message) for every unknown stage and every invalid param of ``(index, StepSpec)`` pairs."""
    from gristmill.pipeline.registry import RegistryError, get_stage

    errors: list[tuple[tuple, str]] = []
    for i, step in steps:
        name, params = step.resolved()
        try:
            cls = get_stage(name)
        except RegistryError as exc:
            errors.append((("steps", i, "stage"), str(exc)))
            continue
        try:
            cls.Params.model_validate(params)
        except ValidationError as exc:
            key = ("steps", i, "filter") if step.filter is not None else ("steps", i, "params")
            if step.filter is not None:
                errors.extend((key, msg) for _, msg in validation_errors(exc))
            else:
                errors.extend(validation_errors(exc, key))
    return errors


def _check_inputs(spec: PipelineSpec, where: str, root: yaml.Node | None) -> None:
    errors = input_errors(enumerate(spec.inputs))
    if errors:
        _raise(where, root, errors)


def input_errors(inputs) -> list[tuple[tuple, str]]:
    """(YAML location, message) for every unknown format and invalid option of ``(index, InputSpec)`` pairs."""
    from gristmill.pipeline.registry import RegistryError, head_stage

    errors: list[tuple[tuple, str]] = []
    for i, inp in inputs:
        try:
            reader = head_stage(inp.format)
        except RegistryError as exc:
            errors.append((("inputs", i, "format"), str(exc)))
            continue
        try:
            reader.Params.model_validate(inp.options)
        except ValidationError as exc:
            errors.extend(validation_errors(exc, ("inputs", i, "options")))
    return errors


def load_pipeline(path: str | os.PathLike) -> tuple[PipelineSpec, Path]:
    """Load a pipeline file; returns the spec and the directory relative input paths are resolved against."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{p}: cannot read: {exc.strerror}") from None
    return parse_pipeline(text, str(p)), p.resolve().parent
