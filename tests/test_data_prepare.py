"""`scalinglab corpus prepare|info` through the real entry point: every source kind, exact token counts
against an independent re-encoding with the saved tokenizer.json, a deterministic split, and clean failures
that leave existing folders byte-for-byte untouched."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import (
    Output,
    assert_clean_error,
    children,
    cmdline,
    freeze,
    ignores_sigint,
    proc_state,
    run_cli,
    run_main,
    start,
    wait_until,
)


def make_texts(n: int, seed: int, words_per_doc: tuple[int, int] = (40, 400)) -> list[str]:
    """Deterministic pseudo-English documents (a Zipf-ish vocabulary of made-up words)."""
    rng = np.random.default_rng(seed)
    syll = ["ka", "lo", "mi", "ter", "an", "sul", "pe", "ri", "don", "va", "que", "ist", "or", "be", "zu"]
    vocab = ["".join(rng.choice(syll, size=rng.integers(1, 4))) for _ in range(300)]
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    docs = []
    for _ in range(n):
        k = int(rng.integers(*words_per_doc))
        words = rng.choice(vocab, size=k, p=p)
        lines = [" ".join(words[i : i + 12]) + "." for i in range(0, k, 12)]
        docs.append("\n".join(lines) + "\n")
    return docs


def prepare(*args, check=True):
    proc = run_main("corpus", "prepare", "--quiet", "--json", *map(str, args))
    if check:
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)
    return proc


def info(path: Path) -> dict:
    proc = run_main("corpus", "info", str(path), "--json", "--verify")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def load_tok(corpus: Path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(corpus / "tokenizer.json"))
    tok.encode_special_tokens = True
    return tok


def expected_stream(corpus: Path, texts: list[str], max_tokens: int | None = None) -> list[np.ndarray]:
    """Independent count: each document re-encoded with the saved tokenizer, plus its end-of-document token."""
    tok = load_tok(corpus)
    eot = json.loads((corpus / "corpus.json").read_text())["eot_token"]
    seqs, total = [], 0
    for t in texts:
        s = np.array(tok.encode(t, add_special_tokens=False).ids + [eot])
        if max_tokens is not None and total + len(s) >= max_tokens:
            seqs.append(s[: max_tokens - total])
            break
        seqs.append(s)
        total += len(s)
    return seqs


def split_tokens(corpus: Path, split: str) -> np.ndarray:
    m = json.loads((corpus / "corpus.json").read_text())
    entry = m["shards"].get(split) or m["eval_sets"][split]
    return np.fromfile(corpus / entry["file"], dtype=m["dtype"])


def assert_same_tokens(corpus: Path, seqs: list[np.ndarray], splits=("train", "val")) -> None:
    """The corpus's splits hold exactly the expected documents' tokens (same count, same histogram)."""
    got = np.concatenate([split_tokens(corpus, s) for s in splits])
    want = np.concatenate(seqs)
    assert len(got) == len(want)
    v = max(int(got.max()), int(want.max())) + 1
    assert np.array_equal(np.bincount(got, minlength=v), np.bincount(want, minlength=v))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def stdlib_docs(tests: bool) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("site-packages", "dist-packages", "__pycache__")]
        dirs = set(Path(dirpath).relative_to(root).parts)
        if bool(dirs & {"test", "tests", "idle_test"}) == tests:
            paths += [Path(dirpath) / f for f in filenames if f.endswith(".py")]
    out = []
    for p in sorted(paths, key=lambda p: p.relative_to(root).as_posix()):
        try:
            text = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            continue
        if "\x00" not in text[:8192] and text.strip():
            out.append(text.removeprefix("\ufeff"))
    return out


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory) -> tuple[Path, list[str]]:
    """A folder of .txt/.md files in nested folders, plus a binary file and a hidden file to skip."""
    root = tmp_path_factory.mktemp("texts")
    texts = make_texts(40, seed=1)
    names = []
    for i, t in enumerate(texts):
        sub = root / f"part{i % 3}"
        sub.mkdir(exist_ok=True)
        p = sub / f"doc{i:03d}.{'md' if i % 5 == 0 else 'txt'}"
        p.write_text(t, encoding="utf-8")
        names.append(p.relative_to(root).as_posix())
    (root / "part0" / "image.bin").write_bytes(bytes(range(256)) * 10)
    (root / ".hidden.txt").write_text("never read\n")
    order = sorted(range(len(texts)), key=lambda i: names[i])
    return root, [texts[i] for i in order]


@pytest.mark.slow
def test_stdlib_corpus_counts_and_held_out_tests(tmp_path):
    out = tmp_path / "c"
    res = prepare("--source", "stdlib", "--out", out, "--vocab-size", 400, "--max-tokens", 60_000,
                  "--eval-max-tokens", 4000)
    got = info(out)
    assert got["train_tokens"] + got["val_tokens"] == 60_000
    assert res["train_tokens"] == got["train_tokens"] and res["val_tokens"] == got["val_tokens"]
    assert 6000 <= got["val_tokens"] <= 12_000  # at least min(50k, 10% of 60k), at most twice that
    assert got["vocab_size"] == 400 and got["dtype"] == "uint16" and got["eot_token"] == 0
    assert list(got["eval_sets"]) == ["stdlib-tests"]
    assert got["eval_sets"]["stdlib-tests"]["tokens"] == 4000
    # Independent count: the sorted non-test stdlib files, re-encoded, cut at 60,000 tokens.
    seqs = expected_stream(out, stdlib_docs(tests=False), 60_000)
    assert got["documents"]["train"] + got["documents"]["val"] == len(seqs)
    assert_same_tokens(out, seqs)
    # The eval set is the stdlib's test suites, which never enter train/val.
    assert_same_tokens(out, expected_stream(out, stdlib_docs(tests=True), 4000), splits=("stdlib-tests",))


def test_folder_of_text_files(tmp_path, text_folder):
    root, texts = text_folder
    out = tmp_path / "c"
    prepare("--source", root, "--out", out, "--vocab-size", 320)
    got = info(out)
    seqs = expected_stream(out, texts)
    assert got["documents"] == {"train": got["documents"]["train"], "val": got["documents"]["val"]}
    assert got["documents"]["train"] + got["documents"]["val"] == 40
    assert got["documents"]["val"] >= 1
    assert got["train_tokens"] + got["val_tokens"] == sum(map(len, seqs))
    total = sum(map(len, seqs))
    assert 0.1 * total <= got["val_tokens"] <= 0.2 * total + 1  # tiny corpus: 10% held out, at most twice
    assert got["vocab_size"] == 320
    assert_same_tokens(out, seqs)
    # Documents are never cut: val is a concatenation of whole documents, each ending with EOT.
    val = split_tokens(out, "val")
    assert val[-1] == got["eot_token"] and (val == got["eot_token"]).sum() == got["documents"]["val"]


def test_one_huge_document_never_swallows_val(tmp_path):
    texts = make_texts(30, seed=5, words_per_doc=(50, 80)) + make_texts(1, seed=6, words_per_doc=(3000, 3001))
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out = tmp_path / "c"
    got = prepare("--source", src, "--out", out, "--vocab-size", 300)
    total = got["train_tokens"] + got["val_tokens"]
    assert 0.1 * total <= got["val_tokens"] <= 0.2 * total + 1
    assert got["documents"] == {"train": 31 - got["documents"]["val"], "val": got["documents"]["val"]}


def test_single_text_file_splits_into_paragraphs(tmp_path):
    texts = make_texts(20, seed=7, words_per_doc=(20, 60))
    src = tmp_path / "book.txt"
    src.write_text("\ufeff" + "\n\n \n".join(texts))  # BOM, blank lines with spaces between paragraphs
    out = tmp_path / "c"
    got = prepare("--source", src, "--out", out, "--vocab-size", 300)
    assert got["documents"]["train"] + got["documents"]["val"] == 20
    assert_same_tokens(out, expected_stream(out, texts))


def test_split_is_deterministic(tmp_path, text_folder):
    """Two prepares (CLI, and the library with a progress bar and one worker) give identical files."""
    import io

    from scalinglab.data.prepare import Reporter, prepare_corpus

    root, _ = text_folder
    a, b = tmp_path / "a", tmp_path / "b"
    prepare("--source", root, "--out", a, "--vocab-size", 320)
    bar = io.StringIO()
    prepare_corpus(str(root), b, vocab_size=320, workers=1, reporter=Reporter(bar=True, stream=bar))
    assert "corpus: wrote" in bar.getvalue()
    for f in ("train.bin", "val.bin", "tokenizer.json"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert info(a)["tokenizer_sha256"] == info(b)["tokenizer_sha256"]


def test_jsonl_with_text_field_and_loaded_tokenizer(tmp_path, text_folder):
    texts = make_texts(30, seed=2)
    src = tmp_path / "d.jsonl"
    lines = []
    for i, t in enumerate(texts):
        lines.append(json.dumps({"id": i, "body": t, "meta": {"n": i}}))
        if i == 3:
            lines.append("")  # blank lines are allowed
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "c"
    prepare("--source", src, "--out", out, "--text-field", "body", "--vocab-size", 300)
    got = info(out)
    seqs = expected_stream(out, texts)
    assert got["documents"]["train"] + got["documents"]["val"] == 30
    assert got["train_tokens"] + got["val_tokens"] == sum(map(len, seqs))
    assert_same_tokens(out, seqs)
    # --tokenizer reuses an existing tokenizer.json (copied byte for byte), no training.
    out2 = tmp_path / "c2"
    prepare("--source", src, "--out", out2, "--text-field", "body", "--tokenizer", out / "tokenizer.json",
            "--eval-set", f"folder={text_folder[0]}")
    got2 = info(out2)
    assert got2["tokenizer_sha256"] == got["tokenizer_sha256"] and got2["vocab_size"] == 300
    assert (out / "train.bin").read_bytes() == (out2 / "train.bin").read_bytes()
    assert got2["eval_sets"]["folder"]["tokens"] == 50_000 or got2["eval_sets"]["folder"]["documents"] == 40


def test_parquet_source(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = make_texts(25, seed=3)
    src = tmp_path / "d.parquet"
    pq.write_table(pa.table({"content": texts + [None], "n": list(range(26))}), src, row_group_size=7)
    out = tmp_path / "c"
    prepare("--source", src, "--out", out, "--text-field", "content", "--vocab-size", 300, "--max-tokens", 5000)
    got = info(out)
    seqs = expected_stream(out, texts, 5000)
    assert got["train_tokens"] + got["val_tokens"] == 5000 == sum(map(len, seqs))
    assert_same_tokens(out, seqs)


def test_overwrite_replaces_a_corpus_atomically(tmp_path, text_folder):
    root, _ = text_folder
    out = tmp_path / "c"
    prepare("--source", root, "--out", out, "--vocab-size", 300)
    before = snapshot(out)
    proc = prepare("--source", root, "--out", out, "--vocab-size", 320, check=False)
    assert_clean_error(proc, "already holds a corpus", "--overwrite")
    assert snapshot(out) == before
    # A killed prepare leaves only its hidden temp folder; the next prepare removes it once its PID is gone.
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".c.tmp-{int(dead.stdout)}-dead"
    stale.mkdir()
    (stale / "train.bin").write_bytes(b"half")
    prepare("--source", root, "--out", out, "--vocab-size", 320, "--overwrite")
    assert info(out)["vocab_size"] == 320
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temp or old folders left behind


def test_bad_inputs_exit_2_and_leave_folders_untouched(tmp_path, text_folder):
    root, _ = text_folder
    corpus = tmp_path / "corpus"
    prepare("--source", root, "--out", corpus, "--vocab-size", 300)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine\n")
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "a b c"}\n{"text": "d e f"}\n{"text": oops}\n')
    no_field = tmp_path / "nofield.jsonl"
    no_field.write_text('{"text": "a b c"}\n{"body": "d e f"}\n')
    empty_dir = tmp_path / "emptysrc"
    empty_dir.mkdir()
    empty_file = tmp_path / "empty.txt"
    empty_file.write_text("")
    blank_file = tmp_path / "blank.jsonl"
    blank_file.write_text("\n\n")
    one_doc = tmp_path / "one.txt"
    one_doc.write_text("just one document\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq_file = tmp_path / "x.parquet"
    pq.write_table(pa.table({"body": ["a", "b"]}), pq_file)
    snaps = {corpus: snapshot(corpus), other: snapshot(other)}
    listing = sorted(p.name for p in tmp_path.iterdir())

    cases = [
        (["--source", tmp_path / "missing", "--out", corpus, "--overwrite"], ["not found"]),
        (["--source", empty_dir, "--out", corpus, "--overwrite"], ["empty"]),
        (["--source", empty_file, "--out", corpus, "--overwrite"], ["empty"]),
        (["--source", blank_file, "--out", corpus, "--overwrite"], ["no documents"]),
        (["--source", one_doc, "--out", corpus, "--overwrite"], ["at least 2"]),
        (["--source", bad_json, "--out", corpus, "--overwrite"], ["line 3", "not valid JSON"]),
        (["--source", no_field, "--out", corpus, "--overwrite"], ["line 2", "'text'"]),
        (["--source", pq_file, "--out", corpus, "--overwrite"], ["no column 'text'"]),
        (["--source", root, "--out", other], ["not a scalinglab corpus"]),
        (["--source", root, "--out", other / "keep.txt"], ["not a folder"]),
        (["--source", root, "--out", corpus, "--overwrite", "--vocab-size", 100], ["vocab-size"]),
        (["--source", root, "--out", corpus, "--overwrite", "--val-fraction", 0.9], ["val-fraction"]),
        (["--source", root, "--out", corpus, "--overwrite", "--eval-set", "nosign"], ["NAME=SOURCE"]),
        (["--source", root, "--out", corpus, "--overwrite", "--eval-set", f"x={bad_json}"], ["line 3"]),
        (["--source", root, "--out", corpus, "--overwrite", "--tokenizer", one_doc], ["tokenizer"]),
        (["--source", root, "--out", root / "inside"], ["inside the source"]),
        (["--source", "hf:some/dataset", "--out", corpus, "--overwrite"], ["hf:some/dataset"]),
    ]
    for args, needles in cases:
        proc = prepare(*args, check=False)
        assert_clean_error(proc, *needles)
    for folder, snap in snaps.items():
        assert snapshot(folder) == snap, folder
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no temp folders left behind
    assert not (root / "inside").exists()


def test_info_rejects_non_corpus_and_damaged_corpus(tmp_path, text_folder):
    assert_clean_error(run_main("corpus", "info", str(tmp_path / "nope")), "not found")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert_clean_error(run_main("corpus", "info", str(plain)), "not a scalinglab corpus")
    (plain / "corpus.json").write_text("{not json")
    assert_clean_error(run_main("corpus", "info", str(plain)), "not valid JSON")
    (plain / "corpus.json").write_text(json.dumps({"format": "scalinglab-corpus"}))
    assert_clean_error(run_main("corpus", "info", str(plain)), "incomplete")
    out = tmp_path / "c"
    prepare("--source", text_folder[0], "--out", out, "--vocab-size", 300)
    val = out / "val.bin"
    val.write_bytes(val.read_bytes()[:-2])
    assert_clean_error(run_main("corpus", "info", str(out)), "val.bin")
    text = run_main("corpus", "info", str(tmp_path / "c"))
    assert text.returncode == 2


def test_hf_source_uses_the_local_cache_only(tmp_path, text_folder):
    """A stand-in `datasets` module: not cached → exit 2 naming it; cached → documents in order."""
    fake = tmp_path / "fake"
    (fake / "datasets").mkdir(parents=True)
    texts = make_texts(12, seed=4)
    (fake / "texts.json").write_text(json.dumps(texts))
    (fake / "datasets" / "__init__.py").write_text(
        "import json, os, pathlib\n"
        "TEXTS = json.loads((pathlib.Path(__file__).parent.parent / 'texts.json').read_text())\n"
        "class Dataset:\n"
        "    column_names = ['text']\n"
        "    def select_columns(self, cols):\n"
        "        return [{'text': t} for t in TEXTS]\n"
        "def load_dataset(name, split):\n"
        "    assert os.environ['HF_DATASETS_OFFLINE'] == '1'\n"
        "    if name != 'cached/set':\n"
        "        raise FileNotFoundError(f\"Couldn't find cache for {name}\")\n"
        "    return Dataset()\n"
    )
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")]))}  # + the code tested
    proc = run_cli("corpus", "prepare", "--source", "hf:other/set", "--out", tmp_path / "x", env=env)
    assert_clean_error(proc, "hf:other/set", "local Hugging Face cache")
    out = tmp_path / "c"
    proc = run_cli("corpus", "prepare", "--quiet", "--source", "hf:cached/set", "--out", out, "--vocab-size", 300,
                   env=env)
    assert proc.returncode == 0, proc.stderr
    seqs = expected_stream(out, texts)
    assert_same_tokens(out, seqs)


def test_the_trainer_process_gives_the_tokenizer_training_here_gives(tmp_path):
    """The BPE is trained in a child process (so Ctrl-C can stop it): the same tokenizer, and its files removed."""
    from scalinglab.data.tokenizer import train_bpe, train_bpe_in_child

    texts = make_texts(30, seed=4) + ["caf\u00e9 \u2603 \U0001f600\n", "x" * 5000]
    child = train_bpe_in_child(texts, 320, tmp_path)
    assert child.to_str() == train_bpe(texts, 320).to_str()
    assert child.encode_special_tokens and list(tmp_path.iterdir()) == []


# stage: (the line `corpus prepare` logs as it enters the stage, the line it logs when the stage is done, the
# next stage's line). A SIGINT taken in the stage may still let its last line out (Python raises the
# KeyboardInterrupt after the call it is in: that print), never the next stage's.
STAGES = {
    "training the tokenizer": ("corpus: training BPE tokenizer", "corpus: trained BPE tokenizer", "corpus: encoding ..."),
    "encoding": ("corpus: encoding ...", "corpus: encoded ", "corpus: eval set "),
}
TRAINER = "scalinglab.data.tokenizer"  # the command line of the tokenizer trainer's child process


def _frozen_in(stage: str, proc: subprocess.Popen, err: Output) -> int | None:
    """Freeze the prepare inside `stage`, known for sure: the pid frozen, or None if the stage ended first.

    Training: the trainer process is frozen, so the prepare cannot leave the stage. Other stages: the prepare
    itself, and its log (complete once it is stopped) must not have the stage's end line."""
    enter, done, _ = STAGES[stage]
    err.wait_for(enter, 300, proc)
    assert not ignores_sigint(proc.pid), "precondition not reached: the prepare ignores SIGINT"
    if stage == "training the tokenizer":
        trainer = wait_until("the trainer process started", lambda: next(
            (c for c in children(proc.pid) if TRAINER in cmdline(c)), None), 120, alive=proc, every=0.002)
        return trainer if freeze(trainer) else None
    if freeze(proc.pid) and done not in err.drain():
        return proc.pid
    os.kill(proc.pid, signal.SIGCONT)
    return None


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_ctrl_c_in_each_stage_stops_the_prepare_and_leaves_the_old_corpus(tmp_path, text_folder, stage):
    """A SIGINT landing in each stage exits 130 before the next stage; DIR keeps the old corpus and no
    temp folder is left. The signal lands at a known point: the command is frozen inside the stage while
    the test checks so (a stage it leaves before being frozen is tried again, up to 3 times, then the test
    fails). During training the trainer stays frozen: the prepare must end by killing it, not wait for it
    (a SIGINT in the Rust trainer used to be held until the training was done)."""
    out = tmp_path / "c"
    prepare("--source", text_folder[0], "--out", out, "--vocab-size", 300)
    before = snapshot(out)
    tok = [] if stage == "training the tokenizer" else ["--tokenizer", str(text_folder[0].parent / "tok300.json")]
    if tok:  # skip the training (and keep the run short): load a tokenizer
        shutil.copyfile(out / "tokenizer.json", tok[1])
    cmd = [sys.executable, "-m", "scalinglab", "corpus", "prepare", "--source", "stdlib", "--out", str(out),
           "--overwrite", "--vocab-size", "4096", *tok]
    for _attempt in range(3):
        proc = start(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        err, frozen = Output(proc.stderr), None
        try:
            frozen = _frozen_in(stage, proc, err)
            if frozen is not None:
                proc.send_signal(signal.SIGINT)
                if frozen == proc.pid:
                    os.kill(proc.pid, signal.SIGCONT)
            rc = proc.wait(timeout=300)
        finally:
            for pid in {proc.pid, frozen} - {None}:
                if proc_state(pid) not in (None, "Z"):  # a failed check: end what this test started
                    os.kill(pid, signal.SIGKILL)
                    os.kill(pid, signal.SIGCONT)
            proc.wait()
        if frozen is not None:
            break
        assert rc == 0, err.rest(30)
    else:
        pytest.fail(f"precondition not reached: the prepare left the {stage} stage before it could be frozen, "
                    f"3 times")
    text = err.rest(30)
    assert rc == 130, text
    assert STAGES[stage][2] not in text and text.rstrip().endswith("interrupted"), text
    if frozen != proc.pid:  # the trainer is still frozen: the prepare ended without waiting for it, and killed it
        assert STAGES[stage][1] not in text and proc_state(frozen) is None, text
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def _interrupt_after(monkeypatch, out: Path, where: str) -> None:
    """Raise KeyboardInterrupt just after one step of writing or installing, as a SIGINT landing there would."""
    real_mkdir, real_rename = Path.mkdir, os.rename

    def mkdir(self, *args, **kwargs):
        real_mkdir(self, *args, **kwargs)
        if where == "temp folder made" and self.name.startswith(f".{out.name}.tmp-"):
            raise KeyboardInterrupt

    def rename(src, dst):
        real_rename(src, dst)
        if (where == "old corpus moved aside" and Path(src) == out) or (
                where == "new corpus moved in" and Path(dst) == out):
            raise KeyboardInterrupt

    def write_tokens(path, *args, **kwargs):
        written = real_write_tokens(path, *args, **kwargs)
        if where == "token files half written" and path.name == "train.bin":
            raise KeyboardInterrupt
        return written

    from scalinglab.data import corpus

    real_write_tokens = corpus.write_tokens
    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(corpus, "write_tokens", write_tokens)


@pytest.mark.parametrize("where", ["temp folder made", "token files half written", "old corpus moved aside",
                                   "new corpus moved in"])
def test_an_interrupt_at_any_step_of_the_install_leaves_one_whole_corpus(tmp_path, text_folder, monkeypatch, where):
    """The windows a SIGINT can hit (a loaded machine deschedules the process right after a syscall): DIR is the
    old corpus or, once the new one is in place, the new one; never missing, and no temp or old folder beside it."""
    out = tmp_path / "c"
    prepare("--source", text_folder[0], "--out", out, "--vocab-size", 300)
    before = snapshot(out)
    _interrupt_after(monkeypatch, out, where)
    proc = prepare("--source", text_folder[0], "--out", out, "--overwrite", "--vocab-size", 280, check=False)
    monkeypatch.undo()
    assert proc.returncode == 130, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    assert (snapshot(out) == before) == (where != "new corpus moved in")
    assert info(out)["vocab_size"] == (280 if where == "new corpus moved in" else 300)
