"""`corpus prepare`: source documents → byte-level BPE → train/val/eval token files, built atomically.

Steps, each deterministic given the same inputs and options:
1. Read documents in the source's fixed order. With `max_tokens` M, read about M·4.5 characters first
   (more later if that was not enough), so a 1M-token corpus never reads the whole source.
2. Give each document a number u in [0, 1) from the SHA-256 of its text. The split is by document, never
   inside one, and identical documents always land in the same split.
3. Train the BPE only on documents with u ≥ 2·max(val_fraction, 10%) (at most 0.5): twice the share the
   val rule needs, so val documents are not seen by the tokenizer. Only when a corpus has too few documents
   for that does val reach into the tokenizer's documents; the manifest counts them
   (`split.val_documents_seen_by_tokenizer`). `--tokenizer PATH` loads an existing tokenizer.json instead.
4. Encode every document (multi-threaded `encode_batch_fast`), append the end-of-document token after each,
   and keep documents in source order until M tokens (the last kept document is cut to land on M exactly).
5. Val rule: the documents with the smallest u, until val holds at least
   max(val_fraction·T, min(50,000, 10%·T)) tokens of the T kept — so small corpora still get a stable
   val loss (1M tokens → ≥ 50k val tokens; 100k tokens → ≥ 10k). A document that would take val past
   twice that target is skipped (left in train), so one huge file cannot swallow a small corpus; if every
   document is that big, val is the single smallest one. Train is everything else, in source order.
6. Extra eval sets (`--eval-set NAME=SOURCE`; for `stdlib`, the held-out stdlib test suites by default)
   use the same tokenizer, drop documents identical to a corpus document, and are capped at
   `eval_max_tokens` (default max(val tokens, 50,000)).
7. Everything is written into a hidden temporary folder beside DIR (`.DIR.tmp-PID-*`), which is renamed
   into place at the end; a prepare that was killed leaves only that folder, which the next prepare of DIR
   deletes once its PID is gone. Ctrl-C at any stage stops it at once (the BPE trainer, which would hold off
   a SIGINT until it finishes, runs in a child process that is killed), leaves DIR as it was and removes the
   temp folder. Without a progress bar, each stage after reading logs a line as it starts.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from glob import escape as glob_escape
from pathlib import Path

import numpy as np

from scalinglab.cores import available_cores
from scalinglab.data.corpus import FORMAT, MANIFEST, Corpus, token_dtype, write_corpus
from scalinglab.data.sources import Document, Source, describe_python, open_source
from scalinglab.errors import UserError
from scalinglab.io import _fsync_dir

VAL_MIN_TOKENS = 50_000
VAL_MIN_FRACTION = 0.10
EVAL_MIN_TOKENS = 50_000
CHARS_PER_TOKEN_GUESS = 4.5  # generous: BPE on code/English gives ~3-4.5 characters per token
TOKENIZER_TRAIN_CHARS = 256 << 20
ENCODE_BATCH_CHARS_CAPPED = 1 << 20  # smaller batches under --max-tokens: stop encoding soon after the cap  # train the BPE on at most the first 256M characters of training text
DEFAULT_EVAL_SET = {"stdlib": ("stdlib-tests", "stdlib-tests")}
EVAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def val_target(total_tokens: int, val_fraction: float) -> int:
    """Minimum val tokens: max(val_fraction·T, min(50,000, 10%·T))."""
    return max(math.ceil(val_fraction * total_tokens), min(VAL_MIN_TOKENS, math.ceil(VAL_MIN_FRACTION * total_tokens)))


def doc_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def digest_unit(digest: bytes) -> float:
    """A document's position in [0, 1): the split key."""
    return int.from_bytes(digest[:8], "big") / 2.0**64


class Reporter:
    """A rich progress bar on a terminal, quiet one-line logs (stderr) otherwise, or nothing (quiet)."""

    def __init__(self, bar: bool | None = None, quiet: bool = False, stream=None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.bar = (not quiet) and (self.stream.isatty() if bar is None else bar)

    @contextmanager
    def stage(self, description: str, total: float | None = None, announce: bool = True
              ) -> Iterator[Callable[[float], None]]:
        if not self.bar:  # a line when the stage starts (a log shows where a long prepare is), unless bad input
            if announce:  # may still end it: its error is then the only line
                self.log(f"{description} ...")
            yield lambda n: None
            return
        from scalinglab.progress import Progress

        with Progress(description, total, enabled=True, count=False, stream=self.stream) as p:
            yield p.advance

    def log(self, message: str) -> None:
        if not self.quiet:
            print(f"corpus: {message}", file=self.stream, flush=True)


class _Reader:
    """Pulls documents from a source in order, a character budget at a time."""

    def __init__(self, source: Source):
        self.source = source
        self._it = source.documents()
        self.exhausted = False
        self.chars = 0

    def take(self, max_chars: float | None, advance: Callable[[float], None] = lambda n: None) -> list[Document]:
        docs, chars = [], 0
        while not self.exhausted and (max_chars is None or chars < max_chars):
            try:
                d = next(self._it)
            except StopIteration:
                self.exhausted = True
                break
            docs.append(d)
            chars += len(d.text)
            advance(len(d.text))
        self.chars += chars
        return docs


def check_destination(out: Path, overwrite: bool) -> bool:
    """Raise UserError unless `out` may receive a corpus; True when it holds one that will be replaced."""
    if not out.exists() and not out.is_symlink():
        return False
    if not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder; refusing to replace it")
    if is_corpus_dir(out):
        if not overwrite:
            raise UserError(f"{out} already holds a corpus; pass --overwrite to replace it")
        return True
    if any(out.iterdir()):
        raise UserError(f"--out {out} exists, is not empty and is not a scalinglab corpus; refusing to write into it")
    return False


def is_corpus_dir(path: Path) -> bool:
    try:
        Corpus.open(path)
    except UserError:
        return False
    return True


def _install(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished temp folder into place; an old corpus is renamed aside first, then deleted."""
    replacing = check_destination(out, overwrite)  # again: the folder may have changed while we worked
    if replacing:
        old = out.parent / f".{out.name}.old-{secrets.token_hex(4)}"
        try:  # both renames inside: an interrupt landing between them must not leave DIR missing
            os.rename(out, old)
            os.rename(tmp, out)
        except BaseException:
            if tmp.exists():  # the new corpus is not in place: the old one goes back
                if old.exists() and not out.exists():
                    os.rename(old, out)
            else:  # it is in place: finish the install
                shutil.rmtree(old, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        if out.is_dir():  # an empty folder
            out.rmdir()
        os.rename(tmp, out)
    _fsync_dir(out.parent)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _remove_stale_temp(out: Path) -> None:
    """Delete temp folders `.NAME.tmp-PID-*` beside `out` left by a prepare that was killed (its PID is gone)."""
    for stale in out.parent.glob(f".{glob_escape(out.name)}.tmp-*-*"):
        pid = stale.name.rsplit("-", 2)[-2]
        if stale.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _parse_eval_sets(eval_sets: dict[str, str] | None, source_kind: str) -> dict[str, str]:
    specs = dict(eval_sets or {})
    for name in specs:
        if not EVAL_NAME.match(name) or name in ("train", "val"):
            raise UserError(f"eval set name {name!r} must be letters, digits, '_', '.', '-' and not train/val")
    if eval_sets is None and source_kind in DEFAULT_EVAL_SET:
        name, spec = DEFAULT_EVAL_SET[source_kind]
        specs[name] = spec
    return specs


def _cut(seqs: list[np.ndarray], limit: int | None) -> tuple[list[np.ndarray], bool]:
    """Keep whole sequences in order until `limit` tokens; the last kept one is cut to land on it exactly."""
    if limit is None:
        return seqs, False
    kept, total = [], 0
    for s in seqs:
        if total + len(s) >= limit:
            kept.append(s[: limit - total])
            return kept, total + len(s) > limit
        kept.append(s)
        total += len(s)
    return kept, False


def _with_eot(ids: list[np.ndarray], eot: int, dtype: np.dtype) -> list[np.ndarray]:
    e = np.array([eot], dtype=dtype)
    return [np.concatenate([x, e]) for x in ids]


def _join(seqs: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    return np.concatenate(seqs).astype(dtype, copy=False) if seqs else np.zeros(0, dtype=dtype)


def prepare_corpus(
    source: str,
    out: str | Path,
    *,
    vocab_size: int = 8192,
    max_tokens: int | None = None,
    val_fraction: float = 0.01,
    eval_sets: dict[str, str] | None = None,
    eval_max_tokens: int | None = None,
    text_field: str = "text",
    tokenizer: str | Path | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> dict:
    """Build a corpus folder at `out` from `source`; returns its `Corpus.info()` plus timing.

    `eval_sets=None` means the source's default (stdlib → {'stdlib-tests': held-out stdlib test files});
    pass `{}` for none. Bad input raises UserError before anything at `out` changes.
    """
    t_start = time.perf_counter()
    rep = reporter or Reporter(quiet=True)
    if max_tokens is not None and max_tokens < 2:
        raise UserError(f"--max-tokens must be at least 2, got {max_tokens}")
    if not 0.0 < val_fraction <= 0.5:
        raise UserError(f"--val-fraction must be in (0, 0.5], got {val_fraction}")
    if eval_max_tokens is not None and eval_max_tokens < 1:
        raise UserError(f"--eval-max-tokens must be positive, got {eval_max_tokens}")
    if workers is not None:
        if workers < 1:
            raise UserError(f"--workers must be at least 1, got {workers}")
        os.environ["RAYON_NUM_THREADS"] = str(workers)  # tokenizers' thread pool, read on first use
    if tokenizer is None and vocab_size < 257:
        raise UserError(f"--vocab-size must be at least 257 (256 bytes + end-of-document), got {vocab_size}")
    n_workers = workers or available_cores()

    out = Path(out).expanduser()
    src = open_source(source, text_field, n_workers)
    eval_specs = _parse_eval_sets(eval_sets, src.kind)
    eval_srcs = {name: open_source(spec, text_field, n_workers) for name, spec in eval_specs.items()}
    if src.kind == "folder" and src.root is not None:
        o, r = out.resolve(), src.root.resolve()
        if o == r or r in o.parents:
            raise UserError(f"--out {out} is inside the source folder {source}; choose a folder outside it")
    check_destination(out, overwrite)
    from scalinglab.data.tokenizer import load_tokenizer  # validate --tokenizer before any work

    loaded_tok = load_tokenizer(tokenizer) if tokenizer is not None else None

    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:  # the mkdir inside: an interrupt arriving just after it must still remove the folder
        tmp.mkdir()
        manifest_extra = _build(src, eval_srcs, tmp, rep, vocab_size=vocab_size, max_tokens=max_tokens,
                                val_fraction=val_fraction, eval_max_tokens=eval_max_tokens,
                                loaded_tok=loaded_tok, tokenizer_arg=tokenizer)
        _install(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    info = Corpus.open(out).info()
    elapsed = time.perf_counter() - t_start
    total = info["train_tokens"] + info["val_tokens"]
    info.update(prepare_seconds=round(elapsed, 3), tokens_per_s=round(total / max(elapsed, 1e-9), 1),
                read_chars=manifest_extra["build"]["read_chars"])
    rep.log(f"wrote {out}: {info['train_tokens']:,} train + {info['val_tokens']:,} val tokens, "
            f"vocab {info['vocab_size']:,}, in {elapsed:.1f} s ({info['tokens_per_s']:,.0f} tokens/s)")
    return info


def _build(src: Source, eval_srcs: dict[str, Source], tmp: Path, rep: Reporter, *, vocab_size: int,
           max_tokens: int | None, val_fraction: float, eval_max_tokens: int | None, loaded_tok,
           tokenizer_arg) -> dict:
    """Run the prepare stages into `tmp` (steps 1-7 of the module docstring); returns the manifest's extra."""
    from scalinglab.data.tokenizer import eot_id
    from scalinglab.data.tokenizer import vocab_size as tok_vocab_size

    reader, docs, eval_readers, eval_docs = _read_sources(src, eval_srcs, rep, max_tokens=max_tokens,
                                                          val_fraction=val_fraction,
                                                          eval_max_tokens=eval_max_tokens)
    units = [digest_unit(doc_digest(d.text)) for d in docs]
    band = min(0.5, 2 * max(val_fraction, VAL_MIN_FRACTION))  # 2x the val rule's share: rarely short
    n_first = len(docs)
    if loaded_tok is not None:
        tok, tok_info = loaded_tok, {"trained": False, "loaded_from": str(tokenizer_arg)}
    else:
        tok, tok_info = _train_tokenizer(docs, units, band, vocab_size, rep, tmp)
    eot = eot_id(tok)
    vocab = tok_vocab_size(tok)
    dtype = token_dtype(vocab)
    docs, seqs, truncated = _encode_corpus(tok, reader, docs, rep, max_tokens=max_tokens, eot=eot, dtype=dtype)
    digests = [doc_digest(d.text) for d in docs]
    units = [digest_unit(h) for h in digests]
    in_val, target, val_tokens, val_seen = _choose_val(seqs, units, val_fraction, band=band, n_first=n_first,
                                                       trained=loaded_tok is None)
    train = _join([s for s, v in zip(seqs, in_val, strict=True) if not v], dtype)
    val = _join([s for s, v in zip(seqs, in_val, strict=True) if v], dtype)
    if val_seen:
        rep.log(f"{val_seen} val documents were in the tokenizer's training text (too few documents "
                f"outside it to reach the {target:,}-token val minimum)")
    eval_arrays, eval_meta = _encode_eval_sets(tok, eval_readers, eval_docs, set(digests[: len(seqs)]), rep,
                                               cap=eval_max_tokens or max(val_tokens, EVAL_MIN_TOKENS),
                                               eot=eot, dtype=dtype)

    # 7. Write into the temp folder (the caller renames it into place).
    tok_path = tmp / "tokenizer.json"
    if loaded_tok is not None:
        shutil.copyfile(tokenizer_arg, tok_path)
    else:
        tok.save(str(tok_path))
    n_kept = len(seqs)
    documents = {"train": int(n_kept - in_val.sum()), "val": int(in_val.sum())}
    documents.update({name: m["documents"] for name, m in eval_meta.items()})
    extra = _manifest_extra(src, max_tokens=max_tokens, val_fraction=val_fraction, eval_max_tokens=eval_max_tokens,
                            target=target, val_seen=val_seen,
                            tok_info={**tok_info, "eot": tok.id_to_token(eot),
                                      "special_tokens_in_text": "encoded as text"},
                            eval_meta=eval_meta,
                            build={"read_documents": len(docs), "read_chars": reader.chars,
                                   "skipped_files": src.skipped, "last_document_truncated": truncated})
    t3 = time.perf_counter()
    with rep.stage("writing token files"):
        write_corpus(tmp, train, val, vocab, eot, source=src.spec, documents=documents, eval_sets=eval_arrays,
                     tokenizer_path=tok_path, extra=extra)
    rep.log(f"wrote token files in {time.perf_counter() - t3:.1f} s")
    return extra


def _read_sources(src: Source, eval_srcs: dict[str, Source], rep: Reporter, *, max_tokens: int | None,
                  val_fraction: float, eval_max_tokens: int | None
                  ) -> tuple[_Reader, list[Document], dict[str, _Reader], dict[str, list[Document]]]:
    """Step 1: read the main source's first chunk, then each eval source's, so bad input fails before any log line."""
    t0 = time.perf_counter()
    reader = _Reader(src)
    first = max_tokens * CHARS_PER_TOKEN_GUESS if max_tokens else None
    with rep.stage(f"reading {src.spec}", first, announce=False) as adv:
        docs = reader.take(first, adv)
    if not docs:
        extra = f"; {src.skipped} binary or non-UTF-8 files skipped" if src.skipped else ""
        raise UserError(f"source {src.spec} has no documents (no non-empty text{extra})")
    est_total = min(max_tokens or math.inf, reader.chars / 3.5)
    eval_readers = {name: _Reader(s) for name, s in eval_srcs.items()}
    eval_docs: dict[str, list[Document]] = {}
    for name, r in eval_readers.items():
        cap_guess = eval_max_tokens or max(val_target(int(est_total), val_fraction), EVAL_MIN_TOKENS)
        with rep.stage(f"reading eval set {name}", announce=False) as adv:
            eval_docs[name] = r.take(cap_guess * CHARS_PER_TOKEN_GUESS, adv)
    rep.log(f"read {len(docs):,} documents ({reader.chars / 1e6:.1f} M characters) from {src.spec}"
            + (f", skipped {src.skipped} binary/non-UTF-8 files" if src.skipped else "")
            + f" in {time.perf_counter() - t0:.1f} s")
    return reader, docs, eval_readers, eval_docs


def _train_tokenizer(docs: list[Document], units: list[float], band: float, vocab_size: int,
                     rep: Reporter, workdir: Path) -> tuple[object, dict]:
    """Steps 2-3: train the BPE only on documents whose split key (>= `band`) keeps them out of val.

    The trainer runs in a child process that Ctrl-C kills at once (see `train_bpe_in_child`)."""
    from scalinglab.data.tokenizer import train_bpe_in_child

    t1 = time.perf_counter()
    idx = [i for i, u in enumerate(units) if u >= band] or [max(range(len(docs)), key=units.__getitem__)]
    texts, chars = [], 0
    for i in idx:
        if chars >= TOKENIZER_TRAIN_CHARS:
            break
        texts.append(docs[i].text)
        chars += len(docs[i].text)
    with rep.stage(f"training BPE tokenizer (vocab {vocab_size:,}) on {chars / 1e6:.1f} M characters"):
        tok = train_bpe_in_child(texts, vocab_size, workdir)
    tok_info = {"trained": True, "requested_vocab_size": vocab_size, "train_documents": len(texts),
                "train_chars": chars}
    rep.log(f"trained BPE tokenizer ({tok.get_vocab_size():,} tokens) on {len(texts):,} documents "
            f"in {time.perf_counter() - t1:.1f} s")
    return tok, tok_info


def _encode_corpus(tok, reader: _Reader, docs: list[Document], rep: Reporter, *, max_tokens: int | None,
                   eot: int, dtype: np.dtype) -> tuple[list[Document], list[np.ndarray], bool]:
    """Step 4: encode in source order, batch by batch, until the cap, reading more documents while still under it.

    Returns the kept documents (those read past the cap are not part of the corpus), their token sequences
    (end-of-document token appended, the last one cut to land on the cap) and whether that cut happened.
    """
    from scalinglab.data.tokenizer import ENCODE_BATCH_CHARS, iter_encoded

    t2 = time.perf_counter()
    seqs: list[np.ndarray] = []
    total = 0
    batch_chars = ENCODE_BATCH_CHARS_CAPPED if max_tokens else ENCODE_BATCH_CHARS
    pending = docs
    with rep.stage("encoding", max_tokens or reader.chars) as adv:
        while True:
            for arrays, chars in iter_encoded(tok, [d.text for d in pending], dtype, batch_chars):
                new = _with_eot(arrays, eot, dtype)
                seqs += new
                added = sum(map(len, new))
                adv(min(added, max_tokens - total) if max_tokens else chars)
                total += added
                if max_tokens and total >= max_tokens:
                    break
            if not max_tokens or total >= max_tokens or reader.exhausted:
                break
            chars_per_token = sum(len(d.text) for d in docs[: len(seqs)]) / max(total, 1)
            pending = reader.take((max_tokens - total) * chars_per_token * 1.2 + 65536)
            docs += pending
    docs = docs[: len(seqs)]
    seqs, truncated = _cut(seqs, max_tokens)
    if len(seqs) < 2:
        raise UserError(f"source {reader.source.spec} gives only one document"
                        f"{' within --max-tokens' if max_tokens else ''}; "
                        f"the train/val split is by document and needs at least 2")
    rep.log(f"encoded {len(seqs):,} documents into {sum(map(len, seqs)):,} tokens in {time.perf_counter() - t2:.1f} s")
    return docs, seqs, truncated


def _choose_val(seqs: list[np.ndarray], units: list[float], val_fraction: float, *, band: float, n_first: int,
                trained: bool) -> tuple[np.ndarray, int, int, int]:
    """Step 5: val is the smallest split keys first, skipping documents that would take it past twice its target.

    Returns (val mask, val target, val tokens, val documents that were in the tokenizer's training text).
    """
    n_kept = len(seqs)
    target = val_target(sum(map(len, seqs)), val_fraction)
    in_val = np.zeros(n_kept, dtype=bool)
    val_tokens = val_docs = val_seen = 0
    ceiling = 2 * target  # a document that would push val past twice its target is left in train
    order = sorted(range(n_kept), key=lambda i: (units[i], i))
    fallback = min(order, key=lambda i: len(seqs[i]))  # when every document is too big: the smallest one
    for i in order:
        if val_tokens >= target or val_docs == n_kept - 1:
            break
        if val_tokens + len(seqs[i]) > ceiling and not (val_docs == 0 and i == fallback):
            continue
        in_val[i] = True
        val_tokens += len(seqs[i])
        val_docs += 1
        val_seen += int(trained and units[i] >= band and i < n_first)
    if val_docs == 0:
        in_val[fallback] = True
        val_tokens, val_docs = len(seqs[fallback]), 1
        val_seen += int(trained and units[fallback] >= band and fallback < n_first)
    return in_val, target, val_tokens, val_seen


def _encode_eval_sets(tok, eval_readers: dict[str, _Reader], eval_docs: dict[str, list[Document]],
                      corpus_digests: set[bytes], rep: Reporter, *, cap: int, eot: int, dtype: np.dtype
                      ) -> tuple[dict[str, tuple[np.ndarray, str]], dict[str, dict]]:
    """Step 6: encode each extra eval set with the corpus tokenizer, minus documents also in the corpus, up to `cap`."""
    from scalinglab.data.tokenizer import encode_documents

    eval_arrays: dict[str, tuple[np.ndarray, str]] = {}
    eval_meta: dict[str, dict] = {}
    for name, r in eval_readers.items():
        got = eval_docs[name]
        kept_docs = [d for d in got if doc_digest(d.text) not in corpus_digests]
        dropped = len(got) - len(kept_docs)
        eseqs = _with_eot(encode_documents(tok, [d.text for d in kept_docs], dtype), eot, dtype)
        etotal = sum(map(len, eseqs))
        while etotal < cap and not r.exhausted:
            more = r.take((cap - etotal) * (r.chars / max(etotal, 1)) * 1.2 + 65536)
            fresh = [d for d in more if doc_digest(d.text) not in corpus_digests]
            dropped += len(more) - len(fresh)
            new = _with_eot(encode_documents(tok, [d.text for d in fresh], dtype), eot, dtype)
            kept_docs += fresh
            eseqs += new
            etotal += sum(map(len, new))
        eseqs, _ = _cut(eseqs, cap)
        if not eseqs:
            raise UserError(f"eval set {name}: source {r.source.spec} has no documents"
                            + (f" that are not already in the corpus ({dropped} duplicates dropped)" if dropped else ""))
        eval_arrays[name] = (_join(eseqs, dtype), r.source.spec)
        eval_meta[name] = {"documents": len(eseqs), "duplicates_dropped": dropped, "skipped_files": r.source.skipped}
        rep.log(f"eval set {name}: {len(eseqs):,} documents, {sum(map(len, eseqs)):,} tokens from {r.source.spec}")
    return eval_arrays, eval_meta


def _manifest_extra(src: Source, *, max_tokens: int | None, val_fraction: float, eval_max_tokens: int | None,
                    target: int, val_seen: int, tok_info: dict, eval_meta: dict, build: dict) -> dict:
    """The manifest's record of how the corpus was built (source, options, split rule, tokenizer, eval sets)."""
    return {
        "source_kind": src.kind,
        "text_field": src.text_field if src.kind in ("jsonl", "parquet", "folder", "hf") else None,
        "python": describe_python() if src.kind.startswith("stdlib") else None,
        "options": {"max_tokens": max_tokens, "val_fraction": val_fraction, "eval_max_tokens": eval_max_tokens},
        "split": {
            "unit": "document",
            "key": "first 8 bytes of sha256(document text) as a fraction in [0, 1)",
            "val_rule": f"smallest keys until val >= max(val_fraction*T, min({VAL_MIN_TOKENS}, "
                        f"{VAL_MIN_FRACTION}*T)) tokens, skipping documents that would pass twice that",
            "val_target_tokens": target,
            "val_documents_seen_by_tokenizer": val_seen,
        },
        "tokenizer_info": tok_info,
        "eval_set_info": eval_meta,
        "build": build,
    }


__all__ = ["FORMAT", "MANIFEST", "Reporter", "prepare_corpus", "val_target", "is_corpus_dir", "check_destination"]
