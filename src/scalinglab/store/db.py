"""The SQLite results store: every run, every learning-curve point, every fitted law.

One file, standard-library `sqlite3`, WAL mode (readers never block the writer and never see half a
transaction), foreign keys on, schema versioned by `PRAGMA user_version` with forward-only migrations.

Tables
    runs       one row per run id: plan, family tag, config JSON, status (queued/running/done/diverged/failed/
               pruned: stopped by a sweep because its forecast lost to another candidate, `sweep/prune.py`),
               timings, host, threads, final metrics (flat columns + the full result JSON)
    evals      one row per learning-curve point (run_id, step): tokens, FLOPs, losses, noise scale, extra evals
    plan_runs  which plans contain which runs (a run may be shared by several plans)
    events     append-only log of every status change (so a retried run keeps its earlier failure)
    fits       append-only log of fitted laws (law name + the fit's JSON)

Only one process writes (the sweep driver, or `train --db`); each write is one `BEGIN IMMEDIATE`
transaction. Nothing is ever deleted: a rerun updates a run's row in place and appends events (the one exception:
a command run restarted from scratch replaces its curve, `record_points` and `record_result(replace_curve=True)`).

Run ids (`run_id_for`): the first 16 hex digits of sha256 over the canonical JSON (sorted keys) of the
resolved TrainConfig, where
  * the model shape is resolved (d_ff, d_attn, n_heads filled in), so writing a default explicitly
    or leaving it out gives the same id;
  * `corpus` is replaced by the corpus's content fingerprint (sha256 of its manifest's token-file
    checksums, vocabulary and dtype), so moving or copying the corpus or the plan does not orphan runs,
    while re-preparing different data at the same path makes new runs. A path that is not a readable
    corpus falls back to its absolute path;
  * `threads` and `device` are left out: they say where a run executes, not what it computes. The
    thread count does change the last bits of the floating-point result, so it is recorded per run
    (column `threads`) and a run resumed from its checkpoint keeps the thread count it started with:
    a run's result is a function of (config, threads), and rerunning a sweep with another --workers
    does not redo finished runs;
  * `compile` is left out for the same reason (a compiled model computes the same function, up to the
    order of float sums; a run may resume with or without compiling), while `precision` is part of the
    id unless it is "auto" (left out at its default, so ids issued before the field existed still hold).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from scalinglab.errors import UserError
from scalinglab.io import json_safe

STATUSES = ("queued", "running", "done", "diverged", "failed", "pruned")
FINISHED = ("done", "diverged")  # deterministic outcomes: a rerun skips them
PRUNED = "pruned"  # stopped early by a sweep (`sweep/prune.py`): a rerun skips it unless asked to retry it
RUN_ID_LEN = 16
ID_EXCLUDED = ("threads", "device", "micro_batch_size", "nproc_per_node", "compile")  # execution settings, not part of what a run computes

# Fields added after run ids were first issued: left out of the id while unset, so older runs keep their ids.
ID_OMITTED_WHEN_NONE = ("decay_fraction",)
# Fields added later still that have a default other than None: left out of the id at that default.
ID_OMITTED_AT_DEFAULT = {"precision": "auto"}

# Final metrics kept as typed columns of `runs` (everything else stays in the `result` JSON).
RUN_METRICS: dict[str, str] = {
    "steps": "INTEGER",
    "tokens": "INTEGER",
    "examples": "INTEGER",
    "n_params": "INTEGER",
    "n_params_with_embeddings": "INTEGER",
    "n_embedding": "INTEGER",
    "flops": "REAL",
    "flops_no_context": "REAL",
    "pf_days": "REAL",
    "val_loss": "REAL",
    "best_val_loss": "REAL",
    "best_step": "INTEGER",
    "train_loss": "REAL",
    "noise_scale": "REAL",
    "noise_scale_seqs": "REAL",
    "tokens_per_s": "REAL",
    "lr": "REAL",
    "epochs": "REAL",
    "device": "TEXT",
    "dtype": "TEXT",
}
RUN_JSON_METRICS = ("eval_losses", "val_loss_per_position")

EVAL_COLUMNS: dict[str, str] = {
    "tokens": "INTEGER",
    "examples": "INTEGER",
    "flops": "REAL",
    "flops_no_context": "REAL",
    "pf_days": "REAL",
    "wall_s": "REAL",
    "tokens_per_s": "REAL",
    "lr": "REAL",
    "train_loss": "REAL",
    "val_loss": "REAL",
    "noise_scale": "REAL",
    "noise_scale_seqs": "REAL",
    "epochs": "REAL",
}


def _columns(spec: Mapping[str, str]) -> str:
    return ",\n    ".join(f"{k} {t}" for k, t in spec.items())


# Each entry migrates the schema from version i to i+1; never edit one that has shipped, append.
MIGRATIONS: list[str] = [
    f"""
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    plan TEXT,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'diverged', 'failed')),
    reason TEXT,
    host TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    wall_s REAL,
    threads INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    config TEXT NOT NULL,
    result TEXT,
    {_columns(RUN_METRICS)},
    eval_losses TEXT,
    val_loss_per_position TEXT
);
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_plan ON runs(plan);
CREATE TABLE evals (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    step INTEGER NOT NULL,
    {_columns(EVAL_COLUMNS)},
    eval_losses TEXT,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE plan_runs (
    plan TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    added_at TEXT NOT NULL,
    PRIMARY KEY (plan, run_id)
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    at TEXT NOT NULL,
    status TEXT NOT NULL,
    host TEXT,
    detail TEXT
);
CREATE INDEX events_run ON events(run_id);
CREATE TABLE fits (
    fit_id INTEGER PRIMARY KEY AUTOINCREMENT,
    law TEXT NOT NULL,
    created_at TEXT NOT NULL,
    fit TEXT NOT NULL
);
""",
    # 2: the family a plan tags its runs with ("main", "batch-scan", ...); NULL for runs stored before
    # (they get a family from store.families.infer_families when read)
    """
ALTER TABLE runs ADD COLUMN family TEXT;
CREATE INDEX runs_family ON runs(family);
""",
    # 3: status 'pruned'. SQLite cannot alter a CHECK constraint, so the runs table is rebuilt (SQLite's
    # documented procedure: new table, copy, drop, rename, indexes), with foreign keys off (REBUILDS)
    f"""
CREATE TABLE runs_v3 (
    run_id TEXT PRIMARY KEY,
    plan TEXT,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'diverged', 'failed', 'pruned')),
    reason TEXT,
    host TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    wall_s REAL,
    threads INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    config TEXT NOT NULL,
    result TEXT,
    {_columns(RUN_METRICS)},
    eval_losses TEXT,
    val_loss_per_position TEXT,
    family TEXT
);
INSERT INTO runs_v3 SELECT * FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v3 RENAME TO runs;
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_plan ON runs(plan);
CREATE INDEX runs_family ON runs(family)
""",
]
SCHEMA_VERSION = len(MIGRATIONS)
REBUILDS = {2}  # migrations (by index) that rebuild a table that others reference: run with foreign keys off

DbLike = str | os.PathLike | sqlite3.Connection


def now() -> str:
    """UTC timestamp, ISO 8601 with seconds (sortable as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def hostname() -> str:
    return socket.gethostname()


# --------------------------------------------------------------------------------------------------
# connections, transactions, migrations


def connect(db_path: str | os.PathLike, create: bool = True) -> sqlite3.Connection:
    """Open (and with `create`, make) the store: WAL, foreign keys, migrations applied.

    With `create=False` a missing file is a UserError and nothing is created.
    """
    p = Path(db_path)
    if p.is_dir():
        raise UserError(f"results DB {p} is a folder, not a SQLite file")
    if not create and not p.is_file():
        raise UserError(f"results DB not found: {p}")
    if create:
        p.parent.mkdir(parents=True, exist_ok=True)
    uri = f"file:{p.resolve().as_posix()}?mode={'rwc' if create else 'rw'}"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=60.0)
    except sqlite3.Error as e:
        raise UserError(f"cannot open results DB {p}: {e}") from None
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 60000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # pragma: no cover - e.g. a network filesystem
            raise UserError(f"results DB {p}: cannot switch to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn, str(p), apply=create)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise UserError(f"{p} is not a scalinglab results DB: {e}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection, name: str = "results DB", apply: bool = True) -> int:
    """Bring the schema to SCHEMA_VERSION, one transaction per step; returns the final version.

    The version is read inside each write transaction, so two processes opening a new store at once
    (a sweep creating it, a reader polling it) never apply a migration twice. With `apply=False` (readers)
    a store at an older version is read as it is (the readers know every version's columns), so looking
    at a store never changes it.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if not apply and 0 < version <= SCHEMA_VERSION:
        return version
    while version < SCHEMA_VERSION:
        rebuild = version in REBUILDS
        if rebuild:  # a no-op inside a transaction, so set before it; the copy is checked before it commits
            conn.execute("PRAGMA foreign_keys = OFF")
        try:
            with transaction(conn):
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version >= SCHEMA_VERSION:
                    break
                if version == 0:
                    # A foreign SQLite file (tables but no version) must not be taken over.
                    tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
                    if tables:
                        raise UserError(f"{name} is a SQLite file but not a scalinglab results DB")
                for stmt in _split_sql(MIGRATIONS[version]):
                    conn.execute(stmt)
                if rebuild and conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
                    raise UserError(f"{name}: migration {version + 1} would break a reference between tables")
                conn.execute(f"PRAGMA user_version = {version + 1}")
        finally:
            if rebuild:
                conn.execute("PRAGMA foreign_keys = ON")
        version += 1
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{name} has schema version {version}, newer than this scalinglab knows ({SCHEMA_VERSION}); upgrade scalinglab"
        )
    return version


def _split_sql(script: str) -> list[str]:
    """Statements of a migration (executescript would commit behind our transaction's back)."""
    return [s.strip() for s in script.split(";") if s.strip()]


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception: readers see all of it or none."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def _conn(db: DbLike, create: bool = True) -> Iterator[sqlite3.Connection]:
    """Use a given connection as is, or open (and close) one for a path."""
    if isinstance(db, sqlite3.Connection):
        yield db
        return
    conn = connect(db, create=create)
    try:
        yield conn
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------------
# run ids


@lru_cache(maxsize=64)
def _corpus_fingerprint_cached(path: str, mtime_ns: int) -> str:
    manifest = json.loads(Path(path, "corpus.json").read_text(encoding="utf-8"))
    ident = {
        "vocab_size": manifest.get("vocab_size"),
        "dtype": manifest.get("dtype"),
        "eot_token": manifest.get("eot_token"),
        "tokenizer_sha256": manifest.get("tokenizer_sha256"),
        "shards": {k: v.get("sha256") for k, v in sorted(manifest.get("shards", {}).items())},
        "eval_sets": {k: v.get("sha256") for k, v in sorted(manifest.get("eval_sets", {}).items())},
    }
    return "sha256:" + hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def corpus_fingerprint(corpus: str | os.PathLike) -> str:
    """Content identity of a prepared corpus (falls back to the absolute path when unreadable)."""
    p = Path(corpus).expanduser().resolve()
    try:
        return _corpus_fingerprint_cached(str(p), (p / "corpus.json").stat().st_mtime_ns)
    except (OSError, ValueError, AttributeError):
        return "path:" + str(p)


def canonical_config(config: Any) -> dict:
    """The part of a TrainConfig that identifies a run (see the module docstring)."""
    from scalinglab.config import TrainConfig

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.model_validate(dict(config))
    d = cfg.model_dump(mode="json")
    shape = cfg.model()
    d.update(d_ff=shape.d_ff, d_attn=shape.d_attn, n_heads=shape.n_heads)
    d["corpus"] = corpus_fingerprint(cfg.corpus) if cfg.corpus else ""  # "": a command run without a corpus
    for k in ID_EXCLUDED:
        d.pop(k, None)
    for k in ID_OMITTED_WHEN_NONE:
        if d.get(k) is None:
            d.pop(k, None)
    for k, default in ID_OMITTED_AT_DEFAULT.items():
        if d.get(k) == default:
            d.pop(k, None)
    return d


def run_id_for(config: Any, command: str | None = None, extra: Mapping[str, Any] | None = None) -> str:
    """Stable id of a run: sha256 of the canonical JSON of its identifying config (16 hex digits).

    A run of a user's trainer (`command`, the plan's template) hashes the template too: the same config
    trained by another program is another run; `extra` are other keys that change what it computes (a command
    plan's grad_accum or tokens_per_step). A run's family is not part of its id."""
    ident = canonical_config(config)
    if command is not None:
        ident["command"] = command
    ident.update(extra or {})
    blob = json.dumps(ident, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:RUN_ID_LEN]


# --------------------------------------------------------------------------------------------------
# writers (the sweep driver and `train --db`)


def _json(obj: Any) -> str:
    return json.dumps(json_safe(obj), sort_keys=True, allow_nan=False)


def _config_json(config: Any) -> str:
    from scalinglab.config import TrainConfig

    if isinstance(config, TrainConfig):
        config = config.model_dump(mode="json")
    return _json(dict(config))


def _event(conn: sqlite3.Connection, run_id: str, status: str, detail: str | None = None,
           host: str | None = None) -> None:
    conn.execute(
        "INSERT INTO events (run_id, at, status, host, detail) VALUES (?, ?, ?, ?, ?)",
        (run_id, now(), status, host or hostname(), detail),
    )


def _add_to_plan(conn: sqlite3.Connection, plan: str | None, run_id: str) -> None:
    if plan:
        conn.execute(
            "INSERT OR IGNORE INTO plan_runs (plan, run_id, added_at) VALUES (?, ?, ?)", (plan, run_id, now())
        )


def enqueue(db: DbLike, runs: list[tuple[str, Any]], plan: str | None = None,
            families: Mapping[str, str | None] | None = None) -> int:
    """Add (run_id, config) pairs as 'queued' unless already present; returns how many were new.

    `families` (run id → tag) are the plan's family tags: the plan is the record of which family a run is in,
    so a tag it gives is written on new and existing rows alike; a run it gives none keeps what it has."""
    new = 0
    families = families or {}
    with _conn(db) as conn, transaction(conn):
        for run_id, config in runs:
            cur = conn.execute(
                "INSERT OR IGNORE INTO runs (run_id, plan, status, created_at, config) VALUES (?, ?, 'queued', ?, ?)",
                (run_id, plan, now(), _config_json(config)),
            )
            if cur.rowcount:
                new += 1
                _event(conn, run_id, "queued")
            if families.get(run_id):
                conn.execute("UPDATE runs SET family = ? WHERE run_id = ? AND family IS NOT ?",
                             (families[run_id], run_id, families[run_id]))
            _add_to_plan(conn, plan, run_id)
    return new


def mark_running(db: DbLike, run_id: str, config: Any, threads: int | None, host: str | None = None) -> None:
    """A run was handed to a worker: status 'running', start time, threads, attempt count."""
    with _conn(db) as conn, transaction(conn):
        conn.execute(
            """UPDATE runs SET status = 'running', started_at = ?, host = ?, threads = ?, config = ?,
               attempts = attempts + 1, reason = NULL WHERE run_id = ?""",
            (now(), host or hostname(), threads, _config_json(config), run_id),
        )
        _event(conn, run_id, "running", f"threads={threads}", host)


def set_family(db: DbLike, run_id: str, family: str, event: str, detail: str | None = None) -> None:
    """Tag a run with `family` after the fact (the best LR of a sweep joins "main"), with an event saying why."""
    with _conn(db) as conn, transaction(conn):
        conn.execute("UPDATE runs SET family = ? WHERE run_id = ?", (family, run_id))
        _event(conn, run_id, event, detail)


def mark_failed(db: DbLike, run_id: str, reason: str, host: str | None = None) -> None:
    """A run raised or its worker died: status 'failed' with the reason (retried by --retry-failed)."""
    with _conn(db) as conn, transaction(conn):
        conn.execute(
            "UPDATE runs SET status = 'failed', reason = ?, finished_at = ? WHERE run_id = ?",
            (reason, now(), run_id),
        )
        _event(conn, run_id, "failed", reason, host)


def mark_queued(db: DbLike, run_ids: list[str], detail: str = "interrupted") -> None:
    """Put runs that were in flight back to 'queued' (e.g. after Ctrl-C); their checkpoints stay."""
    with _conn(db) as conn, transaction(conn):
        for run_id in run_ids:
            conn.execute("UPDATE runs SET status = 'queued' WHERE run_id = ? AND status = 'running'", (run_id,))
            _event(conn, run_id, "queued", detail)


def record_result(db_path_or_conn: DbLike, result: Mapping[str, Any], plan: str | None = None,
                  run_id: str | None = None, replace_curve: bool = False) -> str:
    """Upsert a finished run (row + every learning-curve point) in ONE transaction; returns its run id.

    `result` is what `scalinglab.train.run_training` returns. Without `run_id` the id is computed
    from `result["config"]`. Earlier eval points of the run with the same step are updated, none deleted, unless
    `replace_curve`: then the result's curve is the whole curve (a command run read from its trainer's output),
    and points of an abandoned attempt at other steps go.
    """
    config = result.get("config")
    if config is None:
        raise UserError("result has no 'config': cannot record it")
    rid = run_id or run_id_for(config)
    status = result.get("status", "done")
    if status not in STATUSES:
        raise UserError(f"result status {status!r} is not one of {', '.join(STATUSES)}")
    host = result.get("host") or hostname()
    finished = now()
    wall = json_safe(_num(result.get("wall_s")))
    metrics = {k: json_safe(_num(result.get(k))) if t != "TEXT" else result.get(k) for k, t in RUN_METRICS.items()}
    json_metrics = {k: (_json(result[k]) if result.get(k) is not None else None) for k in RUN_JSON_METRICS}
    stored = {k: v for k, v in result.items() if k != "curve"}
    cols = ["plan", "status", "reason", "host", "finished_at", "wall_s", "threads", "config", "result",
            *metrics, *json_metrics]
    vals = [plan, status, result.get("reason"), host, finished, wall, result.get("threads"),
            _config_json(config), _json(stored), *metrics.values(), *json_metrics.values()]
    with _conn(db_path_or_conn) as conn, transaction(conn):
        row = conn.execute("SELECT started_at, plan FROM runs WHERE run_id = ?", (rid,)).fetchone()
        if row is None:
            started = result.get("started_at") or _started_from(finished, wall)
            conn.execute(
                f"INSERT INTO runs (run_id, created_at, started_at, attempts, {', '.join(cols)}) "
                f"VALUES (?, ?, ?, 1, {', '.join('?' * len(cols))})",
                (rid, finished, started, *vals),
            )
        else:
            sets = dict(zip(cols, vals, strict=True))
            if plan is None:
                sets["plan"] = row["plan"]  # `train --db` on a run of a plan keeps the plan name
            if row["started_at"] is None:
                sets["started_at"] = _started_from(finished, wall)
            conn.execute(
                f"UPDATE runs SET {', '.join(f'{k} = ?' for k in sets)} WHERE run_id = ?", (*sets.values(), rid)
            )
        _add_to_plan(conn, plan, rid)
        _write_curve(conn, rid, result.get("curve") or [], replace_curve)
        _event(conn, rid, status, result.get("reason"), host)
    return rid


def record_points(db: DbLike, run_id: str, points: list[Mapping[str, Any]]) -> None:
    """The learning curve of a run still in progress, as far as it goes (the sweep driver, while a command run
    writes it): its points replace the run's earlier ones, and its row's steps and tokens show the progress."""
    with _conn(db) as conn, transaction(conn):
        _write_curve(conn, run_id, points, replace=True)
        if points:
            last = points[-1]
            conn.execute("UPDATE runs SET steps = ?, tokens = ? WHERE run_id = ? AND status = 'running'",
                         (int(last["step"]), json_safe(_num(last.get("tokens"))), run_id))


def _write_curve(conn: sqlite3.Connection, run_id: str, points: list[Mapping[str, Any]], replace: bool) -> None:
    for point in points:
        _upsert_eval(conn, run_id, point)
    if replace:
        steps = [int(p["step"]) for p in points]
        conn.execute(f"DELETE FROM evals WHERE run_id = ? AND step NOT IN ({', '.join('?' * len(steps))})",
                     (run_id, *steps))


def _num(x: Any) -> Any:
    if x is None or isinstance(x, int | float | str):
        return x
    try:
        return x.item()  # numpy / torch scalar
    except AttributeError:
        return float(x)


def _started_from(finished_iso: str, wall_s: float | None) -> str:
    if not wall_s:
        return finished_iso
    t = datetime.fromisoformat(finished_iso).timestamp() - float(wall_s)
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def _upsert_eval(conn: sqlite3.Connection, run_id: str, point: Mapping[str, Any]) -> None:
    if point.get("step") is None:
        raise UserError(f"run {run_id}: a learning-curve point has no 'step'")
    cols = ["run_id", "step", *EVAL_COLUMNS, "eval_losses"]
    vals = [run_id, int(point["step"]), *(json_safe(_num(point.get(k))) for k in EVAL_COLUMNS),
            _json(point["eval_losses"]) if point.get("eval_losses") is not None else None]
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols[2:])
    conn.execute(
        f"INSERT INTO evals ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
        f"ON CONFLICT(run_id, step) DO UPDATE SET {updates}",
        vals,
    )


def save_fit(db: DbLike, law_name: str, fit_dict: Mapping[str, Any]) -> int:
    """Append a fitted law (its JSON as `scalinglab fit` writes it); returns the fit id."""
    with _conn(db) as conn, transaction(conn):
        cur = conn.execute(
            "INSERT INTO fits (law, created_at, fit) VALUES (?, ?, ?)", (law_name, now(), _json(dict(fit_dict)))
        )
        return int(cur.lastrowid)


def save_fit_result(db: DbLike, result: Mapping[str, Any]) -> list[int]:
    """Record what `scalinglab fit --db` computed, so that `report --db` (which reads the latest fit of each law) finds
    it: a fit under its law's name, a comparison of forms (`--law A,B`) as each compared law's fit. Results with no
    parameters (a sensitivity table) are not fits and are not saved. Returns the new fit ids."""
    many = result.get("fits") if "comparison" in result else None
    fits = many if isinstance(many, Mapping) else {result.get("law"): result}
    return [save_fit(db, str(name), fit) for name, fit in fits.items()
            if name and isinstance(fit, Mapping) and isinstance(fit.get("params"), Mapping) and fit["params"]]


# --------------------------------------------------------------------------------------------------
# readers


def run_statuses(db: DbLike) -> dict[str, str]:
    """run_id → status for every run in the store."""
    with _conn(db, create=False) as conn:
        return {r["run_id"]: r["status"] for r in conn.execute("SELECT run_id, status FROM runs")}


def get_run(db: DbLike, run_id: str) -> dict | None:
    """One run row as a dict (config/result parsed), or None."""
    with _conn(db, create=False) as conn:
        row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else _run_dict(row)


def _run_dict(row: sqlite3.Row) -> dict:
    d = dict(row)
    for k in ("config", "result", *RUN_JSON_METRICS):
        if d.get(k) is not None:
            d[k] = json.loads(d[k])
    return d


def load_fits(db: DbLike, law: str | None = None) -> list[dict]:
    """Every saved fit, oldest first: the fit's own dict plus fit_id, law and created_at."""
    q, args = "SELECT * FROM fits", ()
    if law is not None:
        q, args = q + " WHERE law = ?", (law,)
    with _conn(db, create=False) as conn:
        rows = conn.execute(q + " ORDER BY fit_id", args).fetchall()
    return [{**json.loads(r["fit"]), "fit_id": r["fit_id"], "law": r["law"], "created_at": r["created_at"]}
            for r in rows]


CONFIG_COLUMNS = ("arch", "n_layer", "d_model", "d_ff", "d_attn", "n_heads", "n_ctx", "dropout", "tie_embeddings",
                  "batch_size", "data_tokens", "warmup", "schedule", "min_lr_ratio", "weight_decay",
                  "beta1", "beta2", "grad_clip", "seed", "eval_every", "eval_tokens", "corpus")


def load_runs(db_path: DbLike, plan: str | None = None):
    """One row per run (pandas DataFrame): ids, family, status, timings, flattened config, final metrics.

    `family` is the run's tag, or for a finished run stored without one the family `store.families` infers
    (`family_inferred` True); the inference runs over the untagged runs read, so with `plan` over that plan's.

    `steps`, `tokens` and `lr` are what the run did (resolved LR, steps actually taken) when it has a
    result, otherwise the planned steps and the configured LR. `eval_losses`, `val_loss_per_position`
    and `config` are JSON strings. With `plan`, only the runs of that plan.
    """
    import pandas as pd

    from scalinglab.config import TrainConfig
    from scalinglab.store.families import with_families

    q, args = "SELECT * FROM runs", ()
    if plan is not None:
        q, args = "SELECT r.* FROM runs r JOIN plan_runs p ON p.run_id = r.run_id WHERE p.plan = ?", (plan,)
    with _conn(db_path, create=False) as conn:
        rows = conn.execute(q + " ORDER BY created_at, run_id", args).fetchall()
    records = []
    for row in rows:
        r = dict(row)
        cfg = json.loads(r["config"])
        resolved = _resolved_config(cfg, TrainConfig) if "import" not in cfg else {"planned_steps": None}
        cfg = resolved.pop("config", cfg)
        rec = {
            "run_id": r["run_id"], "name": _run_name(cfg), "plan": r["plan"], "family": r.get("family"),
            "status": r["status"],
            "reason": r["reason"],
            "host": r["host"], "created_at": r["created_at"], "started_at": r["started_at"],
            "finished_at": r["finished_at"], "wall_s": r["wall_s"], "threads": r["threads"],
            "attempts": r["attempts"],
        }
        unseen = _not_given_to_command(r["result"])
        for k in CONFIG_COLUMNS:
            rec[k] = None if k in unseen else cfg.get(k)
        for k in ("d_ff", "d_attn", "n_heads"):
            rec[k] = cfg.get(k) if cfg.get(k) is not None else resolved.get(k)
        rec["steps"] = r["steps"] if r["steps"] is not None else resolved.get("planned_steps")
        rec["lr"] = r["lr"] if r["lr"] is not None else _float_or_none(cfg.get("lr"))  # "auto" is no number
        for k in RUN_METRICS:
            if k not in ("steps", "lr"):
                rec[k] = r[k]
        for k in RUN_JSON_METRICS:
            rec[k] = r[k]
        rec.update(_branch_columns(r))
        rec["flops_convention"] = _flops_convention(r)
        rec["config"] = r["config"]
        records.append(rec)
    columns = list(records[0]) if records else _run_frame_columns()
    return with_families(pd.DataFrame.from_records(records, columns=columns))


def _resolved_config(cfg: dict, train_config: Any) -> dict:
    """A scalinglab run's config with its defaults and resolved shape (key "config", plus d_ff, d_attn, n_heads and
    planned_steps). Imported runs skip this: a default the source never stated would be shown as if it had."""
    try:
        tc = train_config.model_validate(cfg)
        shape = tc.model()
    except Exception:  # a config written by another version: show what is there
        return {"planned_steps": cfg.get("steps")}
    return {"config": {**tc.model_dump(mode="json"), **cfg}, "d_ff": shape.d_ff, "d_attn": shape.d_attn,
            "n_heads": shape.n_heads, "planned_steps": tc.total_steps}


# Training-recipe settings a command run's trainer only knows if its command line passes them ({schedule}, ...);
# otherwise the values in its config are scalinglab's defaults, not what the trainer did.
RECIPE_COLUMNS = ("arch", "dropout", "tie_embeddings", "warmup", "schedule", "min_lr_ratio", "weight_decay", "beta1",
                  "beta2", "grad_clip", "eval_every", "eval_tokens")


def _not_given_to_command(result_json: str | None) -> set[str]:
    """The recipe settings a command run's template did not pass to its trainer (empty for other runs)."""
    from string import Formatter

    res = json.loads(result_json) if result_json else {}
    template = res.get("command") if res.get("trainer") == "command" else None
    if not isinstance(template, str):
        return set()
    try:
        given = {field.split(".")[0].split("[")[0] for _, field, _, _ in Formatter().parse(template) if field}
    except ValueError:  # not a format string after all: assume it passed nothing
        given = set()
    return set(RECIPE_COLUMNS) - given


def _run_name(cfg: Mapping[str, Any]) -> str | None:
    """The name a run had where it came from (an imported run's own key), or None for scalinglab's runs."""
    source = cfg.get("import")
    name = (source.get("name") or source.get("run")) if isinstance(source, Mapping) else None
    return None if name is None else str(name)


def _float_or_none(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _branch_columns(row: Mapping[str, Any]) -> dict:
    """parent_id, inherited_flops, own_flops and own_wall_s of a run (from its result; a run that is no WSD cooldown branch
    has no parent and its own FLOPs are all its FLOPs): sum `own_flops` (`own_wall_s`) for a study's compute (time)."""
    res = json.loads(row["result"]) if row["result"] else {}
    inherited = res.get("inherited_flops") or 0.0
    own = res.get("own_flops")
    own_wall = res.get("own_wall_s")
    return {"parent_id": res.get("parent_id"), "inherited_flops": inherited,
            "own_flops": own if own is not None else row["flops"],
            "own_wall_s": own_wall if own_wall is not None else row["wall_s"]}


def _flops_convention(row: Mapping[str, Any]) -> str | None:
    """How the run's FLOPs were counted: "exact" (scalinglab's trainer: 6N + the context term per token), "6N"
    (6·N·tokens) or "reported" (a command run's trainer logged them), or what an import recorded; None before a
    result exists."""
    res = json.loads(row["result"]) if row["result"] else None
    if not res:
        return None
    imported = res.get("import") if isinstance(res.get("import"), Mapping) else {}
    return res.get("flops_convention") or imported.get("flop_convention") or "exact"


def _run_frame_columns() -> list[str]:
    return ["run_id", "name", "plan", "family", "status", "reason", "host", "created_at", "started_at", "finished_at", "wall_s",
            "threads", "attempts", *CONFIG_COLUMNS, "steps", "lr",
            *(k for k in RUN_METRICS if k not in ("steps", "lr")), *RUN_JSON_METRICS,
            "parent_id", "inherited_flops", "own_flops", "own_wall_s", "flops_convention", "config"]


def load_evals(db_path: DbLike, plan: str | None = None, run_ids: list[str] | None = None):
    """One row per learning-curve point (pandas DataFrame), with an `eval_<name>` column per extra eval set.

    The raw `eval_losses` JSON column is kept as well. Ordered by run, then step. With `plan` or `run_ids`, only
    those runs' points.
    """
    import pandas as pd

    q, args, where = "SELECT e.* FROM evals e", [], []
    if plan is not None:
        q, where, args = q + " JOIN plan_runs p ON p.run_id = e.run_id", ["p.plan = ?"], [plan]
    if run_ids is not None:
        where.append(f"e.run_id IN ({', '.join('?' * len(run_ids))})")
        args += list(run_ids)
    if where:
        q += " WHERE " + " AND ".join(where)
    with _conn(db_path, create=False) as conn:
        rows = [dict(r) for r in conn.execute(q + " ORDER BY e.run_id, e.step", args)]
    columns = ["run_id", "step", *EVAL_COLUMNS, "eval_losses"]
    df = pd.DataFrame.from_records(rows, columns=columns)
    names: set[str] = set()
    parsed = []
    for raw in df["eval_losses"]:
        d = json.loads(raw) if isinstance(raw, str) else {}
        parsed.append(d)
        names.update(d)
    for name in sorted(names):
        df[f"eval_{name}"] = [p.get(name) for p in parsed]
    return df
