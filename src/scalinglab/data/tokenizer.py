"""Byte-level BPE (HF `tokenizers`, GPT-2 style) with one end-of-document token.

Byte-level means every string is encodable (no unknown tokens), which matters for code and for users' text.
The end-of-document token is special: it is never produced by encoding text, even text that contains its
literal spelling, so the token stream's document boundaries are exactly the ones the pipeline put there.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from scalinglab.errors import UserError

EOT = "<|endoftext|>"
# Names other tokenizers use for their end-of-document token, tried in order when loading one.
EOT_CANDIDATES = (EOT, "</s>", "<eos>", "<|eot|>", "[SEP]", "<|end_of_text|>")
MIN_VOCAB = 257  # 256 byte tokens + the end-of-document token
ENCODE_BATCH_CHARS = 4 << 20  # encode ~4 MB of text per encode_batch call (bounded memory, steady progress)


def train_bpe(texts: Iterable[str], vocab_size: int, length: int | None = None):
    """Train a byte-level BPE of `vocab_size` tokens (including the end-of-document token) on `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < MIN_VOCAB:
        raise UserError(f"--vocab-size must be at least {MIN_VOCAB} (256 bytes + end-of-document), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer, length=length)
    tok.encode_special_tokens = True
    return tok


def train_bpe_in_child(texts: list[str], vocab_size: int, workdir: Path):
    """`train_bpe` in a child process, so Ctrl-C stops it at once (the child is killed).

    In this process a SIGINT would wait for the Rust trainer to return (Python acts on signals only between its
    own bytecodes): seconds on the stdlib, minutes on a large corpus. The texts go through a file in `workdir`
    (deleted afterwards); the child trains with the same library, texts and settings, so the result is the same.
    """
    from tokenizers import Tokenizer

    if not sys.executable:  # an embedded interpreter cannot start one: train here, not interruptible
        return train_bpe(texts, vocab_size, length=len(texts))
    data, out = workdir / ".bpe-train-texts", workdir / ".bpe-trained.json"
    part = out.with_name(out.name + ".part")  # the child writes here, then renames
    with open(data, "wb") as f:
        for t in texts:
            b = t.encode("utf-8", "surrogatepass")
            f.write(struct.pack("<Q", len(b)))
            f.write(b)
    cmd = [sys.executable, "-m", "scalinglab.data.tokenizer", str(data), str(vocab_size), str(out), str(os.getpid())]
    src = str(Path(__file__).resolve().parents[2])  # where this scalinglab is imported from, first on the child's path
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    proc = None
    try:
        with _sigint_held():  # a Ctrl-C while Popen waits for the exec would leave the child running
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    env=env)
        _, err = proc.communicate()  # a SIGINT interrupts this wait at once
        if proc.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"tokenizer training failed (exit {proc.returncode}): {lines[-1] if lines else ''}")
        tok = Tokenizer.from_file(str(out))
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in (data, part, out):
            f.unlink(missing_ok=True)
    tok.encode_special_tokens = True
    return tok


@contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold a SIGINT that arrives inside the block and pass it to the usual handler when the block ends."""
    import signal

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) in (
            signal.SIG_IGN, None):
        yield  # handlers run in the main thread only; an ignored SIGINT stays ignored (in the child too)
        return
    got: list = []
    old = signal.signal(signal.SIGINT, lambda *sig: got.append(sig))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if got and callable(old):
            old(*got[0])


def _read_texts(path: Path) -> Iterator[str]:
    with open(path, "rb") as f:
        while head := f.read(8):
            yield f.read(struct.unpack("<Q", head)[0]).decode("utf-8", "surrogatepass")


def _exit_when_orphaned(parent: int) -> None:
    """Stop training when the process that wants it is gone (killed with SIGKILL, say): no orphan burns CPU."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _child_main(argv: list[str]) -> None:
    """`python -m scalinglab.data.tokenizer TEXTS VOCAB OUT PARENT_PID`: the child of `train_bpe_in_child`."""
    import signal

    data, vocab, out, parent = argv
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not inherited as ignored, as in a
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # background job: a terminal's Ctrl-C ends it quietly
    _exit_when_orphaned(int(parent))
    n = 0
    with open(data, "rb") as f:
        while head := f.read(8):
            f.seek(struct.unpack("<Q", head)[0], os.SEEK_CUR)
            n += 1
    tok = train_bpe(_read_texts(Path(data)), int(vocab), length=n)
    part = Path(out).with_name(Path(out).name + ".part")
    tok.save(str(part))
    os.replace(part, out)


def load_tokenizer(path: str | Path):
    """Load a tokenizer.json; UserError if it is unreadable or has no end-of-document token."""
    from tokenizers import Tokenizer

    p = Path(path)
    if not p.is_file():
        raise UserError(f"tokenizer file not found: {p}")
    try:
        tok = Tokenizer.from_file(str(p))
    except Exception as e:  # tokenizers raises a generic Exception on bad JSON / unknown model
        raise UserError(f"{p} is not a Hugging Face tokenizer.json: {str(e).splitlines()[0]}") from None
    eot_id(tok, p)  # validate now, before any work
    tok.encode_special_tokens = True
    return tok


def eot_id(tok, where: str | Path = "tokenizer") -> int:
    for name in EOT_CANDIDATES:
        i = tok.token_to_id(name)
        if i is not None:
            return int(i)
    raise UserError(f"{where} has no end-of-document token (looked for {', '.join(EOT_CANDIDATES)})")


def vocab_size(tok) -> int:
    """Number of ids the model must embed: one past the largest id (added tokens included)."""
    return max(tok.get_vocab(with_added_tokens=True).values()) + 1


def tokenizer_json(tok) -> str:
    return tok.to_str()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _batches(texts: list[str], max_chars: int) -> Iterator[list[str]]:
    batch, size = [], 0
    for t in texts:
        batch.append(t)
        size += len(t)
        if size >= max_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def iter_encoded(tok, texts: list[str], dtype: np.dtype, batch_chars: int = ENCODE_BATCH_CHARS
                 ) -> Iterator[tuple[list[np.ndarray], int]]:
    """Token ids of each text (no EOT), one batch at a time as (arrays, characters in the batch).

    Uses the multi-threaded `encode_batch_fast` (no offsets computed) where this `tokenizers` has it.
    """
    encode = getattr(tok, "encode_batch_fast", None) or tok.encode_batch
    for batch in _batches(texts, batch_chars):
        encs = encode(batch, add_special_tokens=False)
        yield [np.array(e.ids, dtype=dtype) for e in encs], sum(map(len, batch))


def encode_documents(tok, texts: list[str], dtype: np.dtype) -> list[np.ndarray]:
    """Token ids of every text (no EOT)."""
    return [a for arrays, _ in iter_encoded(tok, texts, dtype) for a in arrays]


if __name__ == "__main__":
    _child_main(sys.argv[1:])
