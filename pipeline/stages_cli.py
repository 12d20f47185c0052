"""``gristmill stages``: every registered stage (built-in, and third-party ones from the ``gristmill.stages``
entry-point group) and every input format, each with a one-line description and its parameters with their types
and defaults, read from the registry and the pydantic models."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

from gristmill.pipeline.registry import all_readers, all_stages


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


def catalogue() -> dict[str, list[dict[str, Any]]]:
    stages = [{"name": name, "kind": "global" if cls.is_global else "streaming", "module": cls.__module__,
               "description": describe(cls), "params": parameters(cls.Params)}
              for name, cls in all_stages().items()]
    readers = [{"format": fmt, "module": cls.__module__, "description": describe(cls),
                "options": parameters(cls.Options)}
               for fmt, cls in all_readers().items()]
    return {"stages": stages, "readers": readers}


def _param_lines(params: list[dict[str, Any]]) -> list[str]:
    lines = []
    for p in params:
        value = "required" if p.get("required") else f"= {p['default']!r}"
        lines.append(f"    {p['name']}: {p['type']} {value}")
    return lines or ["    (no parameters)"]


def render(data: dict[str, list[dict[str, Any]]]) -> str:
    out = ["stages (steps[].stage, params):"]
    for s in data["stages"]:
        out.append(f"  {s['name']}  [{s['kind']}]  {s['description']}")
        out += _param_lines(s["params"])
    out.append("input formats (inputs[].format, options):")
    for r in data["readers"]:
        out.append(f"  {r['format']}  {r['description']}")
        out += _param_lines(r["options"])
    return "\n".join(out)


def stages_cli(as_json: bool) -> str:
    data = catalogue()
    return json.dumps(data, indent=2, default=str) if as_json else render(data)

