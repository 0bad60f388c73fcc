"""The configuration reference (docs/configuration.md), generated from the config model itself,
so it cannot drift from it: `python -m leadscore.pipeline.config_reference > docs/configuration.md`
(`make docs`); a test checks the file is current."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from leadscore.pipeline.config import Config, LookupConfig, SourceConfig, _model_in

INTRO = """# Configuration reference

<!-- Generated from pipeline/config.py by `make docs`; do not edit by hand. -->

YAML, loaded once into a frozen, validated model. Every key is optional; unknown keys and bad
values stop the run with exit code 2 and a message naming the key and what was expected.
`--set KEY=VALUE` overrides any key (`--set model.learning_rate=0.1`). A source (`data.leads`,
`data.accounts`, `data.activities`, `data.deals`, each item of `data.lookups`) has the keys of
the *source* table below; see [Bring your own data](data.md) for how they fit together.
"""


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        return "required"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value, default=str)}`"


def _rows(model: type[BaseModel], prefix: str, skip: set[type[BaseModel]]) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = _model_in(field.annotation)
        if sub is not None and sub not in skip:
            rows += _rows(sub, f"{key}.", skip)
            continue
        if sub is not None:
            meaning = (
                f"a source: the keys of the *{sub.__name__.removesuffix('Config').lower()}* table"
            )
            rows.append(f"| `{key}` | {_default(field)} | {meaning} |")
            continue
        text = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | {_default(field)} | {text} |")
    return rows


def _table(title: str, rows: list[str]) -> str:
    return "\n".join([f"## {title}", "", "| key | default | meaning |", "|---|---|---|", *rows])


def reference() -> str:
    """The whole reference as Markdown."""
    sources = {SourceConfig, LookupConfig}
    parts = [INTRO]
    for name, field in Config.model_fields.items():
        section = _model_in(field.annotation)
        if section is None:
            continue
        parts.append(_table(f"`{name}`", _rows(section, f"{name}.", sources)))
    parts.append(_table("*source* (each of `data.leads`, `.accounts`, `.activities`, `.deals`)",
                        _rows(SourceConfig, "", set())))  # fmt: skip
    lookup_only = [
        r for r in _rows(LookupConfig, "", set()) if r not in _rows(SourceConfig, "", set())
    ]
    parts.append(
        _table("*lookup* (each item of `data.lookups`: the source keys, plus)", lookup_only)
    )
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    print(reference(), end="")
