"""The gpu and gpu-smoke presets meet their brief, `sweep --dry-run --peak-flops` prints GPU-hours, and the CUDA
MFU figures of `bench train` come from the datasheet table (fed a device name: no GPU here)."""

from __future__ import annotations

import json
import os

import pytest
import tomllib

from tests.helpers import assert_clean_error, run_main


def _plan(preset: str, tmp_path, corpus):
    from scalinglab.sweep.plan import load_plan

    text = run_main("reproduce", "--preset", preset, "--print-plan", check=True).stdout
    (tmp_path / "plan.toml").write_text(text)
    os.symlink(corpus, tmp_path / "corpus")
    return load_plan(tmp_path / "plan.toml"), tomllib.loads(text)


def test_gpu_preset_carries_the_cpu_presets_lessons(tmp_path, synthetic_corpus):
    from scalinglab.model.counting import count_model

    plan, raw = _plan("gpu", tmp_path, synthetic_corpus)
    vocab = raw["reproduce"]["corpus"]["vocab_size"]
    main = [s for s in plan.runs if s.family in ("main", "lr-sweep")]
    by_size: dict[tuple, list[float]] = {}
    for s in main:
        by_size.setdefault((s.config.n_layer, s.config.d_model), []).append(s.config.lr)
    assert len(by_size) >= 6 and all(len(lrs) == 3 for lrs in by_size.values())  # an LR sweep per size
    for lrs in by_size.values():
        lrs.sort()
        assert lrs[1] / lrs[0] == pytest.approx(2) and lrs[2] / lrs[1] == pytest.approx(2)
    smallest = count_model(min(main, key=lambda s: s.config.d_model).config.model(vocab))
    assert vocab * smallest.d_model < smallest.n_params  # the head does not dominate the smallest size
    assert {s.config.eval_tokens for s in plan.runs} == {raw["train"]["eval_tokens"]}  # one fixed held-out set
    scans = [s for s in plan.runs if s.family == "batch-scan"]
    assert len({s.config.batch_size for s in scans}) >= 4
    assert {(s.config.schedule, s.config.warmup) for s in scans} == {("constant", 100)}  # fixed warm-up, in steps
    branches = [s for s in plan.runs if s.family == "wsd-branches"]
    assert len({s.parent for s in branches}) >= 3 and len(branches) >= 9  # WSD branches for L(N, D)
    laws = {f["law"] for f in raw["reproduce"]["fit"]}
    assert {"lr-opt", "chinchilla", "kaplan-nd", "bcrit-scan"} <= laws


def test_gpu_smoke_exercises_compile_bf16_batch_scan_wsd_and_ddp(tmp_path, synthetic_corpus):
    plan, _ = _plan("gpu-smoke", tmp_path, synthetic_corpus)
    assert {(s.config.compile, s.config.precision) for s in plan.runs} == {(True, "bf16")}
    assert len({s.config.batch_size for s in plan.runs if s.family == "batch-scan"}) >= 4
    assert any(s.family == "wsd-branches" for s in plan.runs)
    assert [s.config.nproc_per_node for s in plan.runs if s.config.nproc_per_node > 1] == [2]


@pytest.mark.slow  # four in-process sweeps over a 14-run plan
def test_dry_run_prints_gpu_hours_at_a_stated_peak_and_mfu(tmp_path, synthetic_corpus):
    from scalinglab.cli.sweep import gpu_hours

    plan, _ = _plan("gpu-smoke", tmp_path, synthetic_corpus)
    out = json.loads(run_main("sweep", tmp_path / "plan.toml", "--dry-run", "--no-estimate", "--peak-flops", "H100",
                              "--mfu", "0.25", "--json", check=True).stdout)
    g = out["gpu"]
    assert g["peak_flops_per_s"] == 989e12 and g["mfu"] == 0.25
    assert g["flops_with_head"] > out["total_flops"]  # the head's FLOPs are work the GPU does
    assert g["gpu_hours"] == pytest.approx(g["flops_with_head"] / (989e12 * 0.25) / 3600)
    assert gpu_hours(plan, plan.vocab_size, 989e12, 0.5)["gpu_hours"] == pytest.approx(g["gpu_hours"] / 2, rel=1e-9)
    text = run_main("sweep", tmp_path / "plan.toml", "--dry-run", "--no-estimate", "--peak-flops", "2e14").stdout
    assert "GPU-hours" in text and "35% MFU" in text
    assert_clean_error(run_main("sweep", tmp_path / "plan.toml", "--dry-run", "--peak-flops", "B9000"),
                       "--peak-flops", "B9000")
    assert_clean_error(run_main("sweep", tmp_path / "plan.toml", "--dry-run", "--peak-flops", "-1"), "--peak-flops")


@pytest.mark.parametrize(("name", "peak"), [("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12),
                                            ("NVIDIA H200", 989e12), ("NVIDIA A100-SXM4-80GB", 312e12),
                                            ("NVIDIA L40S", 362e12), ("NVIDIA L4", 121e12), ("Tesla V100-SXM2", None)])
def test_datasheet_peaks_by_device_name(name, peak):
    from scalinglab.bench import datasheet_figures, datasheet_peak

    assert datasheet_peak(name) == peak
    fig = datasheet_figures(name, 1e14)
    assert fig["datasheet_peak_flops_per_s"] == peak
    assert fig["mfu_datasheet"] == (None if peak is None else pytest.approx(1e14 / peak))
    assert datasheet_figures("", 1e14) == {"datasheet_peak_flops_per_s": None, "mfu_datasheet": None}  # a CPU
