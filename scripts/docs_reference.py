"""Reference pages generated from the code, so they cannot drift: an MkDocs hook (mkdocs.yml `hooks:`).

A page asks for a generated section with a line `<!-- generated: NAME -->`; at build time the hook replaces the
line with the Markdown that `GENERATORS[NAME]()` returns, read from the objects the package itself uses:

    plan-keys      the TrainConfig fields (pydantic) and the sweep plan's study, resource and table keys
    reproduce-keys the [reproduce] table's models
    laws           the law registry (name, formula, inputs, parameters, target)
    figures        the figure registry (number, title, caption, what it needs, the plan entry that measures it)
    datasets       the packaged published tables with their provenance
    fit-json       the keys of a fit JSON file, from a real `scalinglab fit --json` run
    store-schema   the SQLite schema of a new results store
    import-schema  what `scalinglab import` reads: formats, the canonical schema, the column aliases

`python scripts/docs_reference.py NAME` prints one section (to look at it without building the site).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

JSON_TYPES = {"str": "string", "int": "number", "float": "number", "bool": "boolean", "dict": "object",
              "list": "array", "NoneType": "null"}
MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", flags=re.M)


def _cell(text: Any) -> str:
    """One Markdown table cell: no newlines, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _type_name(annotation: Any) -> str:
    """A field's type as a reader writes it: `int or None`, `one of: 'cosine', 'wsd'`."""
    text = str(annotation).replace("typing.", "")
    text = text.removeprefix("<class '").removesuffix("'>")
    text = re.sub(r"Literal\[(.*?)\]", r"one of \1", text)
    return text.replace(" | ", " or ")


def _fields_table(model: Any) -> str:
    from pydantic_core import PydanticUndefined

    rows = []
    for name, f in model.model_fields.items():
        if f.default is not PydanticUndefined:
            default = f"`{f.default!r}`"
        elif f.default_factory is not None:
            default = f"`{f.default_factory()!r}`"
        else:
            default = "required"
        rows.append([f"`{name}`", _type_name(f.annotation), default, f.description or ""])
    return _table(["key", "type", "default", "meaning"], rows)


def plan_keys() -> str:
    from scalinglab.config import TrainConfig
    from scalinglab.sweep import plan

    doc = (plan.__doc__ or "").strip()
    parts = [
        "### Run settings (`TrainConfig`)",
        "Every key below is at once a `scalinglab train --flag` (underscores become dashes), a `--set key=value` "
        "and a plan key in `[train]`, `[[grid]]` (a list is a grid axis) or `[[run]]`.",
        _fields_table(TrainConfig),
        "### Study, resource and table keys",
        _table(["kind", "keys"], [
            ["study keys (expanded into runs before validation)", ", ".join(f"`{k}`" for k in plan.STUDY_KEYS)],
            ["resource keys (what one run asks a Ray cluster for)", ", ".join(f"`{k}`" for k in plan.RESOURCE_KEYS)],
            ["table keys (one value per table, not part of the run id)", ", ".join(f"`{k}`" for k in plan.TABLE_KEYS)],
            ["list keys (a list value, never a grid axis)", ", ".join(f"`{k}`" for k in plan.LIST_KEYS)],
        ]),
        "The plan format as the plan module documents it (`scalinglab.sweep.plan`):",
        "```text\n" + doc + "\n```",
        "### Top level of a plan file",
        _fields_table(plan.PlanFile),
    ]
    return "\n\n".join(parts)


def reproduce_keys() -> str:
    from scalinglab import reproduce

    return "\n\n".join([
        "`[reproduce]`:", _fields_table(reproduce._Reproduce),
        "`[reproduce.corpus]`:", _fields_table(reproduce._Corpus),
        "`[[reproduce.fit]]` (one law job each):", _fields_table(reproduce._Fit),
    ])


def _unit(law) -> str:
    """What the law's bootstrap resamples (a class setting for approaches 1 and 2, else runs or points)."""
    return getattr(law, "resample", "") or ("runs" if getattr(law, "curve_law", False) else "points")


def laws() -> str:
    from scalinglab.laws import get_law, law_names

    out = [_table(["law", "formula", "bootstrap unit", "provides"],
                  [[f"[`{n}`](#{n})", f"`{get_law(n).formula}`", _unit(get_law(n)),
                    ", ".join(sorted(get_law(n).provides))] for n in law_names()])]
    for name in law_names():
        law = get_law(name)
        doc = (type(law).__doc__ or "").strip()
        out.append(f"### `{name}` {{#{name}}}\n\n`{law.formula}`\n\n"
                   f"inputs: {', '.join(law.inputs)} · parameters: {', '.join(law.param_names)} · "
                   f"target: {law.target} · reads: {law.reads} · default families: {', '.join(law.families or ('all',))} · "
                   f"settings: `{law.get_params()}`\n\n{doc}")
    return "\n\n".join(out)


def figures() -> str:
    import scalinglab.report.figures  # noqa: F401  (registers every figure)
    from scalinglab.report.figures.registry import ordered

    out = [_table(["figure", "title"], [[f"[{s.number}](#{s.key})", s.title] for s in ordered()])]
    for s in ordered():
        plan = f"\n\nA plan entry that measures it:\n\n```toml\n{s.plan}\n```" if s.plan else ""
        out.append(f"### Figure {s.number}: {s.title} {{#{s.key}}}\n\n{s.caption}\n\n"
                   f"**Needs:** {s.needs}. Drawn as `{s.key}.png`.{plan}")
    return "\n\n".join(out)


def datasets() -> str:
    from scalinglab import datasets as ds

    infos = ds.list_datasets()
    out = [_table(["name", "rows", "title", "source", "licence"],
                  [[i.name, i.rows, i.title, i.source, i.licence] for i in infos])]
    for i in infos:  # each provenance section starts with its own "## N. `file.csv` — title" heading
        text = ds.provenance(i.name)
        text = re.sub(r"^(#+) ", lambda m: "#" * min(len(m.group(1)) + 1, 6) + " ", text, flags=re.M)
        out.append(text.strip())
    return "\n\n".join(out)


def fit_json() -> str:
    from scalinglab.cli import main

    out = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(out):
        path = Path(tmp) / "fit.json"
        try:
            main(["fit", "--dataset", "chinchilla_epoch_fig4", "--law", "chinchilla", "--query", "in_epoch_fit",
                  "--bootstrap", "20", "--holdout", "3", "--json", str(path)])
        except SystemExit as e:
            if e.code:
                raise
        fit = json.loads(path.read_text())
    rows = []
    for key, value in fit.items():
        if isinstance(value, dict):
            shape = "object: " + ", ".join(f"`{k}`" for k in list(value)[:8]) + (", ..." if len(value) > 8 else "")
        elif isinstance(value, list):
            shape = f"list ({len(value)} items)"
        else:
            shape = f"`{json.dumps(value)[:60]}`"
        rows.append([f"`{key}`", JSON_TYPES.get(type(value).__name__, type(value).__name__), shape])
    sample = {k: v for k, v in fit.items() if k in ("law", "formula", "inputs", "params", "ci95", "n_points",
                                                     "residual_rms", "converged", "at_bounds", "resample")}
    return "\n\n".join([
        "Generated from `scalinglab fit --dataset chinchilla_epoch_fig4 --law chinchilla --query in_epoch_fit "
        "--bootstrap 20 --holdout 3 --json fit.json`, run while the site was built:",
        _table(["key", "JSON type", "value in that run (objects: their keys)"], rows),
        "Its first keys:", "```json\n" + json.dumps(sample, indent=2) + "\n```",
    ])


def store_schema() -> str:
    from scalinglab.store import db as store

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.db"
        store.connect(path).close()
        con = sqlite3.connect(path)
        try:
            sql = [r[0] for r in con.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid")]
            version = con.execute("PRAGMA user_version").fetchone()[0]
        finally:
            con.close()
    return "\n\n".join([
        f"Schema version {version} (`PRAGMA user_version`), as a new store is created:",
        "```sql\n" + ";\n".join(sql) + ";\n```",
        "The store module's own description (`scalinglab.store.db`):",
        "```text\n" + (store.__doc__ or "").strip() + "\n```",
    ])


def import_schema() -> str:
    from scalinglab import importers
    from scalinglab.importers import schema

    def aliases(table: dict) -> str:
        return _table(["canonical", "also read from"], [[f"`{canon}`", ", ".join(f"`{a}`" for a in names)]
                                                       for canon, names in sorted(_alias_groups(table).items())])

    return "\n\n".join([
        "Formats (`--format`, else detected from the source): " + ", ".join(f"`{f}`" for f in importers.FORMATS) + ".",
        "```text\n" + (importers.__doc__ or "").strip() + "\n```",
        "Names a source may use for the curve columns (`scalinglab.importers.schema.CURVE_ALIASES`):",
        aliases(schema.CURVE_ALIASES),
        "Names a source may use for the run settings (`scalinglab.importers.schema.CONFIG_ALIASES`):",
        aliases(schema.CONFIG_ALIASES),
    ])


def _alias_groups(aliases: dict) -> dict[str, list[str]]:
    """{alias: canonical} or {canonical: [aliases]} -> {canonical: [aliases]}."""
    groups: dict[str, list[str]] = {}
    for key, value in aliases.items():
        if isinstance(value, str):
            groups.setdefault(value, []).append(key)
        else:
            groups.setdefault(key, []).extend(value)
    return groups


GENERATORS: dict[str, Callable[[], str]] = {
    "import-schema": import_schema,
    "plan-keys": plan_keys, "reproduce-keys": reproduce_keys, "laws": laws, "figures": figures,
    "datasets": datasets, "fit-json": fit_json, "store-schema": store_schema,
}


def expand(markdown: str) -> str:
    """The page with every `<!-- generated: NAME -->` line replaced by its section."""
    def one(m: re.Match) -> str:
        name = m.group(1)
        if name not in GENERATORS:
            raise KeyError(f"unknown generated section {name!r}; known: {', '.join(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(one, markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:  # the MkDocs hook
    return expand(markdown)


if __name__ == "__main__":
    print(GENERATORS[sys.argv[1]]())
