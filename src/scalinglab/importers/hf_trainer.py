"""Hugging Face Trainer output folders: `trainer_state.json` (its `log_history`) with `config.json` beside it.

SOURCE is a trainer_state.json, a Trainer output folder, or a folder of them. In an output folder the
top-level trainer_state.json wins; otherwise the `checkpoint-*` with the highest global_step. Eval entries
(`eval_loss`) are the curve, the training entries at the same step give `train_loss` and `learning_rate`,
`num_input_tokens_seen` gives tokens when the Trainer logged it. config.json gives the shape (GPT-2 or
Llama names, see `schema.CONFIG_ALIASES`; N is counted with scalinglab's Transformer formula, so a gated MLP
is not counted exactly: give N with --config or --run-config when it matters). Without logged tokens they
are step × train_batch_size × n_ctx (trainer_state's train_batch_size, n_ctx from config.json's position
count): that assumes no gradient accumulation and full-length sequences, and is recorded as such.
The run is done when global_step reached max_steps, else running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalinglab.errors import UserError
from scalinglab.importers.schema import CONFIG_KEYS, ImportedRun, canonical_config
from scalinglab.io import read_json

STATE = "trainer_state.json"


def state_files(root: Path) -> list[Path]:
    """One trainer_state.json per run folder (top level over checkpoints, else the latest checkpoint)."""
    if root.is_file():
        return [root]
    best: dict[Path, tuple[int, Path]] = {}
    for f in root.rglob(STATE):
        is_ckpt = f.parent.name.startswith("checkpoint-")
        run_dir = f.parent.parent if is_ckpt else f.parent
        rank = int(f.parent.name.split("-")[-1]) if is_ckpt and f.parent.name.split("-")[-1].isdigit() else 10**18
        if run_dir not in best or rank > best[run_dir][0]:
            best[run_dir] = (rank, f)
    return [best[d][1] for d in sorted(best)]


def _curve(history: list[dict[str, Any]], keys: dict[str, str]):
    import pandas as pd

    evals = [h for h in history if keys["loss"] in h and "step" in h]
    train = {h["step"]: h for h in history if "loss" in h and "step" in h and keys["loss"] != "loss"}
    rows = []
    for h in evals:
        t = train.get(h["step"], {})
        rows.append({"step": h["step"], "loss": h[keys["loss"]],
                     "tokens": h.get("num_input_tokens_seen", t.get("num_input_tokens_seen")),
                     "train_loss": t.get("loss"), "lr": t.get("learning_rate", h.get("learning_rate"))})
    return pd.DataFrame.from_records(rows, columns=["step", "loss", "tokens", "train_loss", "lr"])


def read_hf(root: Path, mapping: dict[str, str]) -> list[ImportedRun]:
    if not root.exists():
        raise UserError(f"hf-trainer source not found: {root}")
    keys = {"loss": mapping.get("loss", "eval_loss")}
    runs = []
    for f in state_files(root):
        state = read_json(f, "trainer state")
        if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
            raise UserError(f"{f} is not a Trainer state (no log_history list)")
        run_dir = f.parent.parent if f.parent.name.startswith("checkpoint-") else f.parent
        cfg_file = next((p / "config.json" for p in (f.parent, run_dir) if (p / "config.json").is_file()), None)
        raw = dict(read_json(cfg_file, "model config")) if cfg_file else {}
        if state.get("train_batch_size"):
            raw.setdefault("batch_size", state["train_batch_size"])
        config = canonical_config(raw, {k: v for k, v in mapping.items() if k in CONFIG_KEYS})
        if raw.get("model_type") and config.get("arch") is None:
            config["arch"] = "transformer"
        done = bool(state.get("max_steps")) and state.get("global_step", 0) >= state["max_steps"]
        runs.append(ImportedRun(
            family="hf-trainer", label=run_dir.parent.name or "hf", key=run_dir.name, curve=_curve(
                state["log_history"], keys), config=config, status="done" if done else "running",
            source={"format": "hf-trainer", "path": str(f.resolve()), "config_json": str(cfg_file) if cfg_file else None,
                    "model_type": raw.get("model_type"), "total_flos": state.get("total_flos")},
        ))
    return runs
