"""MLflow tracking stores read with mlflow's own client: a local `mlruns` folder, a SQLite file or a URI.

Every run of every experiment is one run; its params are its config and each metric's full history (by
step) a curve column (`loss`/`val_loss`/..., `tokens`, `flops`, `lr`; or map with --run-config loss=KEY).
MLflow's run status maps to the store's (FINISHED -> done, RUNNING -> running, FAILED/KILLED -> failed).
The run key is MLflow's run id, which is unique across stores.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from scalinglab.errors import UserError
from scalinglab.importers.schema import (
    CONFIG_KEYS,
    CURVE_KEYS,
    ImportedRun,
    canonical_config,
    pick,
    status_of,
)

FILE_STORE_FLAG = "MLFLOW_ALLOW_FILE_STORE"


def tracking_uri(source: str) -> str:
    """The tracking URI of SOURCE; a SQLite file must already be an MLflow store (never created here)."""
    if "://" in source:
        return source
    p = Path(source)
    if p.is_dir():
        return p.resolve().as_uri()
    if not p.is_file():
        raise UserError(f"mlflow source not found: {p}")
    try:
        conn = sqlite3.connect(f"file:{p.resolve().as_posix()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        tables = set()
    if not {"experiments", "runs", "metrics"} <= tables:
        raise UserError(f"{p} is not an MLflow tracking database (no experiments/runs/metrics tables)")
    return "sqlite:///" + p.resolve().as_posix()


@contextmanager
def _client(uri: str):
    """An MlflowClient on `uri`. A `file:` store (MLflow 3 keeps it read-mostly, behind
    MLFLOW_ALLOW_FILE_STORE) is allowed for the duration of the read only."""
    for name in ("alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from mlflow.tracking import MlflowClient

    saved = os.environ.get(FILE_STORE_FLAG)
    if uri.startswith("file:"):
        os.environ[FILE_STORE_FLAG] = "true"
    try:
        yield MlflowClient(tracking_uri=uri)
    finally:
        if saved is None:
            os.environ.pop(FILE_STORE_FLAG, None)
        else:
            os.environ[FILE_STORE_FLAG] = saved


def _all_runs(client) -> list:
    from mlflow.entities import ViewType

    runs = []
    for exp in client.search_experiments(view_type=ViewType.ALL):
        token = None
        while True:
            page = client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL, max_results=1000,
                                      page_token=token)
            runs += [(exp.name, r) for r in page]
            token = page.token
            if not token:
                break
    return runs


def read_mlflow(source: str, mapping: dict[str, str]) -> list[ImportedRun]:

    uri = tracking_uri(source)
    try:
        with _client(uri) as client:
            return [_run(client, exp_name, run, uri, mapping) for exp_name, run in _all_runs(client)]
    except UserError:
        raise
    except Exception as e:  # the client raises its own exception types for unreadable stores
        raise UserError(f"cannot read MLflow store {source}: {str(e).splitlines()[0] if str(e) else e!r}") from None


def _run(client, exp_name: str, run, uri: str, mapping: dict[str, str]) -> ImportedRun:
    """One MLflow run: params as config, every mapped metric's full history as the curve."""
    import pandas as pd

    keys = sorted(run.data.metrics)
    cols = {k: pick(keys, k, mapping) for k in CURVE_KEYS if k != "step"}
    series = {}
    for canon, key in cols.items():
        if key:
            hist = client.get_metric_history(run.info.run_id, key)
            series[canon] = pd.Series({m.step: m.value for m in hist}, dtype=float)
    curve = pd.DataFrame(series).rename_axis("step").reset_index() if series else pd.DataFrame()
    info = run.info
    return ImportedRun(
        family="mlflow", label=f"mlflow:{exp_name}", key=info.run_id, curve=curve,
        config=canonical_config(dict(run.data.params), {k: v for k, v in mapping.items() if k in CONFIG_KEYS}),
        status=status_of(info.status), reason=None if info.status in ("FINISHED", "RUNNING") else info.status,
        source={"format": "mlflow", "tracking_uri": uri, "experiment": exp_name, "name": info.run_name,
                "metrics": keys},
    )
