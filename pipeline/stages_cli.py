"""``gristmill stages``: every registered stage (built-in, and third-party ones from the ``gristmill.stages``
entry-point group), each with its kind, a one-line description and its parameters with their types and defaults,
read from the registry and the pydantic models. Head stages (the readers of ``inputs[]``) also show the short
``format`` an input may name them by; their parameters are the input's ``options``."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

from gristmill.pipeline.registry import all_stages, formats


def describe(cls: type) -> str:
    """The first sentence of the class's docstring (else of its module's), on one line."""
    import sys

    doc = (cls.__doc__ or "").strip() or (getattr(sys.modules.get(cls.__module__), "__doc__", None) or "").strip()
    paragraph = re.sub(r"^``[\w.]+``: ", "", " ".join(doc.split("\n\n", 1)[0].split()))
    sentence = re.match(r"(.+?\.)(\s|$)", paragraph)
    return sentence.group(1) if sentence else paragraph


def parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    out = []
    for name, field in model.model_fields.items():
        entry: dict[str, Any] = {"name": name, "type": _type_name(field.annotation)}
        if field.is_required():
            entry["required"] = True
        else:
            default = field.get_default(call_default_factory=True)
            entry["default"] = default.model_dump(mode="json") if isinstance(default, BaseModel) else default
        out.append(entry)
    return out


def _type_name(annotation: Any) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return re.sub(r"\b(typing|collections\.abc|pydantic\.\w+|gristmill(\.\w+)*)\.", "", text)


def catalogue() -> dict[str, Any]:
    """``stages``: every stage in name order; ``formats``: each short input format -> the head stage it names."""
    by_format = formats()
    format_of = {name: fmt for fmt, name in by_format.items()}
    stages = []
    for name, cls in all_stages().items():
        entry = {"name": name, "kind": cls.kind, "module": cls.__module__, "description": describe(cls),
                 "params": parameters(cls.Params)}
        if cls.kind == "head":
            entry["format"] = format_of.get(name)
        stages.append(entry)
    return {"stages": stages, "formats": by_format}


def _param_lines(params: list[dict[str, Any]]) -> list[str]:
    lines = []
    for p in params:
        value = "required" if p.get("required") else f"= {p['default']!r}"
        lines.append(f"    {p['name']}: {p['type']} {value}")
    return lines or ["    (no parameters)"]


def render(data: dict[str, Any]) -> str:
    out = ["readers: head stages (inputs[].format: the format or the stage's name; inputs[].options):"]
    for s in (s for s in data["stages"] if s["kind"] == "head"):
        fmt = f"format: {s['format']}, " if s.get("format") else ""
        out.append(f"  {s['name']}  [{fmt}head]  {s['description']}")
        out += _param_lines(s["params"])
    out.append("stages (steps[].stage, params):")
    for s in (s for s in data["stages"] if s["kind"] != "head"):
        out.append(f"  {s['name']}  [{s['kind']}]  {s['description']}")
        out += _param_lines(s["params"])
    return "\n".join(out)


def stages_cli(as_json: bool) -> str:
    data = catalogue()
    return json.dumps(data, indent=2, default=str) if as_json else render(data)

