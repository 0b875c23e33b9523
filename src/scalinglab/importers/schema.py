"""The canonical form of an imported run, and how it becomes a store record with N, D and C resolved.

Every reader turns its source into `ImportedRun`s: an identity (format family, source label, the source's
own run key), a status, a config dict and a curve frame with canonical columns. `to_result` then resolves
what the fits need the same way for every format:

* N (non-embedding parameters): logged `N` (curve or config) → counted from the shape in the config
  (n_layer, d_model, [d_ff, d_attn, n_heads, arch]) by `model/counting.py`.
* tokens per eval: logged `tokens` → step × batch_tokens (or step × batch_size × n_ctx).
* C (training FLOPs) per eval: logged `flops` → config `flops_per_token` × tokens → Kaplan Table 1
  (3·(2N + 2·n_layer·n_ctx·d_attn) per token, as scalinglab's own runs count it) when the shape and n_ctx
  are known → 6·N·tokens. Which one was used is recorded (`import.flop_convention`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scalinglab.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

# canonical curve columns -> names a source commonly uses for them (first match wins)
CURVE_ALIASES: dict[str, tuple[str, ...]] = {
    "step": ("step", "_step", "global_step", "trainer/global_step", "Step"),
    "loss": ("loss", "val_loss", "eval_loss", "eval/loss", "val/loss", "validation/loss", "L"),
    "tokens": ("tokens", "tokens_seen", "num_input_tokens_seen", "train/tokens", "D"),
    "flops": ("flops", "C"),
    "lr": ("lr", "learning_rate", "train/lr", "train/learning_rate"),
    "train_loss": ("train_loss", "train/loss"),
    "wall_s": ("wall_s", "_runtime"),
    "noise_scale": ("noise_scale",),
    "N": ("N", "n_params", "num_params"),
}
# canonical config keys -> common spellings (GPT-2 / Llama style HF configs, nanoGPT, ...)
CONFIG_ALIASES: dict[str, tuple[str, ...]] = {
    "N": ("N", "n_params", "num_params", "non_embedding_params"),
    "N_with_embeddings": ("N_with_embeddings", "n_params_with_embeddings"),
    "arch": ("arch",),
    "n_layer": ("n_layer", "n_layers", "num_layers", "num_hidden_layers"),
    "d_model": ("d_model", "n_embd", "hidden_size", "dim"),
    "d_ff": ("d_ff", "n_inner", "intermediate_size", "ffn_dim"),
    "d_attn": ("d_attn",),
    "n_heads": ("n_heads", "n_head", "num_attention_heads"),
    "n_ctx": ("n_ctx", "block_size", "seq_len", "context_length", "n_positions", "max_position_embeddings"),
    "vocab_size": ("vocab_size",),
    "tie_embeddings": ("tie_embeddings", "tie_word_embeddings"),
    "batch_size": ("batch_size",),
    "batch_tokens": ("batch_tokens",),
    "data_tokens": ("data_tokens",),
    "flops_per_token": ("flops_per_token",),
    "lr": ("lr", "learning_rate"),
}
CURVE_KEYS = tuple(CURVE_ALIASES)
CONFIG_KEYS = tuple(CONFIG_ALIASES)
SHAPE_KEYS = ("arch", "n_layer", "d_model", "d_ff", "d_attn", "n_heads", "n_ctx", "vocab_size", "tie_embeddings")
STATUS_MAP = {"finished": "done", "done": "done", "running": "running", "failed": "failed", "killed": "failed",
              "crashed": "failed", "scheduled": "running"}


@dataclass
class ImportedRun:
    """One run read from a source: identity, status, config and learning curve (canonical columns)."""

    family: str                 # "table", "tensorboard", "mlflow", "wandb", "hf-trainer"
    label: str                  # which source it came from (file/folder name, project, ...)
    key: str                    # the source's own run name or id
    curve: pd.DataFrame         # step, loss, [tokens, flops, lr, train_loss, wall_s, noise_scale, N]
    config: dict[str, Any] = field(default_factory=dict)
    status: str = "done"
    reason: str | None = None
    source: dict[str, Any] = field(default_factory=dict)  # format, path, ... (recorded with the run)

    @property
    def run_id(self) -> str:
        """Stable id from the source identity, so a re-import updates the same run."""
        ident = json.dumps({"family": self.family, "label": self.label, "run": self.key}, sort_keys=True)
        return hashlib.sha256(("import:" + ident).encode()).hexdigest()[:16]


def parse_run_config(specs: list[str] | None) -> dict[str, str]:
    """['loss=eval/loss', 'n_layer=layers'] -> {'loss': 'eval/loss', 'n_layer': 'layers'}."""
    out: dict[str, str] = {}
    known = sorted(set(CURVE_KEYS) | set(CONFIG_KEYS) | {"run"})
    for spec in specs or []:
        key, sep, col = (p.strip() for p in spec.partition("="))
        if not sep or not key or not col:
            raise UserError(f"--run-config expects KEY=COLUMN (e.g. loss=eval/loss), got {spec!r}")
        if key not in known:
            raise UserError(f"--run-config {spec!r}: {key!r} is not a canonical key ({', '.join(known)})")
        out[key] = col
    return out


def pick(names: list[str] | set[str], canon: str, mapping: dict[str, str], aliases=CURVE_ALIASES) -> str | None:
    """The source's name for canonical `canon`: the user's mapping, else the first alias present."""
    if canon in mapping:
        return mapping[canon] if mapping[canon] in names else None
    return next((a for a in aliases.get(canon, (canon,)) if a in names), None)


def canonical_config(raw: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """Canonical config keys found in `raw` (user mapping first), plus every raw key kept under `raw`."""
    out: dict[str, Any] = {}
    for canon in CONFIG_KEYS:
        name = pick(set(raw), canon, mapping, CONFIG_ALIASES)
        if name is not None and _present(raw[name]):
            out[canon] = raw[name]
    return out


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and v != ""


def _num(v: Any, what: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise UserError(f"{what}: {v!r} is not a number") from None
    if not math.isfinite(x):
        raise UserError(f"{what}: {v!r} is not finite")
    return x


def _number_or_none(v: Any) -> float | None:
    """A finite number, or None for anything else (a word such as "auto", a missing value)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _int(v: Any, what: str) -> int:
    x = _num(v, what)
    if x != int(x) or x <= 0:
        raise UserError(f"{what} must be a positive whole number, got {v!r}")
    return int(x)


def status_of(state: Any) -> str:
    """A source's run state (FINISHED, running, killed, ...) as a store status; unknown states count as done."""
    return STATUS_MAP.get(str(state or "finished").strip().lower(), "done")


def clean_curve(run: ImportedRun, looked_for: str = "") -> pd.DataFrame:
    """Numeric canonical columns, rows with a loss only, sorted by step, one row per step (the last)."""
    import pandas as pd

    df = run.curve
    where = f"run {run.key!r} of {run.label}"
    if "loss" not in df.columns or pd.to_numeric(df["loss"], errors="coerce").notna().sum() == 0:
        hint = f" (looked for {looked_for})" if looked_for else ""
        raise UserError(f"{where} has no loss series{hint}; map one with --run-config loss=NAME")
    if "step" not in df.columns:
        raise UserError(f"{where} has no step column; map one with --run-config step=NAME")
    out = pd.DataFrame({c: pd.to_numeric(df[c], errors="coerce") for c in CURVE_KEYS if c in df.columns})
    out = out[out["loss"].notna() & out["step"].notna()]
    if (out["step"] < 0).any() or (out["step"] != out["step"].round()).any():
        raise UserError(f"{where}: steps must be whole numbers >= 0")
    out = out.assign(step=out["step"].astype(int)).sort_values("step", kind="stable")
    return out.drop_duplicates("step", keep="last").reset_index(drop=True)


def _shape(cfg: dict[str, Any], where: str):
    """ModelConfig from the config's shape keys (n_ctx, vocab_size placeholders when absent), or None."""
    from scalinglab.config import ModelConfig

    if not ("n_layer" in cfg and "d_model" in cfg):
        return None
    kw = {k: cfg[k] for k in SHAPE_KEYS if k in cfg}
    kw.setdefault("n_ctx", 1)
    kw.setdefault("vocab_size", 2)
    try:
        return ModelConfig(**kw)
    except Exception as e:  # pydantic ValidationError: first problem, one line
        msg = str(e).splitlines()[1:3]
        raise UserError(f"{where}: the model shape in its config is invalid: {' '.join(msg).strip()}") from None


def _last(df: pd.DataFrame, col: str) -> float | None:
    if col not in df.columns:
        return None
    s = df[col].dropna()
    return float(s.iloc[-1]) if len(s) else None


def resolve_n(run: ImportedRun, curve: pd.DataFrame, where: str) -> tuple[float, float | None, str, Any]:
    """(N, N with embeddings or None, where N came from, the ModelConfig or None)."""
    from scalinglab.model.counting import n_embedding_params, n_params_closed_form

    cfg = run.config
    shape = _shape(cfg, where)
    emb = None
    if shape is not None and "n_ctx" in cfg and "vocab_size" in cfg:
        emb = n_embedding_params(shape)
    logged = _last(curve, "N")
    if logged is not None or "N" in cfg:
        n = logged if logged is not None else _num(cfg["N"], f"{where}: N")
        with_emb = _num(cfg["N_with_embeddings"], where) if "N_with_embeddings" in cfg else (
            n + emb if emb is not None else None)
        return n, with_emb, "logged", shape
    if shape is not None:
        n = float(n_params_closed_form(shape))
        return n, (n + emb if emb is not None else None), "counted from the config's shape (model/counting.py)", shape
    raise UserError(f"{where} has no parameter count: log N, give n_layer and d_model in its config "
                    "(--config FILE), or map one with --run-config N=NAME")


def batch_tokens(cfg: dict[str, Any], where: str) -> float | None:
    """Tokens per optimiser step from batch_tokens, or batch_size (sequences) × n_ctx."""
    if "batch_tokens" in cfg:
        return _num(cfg["batch_tokens"], f"{where}: batch_tokens")
    if "batch_size" in cfg and "n_ctx" in cfg:
        return _num(cfg["batch_size"], f"{where}: batch_size") * _num(cfg["n_ctx"], f"{where}: n_ctx")
    return None


def resolve_tokens(run: ImportedRun, curve: pd.DataFrame, where: str) -> tuple[Any, str]:
    if "tokens" in curve.columns and curve["tokens"].notna().all():
        return curve["tokens"].to_numpy(float), "logged"
    bt = batch_tokens(run.config, where)
    if bt is None:
        raise UserError(f"{where} has no tokens series and its config has no batch_tokens or batch_size and n_ctx "
                        "to derive them from; map one with --run-config tokens=NAME or give them with --config FILE")
    return curve["step"].to_numpy(float) * bt, "step × tokens per step from the config"


def resolve_flops(run: ImportedRun, curve: pd.DataFrame, tokens, n: float, shape, where: str) -> tuple[Any, str]:
    from scalinglab.model.counting import flops_per_token_train

    if "flops" in curve.columns and curve["flops"].notna().all():
        return curve["flops"].to_numpy(float), "logged by the source"
    if "flops_per_token" in run.config:
        return tokens * _num(run.config["flops_per_token"], f"{where}: flops_per_token"), "flops_per_token from the config"
    if shape is not None and "n_ctx" in run.config:
        return (tokens * flops_per_token_train(shape, context=True),
                "Kaplan Table 1: 3·(2N + 2·n_layer·n_ctx·d_attn) per token (model/counting.py)")
    return 6.0 * n * tokens, "6·N·D"


def _config_record(run: ImportedRun, where: str) -> dict[str, Any]:
    """What the store keeps as the run's config: canonical keys (batch_size in sequences) + the source."""
    cfg = {k: v for k, v in run.config.items() if k not in ("N", "N_with_embeddings")}
    if "batch_size" not in cfg and "batch_tokens" in cfg and "n_ctx" in cfg:
        cfg["batch_size"] = _num(cfg["batch_tokens"], where) / _num(cfg["n_ctx"], where)
    for k in ("n_layer", "d_model", "d_ff", "d_attn", "n_heads", "n_ctx", "vocab_size", "data_tokens"):
        if k in cfg:
            cfg[k] = _int(cfg[k], f"{where}: {k}")
    if "batch_size" in cfg:
        b = _num(cfg["batch_size"], f"{where}: batch_size")
        cfg["batch_size"] = int(b) if b == int(b) else b
    cfg["import"] = {"family": run.family, "label": run.label, "run": run.key, **run.source}
    return cfg


def to_result(run: ImportedRun, looked_for: str = "") -> dict[str, Any]:
    """The store record of an imported run (`store.db.record_result` input): final metrics + every eval point."""
    import numpy as np

    from scalinglab.model.counting import PF_DAY

    where = f"run {run.key!r} of {run.label}"
    curve = clean_curve(run, looked_for)
    n, n_emb, n_source, shape = resolve_n(run, curve, where)
    tokens, tokens_source = resolve_tokens(run, curve, where)
    flops, convention = resolve_flops(run, curve, tokens, n, shape, where)
    points = []
    for i, row in enumerate(curve.to_dict("records")):
        p = {"step": int(row["step"]), "tokens": int(round(tokens[i])), "flops": float(flops[i]),
             "pf_days": float(flops[i]) / PF_DAY, "val_loss": float(row["loss"])}
        for k in ("lr", "train_loss", "wall_s", "noise_scale"):
            if k in row and row[k] is not None and np.isfinite(row[k]):
                p[k] = float(row[k])
        points.append(p)
    final = points[-1]
    lr = _number_or_none(run.config.get("lr"))  # "auto", "sweep", ...: the config keeps the word, the LR is unknown
    if lr is None and "lr" in curve.columns and curve["lr"].notna().any():
        lr = float(curve["lr"].max())
    return {
        "config": _config_record(run, where), "status": run.status, "reason": run.reason,
        "steps": final["step"], "tokens": final["tokens"], "n_params": int(round(n)),
        "n_params_with_embeddings": None if n_emb is None else int(round(n_emb)),
        "flops": final["flops"], "pf_days": final["pf_days"], "val_loss": final["val_loss"],
        "best_val_loss": min(p["val_loss"] for p in points), "train_loss": _last(curve, "train_loss"),
        "lr": lr, "wall_s": _last(curve, "wall_s"),
        "noise_scale": _last(curve, "noise_scale"), "curve": points,
        "import": {"family": run.family, "label": run.label, "run": run.key, **run.source,
                   "n_params_source": n_source, "tokens_source": tokens_source, "flop_convention": convention},
    }
