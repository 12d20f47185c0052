"""``gristmill validate``: every problem of a pipeline file at once, each as ``FILE:LINE: key.path: message``.

Loading a pipeline (pipeline/spec.py, pipeline/plan.py) stops at the first kind of problem it meets. Here each
part is checked on its own so that one mistake does not hide the next: the schema of the whole file, every
step (unknown stages, params), every input (formats, options, paths that match no file), the columns each
filter reads, and the mixture of a packing step (its preset or ratios, and sources no input provides). Lines
come from the YAML's node marks.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from gristmill.pipeline import spec as specs

MIXTURE_STAGE = "mixture.pack_v1"


@dataclasses.dataclass(frozen=True)
class Problem:
    line: int | None
    key: str
    message: str

    def format(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


def validate_file(path: str | os.PathLike) -> list[Problem]:
    """Every problem of the pipeline file ``path``, in file order; none for a file that plans."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        return [Problem(None, "", f"cannot read: {exc.strerror}")]
    return validate_text(text, p.resolve().parent)


def validate_text(text: str, base_dir: Path, env: dict[str, str] | None = None) -> list[Problem]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        detail = " ".join(str(getattr(exc, "problem", None) or exc).split())
        return [Problem(mark.line + 1 if mark else None, "", f"not valid YAML: {detail}")]
    if not isinstance(raw, dict):
        return [Problem(1, "", "the top level must be a mapping with name, inputs, steps")]
    unset: list[tuple[tuple, str]] = []
    raw = specs._interpolate(raw, "", dict(os.environ) if env is None else env, specs.EnvReferences(), unset)
    errors = list(unset)
    try:
        specs.PipelineSpec.model_validate(raw)
    except ValidationError as exc:  # a value left unresolved by an unset variable is reported once, above
        errors += [(loc, msg) for loc, msg in specs.validation_errors(exc) if loc not in {u for u, _ in unset}]
    inputs = _valid(specs.InputSpec, raw.get("inputs"))
    steps = _valid(specs.StepSpec, raw.get("steps"))
    input_problems = specs.input_errors(inputs)
    step_problems = specs.step_errors(steps)
    errors += input_problems + step_problems
    # Inputs and steps valid on their own are checked further: paths, mixtures, and the columns each step reads
    # (up to the first invalid step, whose output columns are unknown).
    inputs = [(i, inp) for i, inp in inputs if not _mentions(input_problems, "inputs", i)]
    steps = [(i, step) for i, step in steps if not _mentions(step_problems, "steps", i)]
    errors += _path_errors(inputs, base_dir)
    sources = {item.get("source") for item in raw.get("inputs") or [] if isinstance(item, dict)}
    errors += _mixture_errors(steps, {s for s in sources if isinstance(s, str)})
    errors += _column_errors(_leading(steps))
    problems = [Problem(specs.line_of(root, loc), specs.format_loc(loc), message) for loc, message in errors]
    return sorted(dict.fromkeys(problems), key=lambda p: (p.line or 0))


def _mentions(errors: list[tuple[tuple, str]], section: str, index: int) -> bool:
    return any(loc[:2] == (section, index) for loc, _ in errors)


def _leading(steps: list[tuple[int, object]]) -> list[tuple[int, object]]:
    """The valid steps before the first invalid one."""
    out = []
    for expected, (i, step) in enumerate(steps):
        if i != expected:
            break
        out.append((i, step))
    return out


def _valid(model, items) -> list[tuple[int, object]]:
    """(index, model) of the items of a YAML list that are valid on their own."""
    out = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        try:
            out.append((i, model.model_validate(item)))
        except ValidationError:
            pass
    return out


def _column_errors(steps) -> list[tuple[tuple, str]]:
    from gristmill.pipeline.plan import Step, column_errors
    from gristmill.pipeline.registry import get_stage

    resolved = []
    for i, step in steps:
        name, params = step.resolved()
        resolved.append(Step(i + 1, f"steps[{i}]", name, get_stage(name).Params.model_validate(params).model_dump()))
    return [(("steps", step.position - 1) + ((key,) if key else ()), message)
            for step, key, message in column_errors(resolved)]


def _path_errors(inputs, base_dir: Path) -> list[tuple[tuple, str]]:
    from gristmill.pipeline.plan import expand_paths, make_head_stage
    from gristmill.pipeline.spec import SpecError

    errors = []
    for i, inp in inputs:
        reader = make_head_stage(inp, specs.PipelineSpec(name="validate", inputs=[inp]), base_dir)
        for j, pattern in enumerate(inp.paths):
            try:
                expand_paths(inp.model_copy(update={"paths": [pattern]}), base_dir, "", [], reader)
            except (SpecError, OSError) as exc:  # no match; an object store that cannot be reached
                errors.append((("inputs", i, "paths", j), str(exc).removeprefix("[0]: ")))
    return errors


def _mixture_errors(steps, sources: set[str]) -> list[tuple[tuple, str]]:
    from gristmill.mixtures.solver import MixtureSpecError
    from gristmill.pipeline.registry import get_stage

    errors = []
    for i, step in steps:
        name, params = step.resolved()
        if name != MIXTURE_STAGE:
            continue
        try:
            ratios = get_stage(name).Params.model_validate(params).spec().ratios
        except (MixtureSpecError, OSError) as exc:
            errors.append((("steps", i, "params"), f"mixture: {exc}"))
            continue
        missing = sorted(s for s, share in ratios.items() if share > 0 and s not in sources)
        if missing:
            errors.append((("steps", i, "params"), f"mixture: source(s) {missing} have a share but no input; "
                                                   f"the inputs' sources are {sorted(sources)}"))
    return errors
