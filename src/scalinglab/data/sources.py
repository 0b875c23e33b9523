"""Where a corpus's documents come from: `stdlib`, a text file or folder, JSONL, Parquet, or `hf:NAME`.

A source yields `Document`s (name, text) in a fixed order, so the same input always gives the same corpus.
Documents are the unit of the train/val split; a source never cuts one in pieces.

Source specs (`open_source(spec)`):
    stdlib          every .py file of the running interpreter's standard library (sorted relative paths,
                    site-packages excluded), except its test suites (`test/`, `tests/`, `idle_test/` folders)
    stdlib-tests    exactly those held-out test files: the stdlib corpus's default extra eval set (Fig. 8)
    PATH.jsonl      one JSON object per line, text in `text_field` (also .jsonl.gz, .ndjson)
    PATH.parquet    a Parquet file, text in the `text_field` column
    PATH            any other file on its own: its blank-line-separated paragraphs are the documents
                    (so one big .txt, e.g. a book, still splits into train/val by paragraph)
    DIR             every file below DIR, recursively in sorted order: .jsonl/.parquet files by their records,
                    other files as one document each when they are UTF-8 text (binaries are skipped)
    hf:NAME[:SPLIT] a Hugging Face dataset from the local cache only (optional `datasets` package, offline)
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from scalinglab.errors import UserError

STDLIB_TEST_DIRS = frozenset({"test", "tests", "idle_test"})
STDLIB_EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
TEXT_SNIFF_BYTES = 8192
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Document:
    name: str  # where it came from: relative path, or path:line / path:row for record files
    text: str


@dataclass
class Source:
    """A named, ordered stream of documents. `documents()` can be called again to restart the stream."""

    spec: str
    kind: str
    paths: list[Path] = field(default_factory=list)
    text_field: str = "text"
    workers: int = 1
    skipped: int = 0  # files skipped as binary or undecodable (counted while reading)
    root: Path | None = None

    def documents(self) -> Iterator[Document]:
        self.skipped = 0
        if self.kind == "hf":
            yield from _hf_documents(self.spec[3:], self.text_field)
            return
        yield from self._file_documents()

    def _file_documents(self) -> Iterator[Document]:
        plain = []  # consecutive plain text files are read by a thread pool, in order

        def flush() -> Iterator[Document]:
            yield from self._read_texts(plain)
            plain.clear()

        for p in self.paths:
            if _is_jsonl(p):
                yield from flush()
                yield from jsonl_documents(p, self.text_field)
            elif _is_parquet(p):
                yield from flush()
                yield from parquet_documents(p, self.text_field)
            else:
                plain.append(p)
                if len(plain) >= 256:
                    yield from flush()
        yield from flush()

    def _read_texts(self, paths: list[Path]) -> Iterator[Document]:
        if not paths:
            return
        if self.workers > 1 and len(paths) > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                texts = list(pool.map(read_text_file, paths))
        else:
            texts = [read_text_file(p) for p in paths]
        for p, text in zip(paths, texts, strict=True):
            if text is None:
                self.skipped += 1
            elif self.kind == "file":  # one file on its own: its paragraphs are the documents
                for i, para in enumerate(paragraphs(text)):
                    yield Document(f"{self._name(p)}:{i + 1}", para)
            elif text.strip():
                yield Document(self._name(p), text)

    def _name(self, p: Path) -> str:
        if self.root is not None:
            try:
                return p.relative_to(self.root).as_posix()
            except ValueError:
                pass
        return str(p)


def paragraphs(text: str) -> list[str]:
    """Blank-line-separated paragraphs of a text, each ending with one newline (empty ones dropped)."""
    return [p.strip("\n") + "\n" for p in PARAGRAPH_BREAK.split(text) if p.strip()]


def _is_jsonl(p: Path) -> bool:
    return p.name.lower().endswith(JSONL_SUFFIXES)


def _is_parquet(p: Path) -> bool:
    return p.name.lower().endswith(PARQUET_SUFFIXES)


def read_text_file(path: Path) -> str | None:
    """The file's text if it is UTF-8 without NUL bytes (a text file), else None (binary or other encoding)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\x00" in data[:TEXT_SNIFF_BYTES]:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text.removeprefix("\ufeff")


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(tests: bool) -> list[Path]:
    """The stdlib's .py files in sorted relative-path order: library code (tests=False) or its test suites."""
    root = stdlib_root()
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in STDLIB_EXCLUDED_DIRS]  # never walk site-packages
        rel_dirs = set(Path(dirpath).relative_to(root).parts)
        if bool(STDLIB_TEST_DIRS & rel_dirs) == tests:
            out.extend(Path(dirpath) / f for f in filenames if f.endswith(".py"))
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def _walk(root: Path) -> list[Path]:
    """Every regular file below root (hidden files and folders skipped), sorted by relative path."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
        for f in filenames:
            if not f.startswith("."):
                p = Path(dirpath) / f
                if p.is_file():
                    files.append(p)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def open_source(spec: str, text_field: str = "text", workers: int = 1) -> Source:
    """Resolve a source spec; a missing path or an unusable spec is a UserError (exit 2) before any work."""
    spec = str(spec).strip()
    if not spec:
        raise UserError("empty --source; give stdlib, a file or folder path, or hf:NAME")
    if not text_field:
        raise UserError("--text-field must not be empty")
    if spec == "stdlib" or spec == "stdlib-tests":
        tests = spec == "stdlib-tests"
        return Source(spec, spec, stdlib_files(tests), text_field, workers, root=stdlib_root())
    if spec.startswith("hf:"):
        if not spec[3:]:
            raise UserError("hf: source needs a dataset name, e.g. hf:wikitext")
        return Source(spec, "hf", [], text_field, workers)
    p = Path(spec).expanduser()
    if not p.exists():
        raise UserError(f"source not found: {spec} (give stdlib, a file or folder path, or hf:NAME)")
    if p.is_dir():
        files = _walk(p)
        if not files:
            raise UserError(f"source folder {spec} is empty")
        return Source(spec, "folder", files, text_field, workers, root=p)
    if not p.is_file():
        raise UserError(f"source {spec} is neither a regular file nor a folder")
    kind = "jsonl" if _is_jsonl(p) else "parquet" if _is_parquet(p) else "file"
    if p.stat().st_size == 0:
        raise UserError(f"source file {spec} is empty")
    return Source(spec, kind, [p], text_field, workers, root=p.parent)


def jsonl_documents(path: Path, text_field: str) -> Iterator[Document]:
    """Records of a JSONL file; a line that is not a JSON object with a string `text_field` is a UserError."""
    from scalinglab.io import jsonl_objects

    for lineno, rec in jsonl_objects(path):
        if text_field not in rec:
            keys = ", ".join(sorted(rec)[:8]) or "none"
            raise UserError(f"{path}: line {lineno} has no {text_field!r} field (fields: {keys}); "
                            f"choose one with --text-field")
        text = rec[text_field]
        if text is None:
            continue
        if not isinstance(text, str):
            raise UserError(f"{path}: line {lineno} field {text_field!r} is {type(text).__name__}, not text")
        if text.strip():
            yield Document(f"{path.name}:{lineno}", text)


def parquet_documents(path: Path, text_field: str) -> Iterator[Document]:
    """Rows of a Parquet file's `text_field` column (string), read batch by batch; nulls are skipped."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise UserError(f"{path} is not a readable Parquet file: {str(e).splitlines()[0]}") from None
    names = pf.schema_arrow.names
    if text_field not in names:
        raise UserError(f"{path} has no column {text_field!r} (columns: {', '.join(names[:8])}); "
                        f"choose one with --text-field")
    ftype = pf.schema_arrow.field(text_field).type
    is_view = getattr(pa.types, "is_string_view", lambda t: False)  # pyarrow >= 16
    if not (pa.types.is_string(ftype) or pa.types.is_large_string(ftype) or is_view(ftype)):
        raise UserError(f"{path} column {text_field!r} has type {ftype}, not string")
    row = 0
    for batch in pf.iter_batches(columns=[text_field], batch_size=4096):
        for text in batch.column(0).to_pylist():
            row += 1
            if text and text.strip():
                yield Document(f"{path.name}:{row}", text)


def _hf_documents(spec: str, text_field: str) -> Iterator[Document]:
    """A Hugging Face dataset from the local cache only (HF_DATASETS_OFFLINE=1): `NAME` or `NAME:SPLIT`."""
    name, _, split = spec.partition(":")
    split = split or "train"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import datasets
    except ImportError:
        raise UserError(f"hf:{spec} needs the optional `datasets` package: pip install 'scalinglab[hf]'") from None
    if hasattr(datasets, "disable_progress_bars"):
        datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as e:  # offline + not cached raises one of several types depending on the version
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise UserError(f"hf:{spec} could not be loaded from the local Hugging Face cache "
                        f"(offline mode, nothing is downloaded): {first}") from None
    if text_field not in ds.column_names:
        raise UserError(f"hf:{spec} has no column {text_field!r} (columns: {', '.join(ds.column_names[:8])}); "
                        f"choose one with --text-field")
    for i, rec in enumerate(ds.select_columns([text_field])):
        text = rec[text_field]
        if isinstance(text, str) and text.strip():
            yield Document(f"{name}:{split}:{i}", text)


def describe_python() -> str:
    return f"{sys.implementation.name} {sys.version.split()[0]}"
