"""`scalinglab corpus prepare|info`: build a tokenized corpus from stdlib or your own text, and describe one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalinglab.cli.core import emit_json, new_app
from scalinglab.cli.options import JsonFlag
from scalinglab.errors import UserError

corpus_app = new_app(
    no_args_is_help=True,
    help="Prepare a tokenized corpus (stdlib, files, folders, JSONL, Parquet, hf:NAME) and inspect one.",
)


def _parse_eval_set(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise UserError(f"--eval-set expects NAME=SOURCE, got {item!r}")
        if name.strip() in out:
            raise UserError(f"--eval-set {name.strip()!r} given twice")
        out[name.strip()] = spec.strip()
    return out


@corpus_app.command()
def prepare(
    out: Annotated[Path, typer.Option("--out", help="Corpus folder to create (built beside it, renamed at the end).")],
    source: Annotated[str, typer.Option(
        "--source", help="stdlib | stdlib-tests | FILE | FOLDER | FILE.jsonl | FILE.parquet | hf:NAME[:SPLIT].")
    ] = "stdlib",
    vocab_size: Annotated[int, typer.Option("--vocab-size", help="BPE vocabulary size, EOT included.")] = 8192,
    max_tokens: Annotated[int | None, typer.Option(
        "--max-tokens", help="Cap on train+val tokens; documents are read in order until it is reached.")] = None,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction",
        help="Held-out fraction; val gets at least max(F·T, min(50,000, 10%·T)) tokens of the T total.")] = 0.01,
    eval_set: Annotated[list[str] | None, typer.Option(
        "--eval-set", help="Extra evaluation set NAME=SOURCE (repeatable). stdlib adds stdlib-tests by default.")
    ] = None,
    no_default_eval_set: Annotated[bool, typer.Option(
        "--no-default-eval-set", help="Do not add the source's default eval set (stdlib-tests for stdlib).")] = False,
    eval_max_tokens: Annotated[int | None, typer.Option(
        "--eval-max-tokens", help="Cap per eval set (default: max(val tokens, 50,000)).")] = None,
    text_field: Annotated[str, typer.Option("--text-field", help="Text field of JSONL / column of Parquet / hf.")
                          ] = "text",
    tokenizer: Annotated[Path | None, typer.Option(
        "--tokenizer", help="Use this tokenizer.json instead of training a BPE.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Threads for reading and encoding.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing corpus at --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or log lines.")] = False,
    json_: JsonFlag = False,
) -> None:
    """Tokenize a source into train/val (+ eval set) token files with a byte-level BPE; see `corpus info`."""
    from scalinglab.data.prepare import Reporter, prepare_corpus

    evals = _parse_eval_set(eval_set or [])
    # None keeps the source's default eval set; an explicit list adds to it unless --no-default-eval-set.
    eval_arg: dict[str, str] | None
    if no_default_eval_set:
        eval_arg = evals
    elif evals:
        from scalinglab.data.prepare import DEFAULT_EVAL_SET

        default = DEFAULT_EVAL_SET.get(source.strip())
        eval_arg = {**({default[0]: default[1]} if default else {}), **evals}
    else:
        eval_arg = None
    info = prepare_corpus(
        source, out, vocab_size=vocab_size, max_tokens=max_tokens, val_fraction=val_fraction, eval_sets=eval_arg,
        eval_max_tokens=eval_max_tokens, text_field=text_field, tokenizer=tokenizer, workers=workers,
        overwrite=overwrite, reporter=Reporter(quiet=quiet),
    )
    if json_:
        emit_json(info)
    elif quiet:
        typer.echo(str(out))


@corpus_app.command()
def info(
    path: Annotated[Path, typer.Argument(help="A corpus folder made by `corpus prepare`.")],
    verify: Annotated[bool, typer.Option("--verify", help="Also check every file's sha256 checksum.")] = False,
    json_: JsonFlag = False,
) -> None:
    """Token counts, vocabulary, documents and eval sets of a prepared corpus (exit 2 if it is not one)."""
    from scalinglab.data.corpus import Corpus

    c = Corpus.open(path)
    c.check(verify=verify)
    summary = c.info()
    if verify:
        summary["verified"] = True
    if json_:
        emit_json(summary)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"corpus {path}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    docs = summary["documents"] or {}
    rows = [
        ("source", str(summary["source"])),
        ("train tokens", f"{summary['train_tokens']:,}"),
        ("val tokens", f"{summary['val_tokens']:,}"),
        ("documents (train / val)", f"{docs.get('train', '?'):,} / {docs.get('val', '?'):,}"
         if isinstance(docs.get("train"), int) else str(docs)),
        ("vocab size", f"{summary['vocab_size']:,}"),
        ("end-of-document token", str(summary["eot_token"])),
        ("token dtype", str(summary["dtype"])),
    ]
    for name, e in summary["eval_sets"].items():
        rows.append((f"eval set {name}", f"{e['tokens']:,} tokens from {e['source']}"))
    if verify:
        rows.append(("checksums", "ok"))
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)
