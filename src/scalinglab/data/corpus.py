"""A prepared corpus on disk: manifest (corpus.json) + one uint16/uint32 token file per split.

Layout of a corpus folder:
    corpus.json        manifest (format, source, documents, token counts, vocab, tokenizer hash, shards, checksums)
    tokenizer.json     the HF `tokenizers` BPE model that produced the tokens
    train.bin          training tokens, documents separated by the end-of-document token
    val.bin            held-out tokens (split by document hash, never inside a document)
    eval_<name>.bin    extra evaluation sets (other distributions, Fig. 8), same tokenizer

Token files are raw little-endian arrays read with `np.memmap`, so nothing is copied into RAM.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalinglab.errors import UserError
from scalinglab.io import atomic_write_json

MANIFEST = "corpus.json"
FORMAT = "scalinglab-corpus"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("train_tokens", "val_tokens", "vocab_size", "eot_token", "dtype", "shards")


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits, uint32 beyond 65,535."""
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.uint32)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_tokens(path: Path, tokens: np.ndarray, dtype: np.dtype) -> dict:
    """Write one token file (not atomic by itself: prepare builds the whole corpus in a temp folder)."""
    arr = np.ascontiguousarray(tokens, dtype=dtype)
    with open(path, "wb") as f:
        arr.tofile(f)
        f.flush()
        os.fsync(f.fileno())
    return {"file": path.name, "tokens": int(arr.size), "sha256": sha256_file(path)}


def write_corpus(
    out_dir: str | Path,
    train: np.ndarray,
    val: np.ndarray,
    vocab_size: int,
    eot_token: int,
    *,
    source: str,
    documents: dict[str, int],
    eval_sets: dict[str, tuple[np.ndarray, str]] | None = None,
    tokenizer_path: str | Path | None = None,
    extra: dict | None = None,
) -> Path:
    """Write token files and the manifest into `out_dir` (an existing, empty working folder)."""
    from scalinglab import __version__

    out = Path(out_dir)
    dtype = token_dtype(vocab_size)
    splits = {
        "train": write_tokens(out / "train.bin", train, dtype),
        "val": write_tokens(out / "val.bin", val, dtype),
    }
    evals = {}
    for name, (tokens, src) in (eval_sets or {}).items():
        info = write_tokens(out / f"eval_{name}.bin", tokens, dtype)
        evals[name] = {**info, "source": src}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source": source,
        "documents": documents,
        "train_tokens": splits["train"]["tokens"],
        "val_tokens": splits["val"]["tokens"],
        "vocab_size": int(vocab_size),
        "eot_token": int(eot_token),
        "dtype": dtype.name,
        "tokenizer": "tokenizer.json" if tokenizer_path else None,
        "tokenizer_sha256": sha256_file(Path(tokenizer_path)) if tokenizer_path else None,
        "shards": splits,
        "eval_sets": evals,
        "scalinglab_version": __version__,
        **(extra or {}),
    }
    atomic_write_json(out / MANIFEST, manifest)
    return out


@dataclass(frozen=True)
class Corpus:
    """Read side of a prepared corpus. `Corpus.open(dir)` raises UserError when `dir` is not one."""

    path: Path
    manifest: dict

    @classmethod
    def open(cls, path: str | Path) -> Corpus:
        p = Path(path)
        m = p / MANIFEST
        if not p.is_dir():
            raise UserError(f"corpus folder not found: {p}")
        if not m.is_file():
            raise UserError(f"{p} is not a scalinglab corpus (no {MANIFEST}); run `scalinglab corpus prepare`")
        try:
            manifest = json.loads(m.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{m} is not valid JSON: {e}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise UserError(f"{m} is not a scalinglab corpus manifest")
        missing = [k for k in REQUIRED_KEYS if k not in manifest]
        shards = manifest.get("shards")
        if not missing and not (isinstance(shards, dict) and {"train", "val"} <= set(shards)):
            missing = ["shards.train/val"]
        if missing:
            raise UserError(f"{m} is an incomplete corpus manifest (missing {', '.join(missing)})")
        return cls(p, manifest)

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["vocab_size"])

    @property
    def eot_token(self) -> int:
        return int(self.manifest["eot_token"])

    @property
    def train_tokens(self) -> int:
        return int(self.manifest["train_tokens"])

    @property
    def val_tokens(self) -> int:
        return int(self.manifest["val_tokens"])

    @property
    def eval_set_names(self) -> list[str]:
        return sorted(self.manifest.get("eval_sets", {}))

    @property
    def tokenizer_path(self) -> Path | None:
        name = self.manifest.get("tokenizer")
        return self.path / name if name else None

    def _token_files(self) -> dict[str, dict]:
        return {**self.manifest.get("shards", {}), **self.manifest.get("eval_sets", {})}

    def check(self, verify: bool = False) -> None:
        """UserError unless every token file exists with the size the manifest says (and, with verify, its sha256)."""
        itemsize = np.dtype(self.manifest["dtype"]).itemsize
        for split, info in self._token_files().items():
            f = self.path / info["file"]
            if not f.is_file():
                raise UserError(f"corpus {self.path} is missing its {split} token file {info['file']}")
            if f.stat().st_size != int(info["tokens"]) * itemsize:
                raise UserError(f"corpus {self.path}: {info['file']} has {f.stat().st_size} bytes, "
                                f"manifest says {info['tokens']} tokens of {itemsize} bytes")
            if verify and info.get("sha256") and sha256_file(f) != info["sha256"]:
                raise UserError(f"corpus {self.path}: {info['file']} does not match its sha256 checksum")
        tok = self.tokenizer_path
        if verify and tok is not None:
            if not tok.is_file():
                raise UserError(f"corpus {self.path} is missing its tokenizer {tok.name}")
            if self.manifest.get("tokenizer_sha256") and sha256_file(tok) != self.manifest["tokenizer_sha256"]:
                raise UserError(f"corpus {self.path}: {tok.name} does not match its sha256 checksum")

    def info(self) -> dict:
        """The summary `corpus info` prints: sizes, vocabulary, documents, eval sets, provenance."""
        m = self.manifest
        return {
            "path": str(self.path),
            "source": m.get("source"),
            "source_kind": m.get("source_kind"),
            "train_tokens": self.train_tokens,
            "val_tokens": self.val_tokens,
            "vocab_size": self.vocab_size,
            "eot_token": self.eot_token,
            "dtype": m.get("dtype"),
            "documents": m.get("documents"),
            "eval_sets": {name: {"tokens": int(e["tokens"]), "source": e.get("source"),
                                 "documents": (m.get("documents") or {}).get(name)}
                          for name, e in sorted(m.get("eval_sets", {}).items())},
            "tokenizer": m.get("tokenizer"),
            "tokenizer_sha256": m.get("tokenizer_sha256"),
            "scalinglab_version": m.get("scalinglab_version"),
        }

    def _memmap(self, info: dict) -> np.ndarray:
        f = self.path / info["file"]
        if not f.is_file():
            raise UserError(f"corpus {self.path} is missing its token file {info['file']}")
        n = int(info["tokens"])
        if n == 0:
            return np.zeros(0, dtype=np.dtype(self.manifest["dtype"]))
        return np.memmap(f, dtype=np.dtype(self.manifest["dtype"]), mode="r", shape=(n,))

    def tokens(self, split: str) -> np.ndarray:
        """1-D read-only memmap of a split: 'train', 'val', or the name of an extra eval set."""
        if split in self.manifest["shards"]:
            return self._memmap(self.manifest["shards"][split])
        if split in self.manifest.get("eval_sets", {}):
            return self._memmap(self.manifest["eval_sets"][split])
        raise UserError(f"corpus {self.path} has no split {split!r}; it has train, val and eval sets {self.eval_set_names}")
