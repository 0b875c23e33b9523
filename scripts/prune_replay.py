"""Replay pruning on a finished sweep: which LR candidates `prune_at` checks would have stopped, the compute that saves,
and whether each size would keep the same LR.

    python scripts/prune_replay.py cpu_run --at 0.33            # a `scalinglab reproduce` folder (plan.toml, runs.db)
    python scripts/prune_replay.py --plan p.toml --db r.db --at 0.25 0.5 --json

A sweep's pruning decision reads only the candidates' curves up to each check (sweep/prune.py), and those points are
the same whether the sweep pruned or not, so replaying `forecast_group` on a store trained without pruning gives
exactly the decisions a pruning sweep of the same plan makes. What it cannot give is the wall time: that is measured
by running the plan with pruning (docs/benchmarks/pruning.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def replay(plan_path: Path, db: Path, fractions: list[float]) -> dict:
    """Per LR group: the runs pruned at each check, FLOPs spent with and without pruning, the LR kept both ways."""
    from scalinglab.store.db import load_runs
    from scalinglab.sweep.lr_sweep import choose
    from scalinglab.sweep.plan import load_plan
    from scalinglab.sweep.prune import check_step, forecast_group

    plan = load_plan(plan_path)
    runs = load_runs(db).set_index("run_id")
    groups: dict[str, list] = {}
    for s in plan.runs:
        if s.lr_group:
            groups.setdefault(s.lr_group, []).append(s)
    total_flops = float(sum(runs.loc[s.run_id, "flops"] for s in plan.runs if s.run_id in runs.index))
    out, saved = [], 0.0
    for group, specs in groups.items():
        alive, pruned = list(specs), {}
        for k, f in enumerate(fractions):
            verdict = forecast_group(db, alive, group, k, f)
            for s in alive:
                if s.run_id in verdict.pruned and runs.loc[s.run_id, "status"] == "done":
                    pruned[s.run_id] = {"stage": k, "fraction": f, "check_step": check_step(s, f),
                                        "reason": verdict.pruned[s.run_id]}
            alive = [s for s in alive if s.run_id not in pruned]
        rows = [{"run_id": s.run_id, "lr": s.config.lr, "status": runs.loc[s.run_id, "status"],
                 "val_loss": float(runs.loc[s.run_id, "val_loss"])} for s in specs if s.run_id in runs.index]
        off = choose(rows)
        on = choose([{**r, "status": "pruned" if r["run_id"] in pruned else r["status"]} for r in rows])
        for rid, p in pruned.items():
            spec = next(s for s in specs if s.run_id == rid)
            p["flops_saved"] = float(runs.loc[rid, "flops"]) * (1 - p["check_step"] / spec.config.total_steps)
            saved += p["flops_saved"]
        out.append({"group": group, "n_params": int(runs.loc[specs[0].run_id, "n_params"]),
                    "shape": f"{specs[0].config.n_layer}x{specs[0].config.d_model}",
                    "lrs": [s.config.lr for s in specs], "pruned": pruned,
                    "best_lr_off": off and off["best_lr"], "best_lr_on": on and on["best_lr"]})
    return {"plan": str(plan_path), "db": str(db), "prune_at": fractions, "groups": out,
            "total_flops": total_flops, "flops_saved": saved, "saved_fraction": saved / total_flops if total_flops else 0,
            "same_choices": all(g["best_lr_off"] == g["best_lr_on"] for g in out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", type=Path, help="a reproduce output folder (plan.toml and runs.db)")
    ap.add_argument("--plan", type=Path)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--at", type=float, nargs="+", required=True, help="check fractions, as prune_at")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    plan, db = (a.plan or a.out / "plan.toml"), (a.db or a.out / "runs.db")
    res = replay(plan, db, a.at)
    if a.json:
        print(json.dumps(res, indent=1))
        return
    for g in res["groups"]:
        stops = "; ".join(f"{rid[:8]} at {p['fraction']:.0%}" for rid, p in g["pruned"].items()) or "none"
        print(f"{g['shape']:>6} N={g['n_params']:>8,}: pruned {stops}; best LR {g['best_lr_off']} without, "
              f"{g['best_lr_on']} with pruning")
    print(f"prune_at {a.at}: saves {res['flops_saved']:.3g} of {res['total_flops']:.3g} FLOPs "
          f"({res['saved_fraction']:.1%}); same LR choices: {res['same_choices']}")


if __name__ == "__main__":
    main()
