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
    from scalinglab.sweep.lr_sweep import choose, lr_groups
    from scalinglab.sweep.plan import load_plan
    from scalinglab.sweep.prune import check_step, forecast_group

    plan = load_plan(plan_path)
    runs = load_runs(db).set_index("run_id")
    groups = lr_groups(plan.runs)
    total_flops = float(sum(runs.loc[s.run_id, "flops"] for s in plan.runs if s.run_id in runs.index))
    out, saved, unfinished = [], 0.0, []
    for group, specs in groups.items():
        if any(s.run_id not in runs.index or runs.loc[s.run_id, "status"] not in ("done", "diverged") for s in specs):
            unfinished.append(group)  # trained without pruning: every candidate must have ended
            continue
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
    return {"plan": str(plan_path), "db": str(db), "prune_at": fractions, "groups": out, "unfinished": unfinished,
            "total_flops": total_flops, "flops_saved": saved, "saved_fraction": saved / total_flops if total_flops else 0,
            "same_choices": all(g["best_lr_off"] == g["best_lr_on"] for g in out)}


def measured(plan_path: Path, db_off: Path, db_on: Path) -> dict:
    """The runs of `plan_path` in two stores, one swept with --no-prune and one with pruning: summed run time and
    FLOPs actually trained, the runs pruned, and the LR each size kept in each."""
    from scalinglab.store.db import load_runs
    from scalinglab.sweep.lr_sweep import choose, lr_groups
    from scalinglab.sweep.plan import load_plan

    plan = load_plan(plan_path)
    ids = [s.run_id for s in plan.runs]
    out: dict = {"plan": str(plan_path), "runs": len(ids)}
    frames = {}
    for name, db in (("off", db_off), ("on", db_on)):
        r = load_runs(db).set_index("run_id").reindex(ids)
        if r["status"].isna().any():
            raise SystemExit(f"{db} lacks {int(r['status'].isna().sum())} runs of {plan_path}")
        frames[name] = r
        out[name] = {"db": str(db), "run_wall_s": float(r["wall_s"].sum()), "flops": float(r["flops"].sum()),
                     "pruned": int((r["status"] == "pruned").sum())}
    out["choices"] = []
    for specs in lr_groups(plan.runs).values():
        picks = {}
        for name, r in frames.items():
            rows = [{"run_id": x.run_id, "lr": x.config.lr, "status": r.loc[x.run_id, "status"],
                     "val_loss": float(r.loc[x.run_id, "val_loss"])} for x in specs]
            pick = choose(rows)
            picks[name] = pick and pick["best_lr"]
        out["choices"].append({"shape": f"{specs[0].config.n_layer}x{specs[0].config.d_model}",
                               "seed": specs[0].config.seed, "n_params": int(frames["off"].loc[specs[0].run_id,
                                                                                                "n_params"]),
                               "lr_off": picks["off"], "lr_on": picks["on"]})
    out["same_choices"] = all(c["lr_off"] == c["lr_on"] for c in out["choices"])
    out["flops_saved_fraction"] = 1 - out["on"]["flops"] / out["off"]["flops"]
    out["run_wall_saved_fraction"] = 1 - out["on"]["run_wall_s"] / out["off"]["run_wall_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", type=Path, help="a reproduce output folder (plan.toml and runs.db)")
    ap.add_argument("--plan", type=Path)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--at", type=float, nargs="+", help="check fractions, as prune_at")
    ap.add_argument("--pruned-db", type=Path, help="compare with this store of the same plan swept with pruning "
                    "(--db: the one swept with --no-prune): measured run time, FLOPs and LR choices")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    plan, db = (a.plan or a.out / "plan.toml"), (a.db or a.out / "runs.db")
    if a.pruned_db:
        print(json.dumps(measured(plan, db, a.pruned_db), indent=1))
        return
    if not a.at:
        ap.error("--at is required (or --pruned-db)")
    res = replay(plan, db, a.at)
    if a.json:
        print(json.dumps(res, indent=1))
        return
    for g in res["groups"]:
        stops = "; ".join(f"{rid[:8]} at {p['fraction']:.0%}" for rid, p in g["pruned"].items()) or "none"
        print(f"{g['shape']:>6} N={g['n_params']:>8,}: pruned {stops}; best LR {g['best_lr_off']} without, "
              f"{g['best_lr_on']} with pruning")
    if res["unfinished"]:
        print(f"{len(res['unfinished'])} LR groups left out: not every candidate has ended")
    print(f"prune_at {a.at}: saves {res['flops_saved']:.3g} of {res['total_flops']:.3g} FLOPs "
          f"({res['saved_fraction']:.1%}); same LR choices: {res['same_choices']}")


if __name__ == "__main__":
    main()
