"""The runtime decisions (device, compile, precision, grad scaler) and the device-specific code, checked on CPU:
resolution and refusal of bad settings, the CUDA branches fed a CUDA device (pinned non-blocking copies,
synchronised timings, NCCL set up as gloo is), tensors created on the model's device (everything runs with
`meta` as torch's default device, so a tensor created without an explicit device would fail), fp16 loss
scaling's overflow path, and bf16/fp16 runs end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import assert_clean_error, markov_tokens, run_main, small_corpus

SHAPE = ["--n-layer", "1", "--d-model", "32", "--n-ctx", "16", "--batch-size", "8", "--threads", "1",
         "--eval-tokens", "512", "--eval-every", "10", "--steps", "20", "--json"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return small_corpus(tmp_path_factory.mktemp("runtime_corpus"), 30_000)


# --- resolution ------------------------------------------------------------------------------------------------


def test_auto_on_cpu_is_eager_fp32_and_explicit_choices_hold():
    from scalinglab.train import runtime

    rt = runtime.resolve("cpu")
    assert (rt.compile, rt.precision, rt.dtype_name, rt.scaler()) == (False, "fp32", "float32", None)
    assert runtime.resolve("cpu", "false", "bf16").dtype == torch.bfloat16
    fp16 = runtime.resolve("cpu", False, "fp16")
    assert isinstance(fp16.scaler(), torch.amp.GradScaler) and fp16.dtype_name == "float16"


@pytest.mark.parametrize(("compile", "precision", "needle"), [("maybe", "auto", "compile"), ("auto", "fp8", "precision")])
def test_unknown_values_are_refused(compile, precision, needle):
    from scalinglab.errors import UserError
    from scalinglab.train import runtime

    with pytest.raises(UserError, match=needle):
        runtime.resolve("cpu", compile, precision)


def test_cuda_branches_fed_a_cuda_device(monkeypatch):
    from scalinglab.errors import UserError
    from scalinglab.train import runtime

    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(runtime, "compile_problem", lambda dev: None)
    monkeypatch.setattr(runtime, "_cuda_bf16", lambda dev: True)
    assert runtime.resolve(cuda) == runtime.Runtime(cuda, True, "bf16")
    monkeypatch.setattr(runtime, "_cuda_bf16", lambda dev: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda dev=None: "Tesla V100")
    assert runtime.resolve(cuda).precision == "fp32"  # auto: no bf16 on this GPU
    with pytest.raises(UserError, match="Tesla V100 does not support bfloat16"):
        runtime.resolve(cuda, "auto", "bf16")
    monkeypatch.setattr(runtime, "compile_problem", lambda dev: "triton is not installed")
    assert runtime.resolve(cuda).compile is False  # auto quietly stays eager
    with pytest.raises(UserError, match="compile = true but triton is not installed"):
        runtime.resolve(cuda, True)


@pytest.mark.slow  # imports torch's inductor (seconds)
def test_compile_true_without_a_cxx_compiler_exits_2_before_the_run_folder(corpus, tmp_path):
    from torch._inductor import config as inductor_config

    out = tmp_path / "run"
    # torch's own config patch: monkeypatch's undo deleted cpp.cxx from the config, so every later compile in the
    # worker process failed "no working C++ compiler"
    with inductor_config.patch({"cpp.cxx": (None, "/nonexistent/g++")}):
        assert_clean_error(run_main("train", "--corpus", corpus, "--out", out, *SHAPE, "--compile", "true"),
                           "compile = true", "C++ compiler")
    assert not out.exists()
    for flag, value in (("--compile", "sometimes"), ("--precision", "fp8")):
        assert_clean_error(run_main("train", "--corpus", corpus, "--out", out, *SHAPE, flag, value), flag)
    assert not out.exists()


def test_run_id_knows_precision_but_not_compile_and_old_ids_hold(corpus):
    from scalinglab.store.db import run_id_for

    base = {"corpus": str(corpus), "n_layer": 1, "d_model": 32, "steps": 10}
    rid = run_id_for(base)
    assert run_id_for({**base, "precision": "auto", "compile": "auto"}) == rid  # ids issued before these fields
    assert run_id_for({**base, "compile": True}) == rid
    assert run_id_for({**base, "precision": "bf16"}) != rid != run_id_for({**base, "precision": "fp32"})


# --- the CUDA-only code paths, fed a CUDA device -----------------------------------------------------------------


class _FakeHost:
    """Stands in for a host tensor: records how it is moved to a device."""

    def __init__(self):
        self.device, self.calls = torch.device("cpu"), []

    def pin_memory(self):
        self.calls.append("pin_memory")
        return self

    def to(self, device, non_blocking=False):
        self.calls.append(("to", str(device), non_blocking))
        return self


def test_host_to_device_copies_are_pinned_and_non_blocking_on_cuda():
    from scalinglab.train.runtime import to_device

    t = _FakeHost()
    to_device(t, torch.device("cuda", 0))
    assert t.calls == ["pin_memory", ("to", "cuda:0", True)]
    t = _FakeHost()
    to_device(t, torch.device("cpu"))
    assert t.calls == [("to", "cpu", False)]


def test_timings_synchronise_the_device(monkeypatch):
    from scalinglab import bench
    from scalinglab.train import runtime

    seen = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda dev=None: seen.append(str(dev)))
    runtime.synchronize(torch.device("cpu"))
    assert seen == []
    bench._sync(torch.device("cuda", 1))
    assert seen == ["cuda:1"]


@pytest.mark.parametrize(("device", "gpus", "backend"), [("cpu", 0, "gloo"), ("cuda:1", 2, "nccl"),
                                                         ("cuda:0", 1, "gloo")])
def test_nccl_setup_is_gloos_but_for_the_backend(monkeypatch, device, gpus, backend):
    """Two ranks: on CPU gloo; on two GPUs nccl, one GPU each; on one GPU both ranks share it through gloo."""
    import torch.distributed as dist

    from scalinglab.train import distributed

    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda b: calls.append(("init", b)))
    monkeypatch.setattr(dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.append("destroy"))
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", str(d))))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    ranks = distributed.Ranks(rank=1, world_size=2, local_rank=1, local_world_size=2)
    dev = ranks.device(torch.device(device.split(":")[0]))
    assert str(dev) == device
    with distributed.process_group(ranks, dev):
        pass
    expected = [("init", backend), "barrier", "destroy"]
    assert calls == ([("set_device", device)] if device != "cpu" else []) + expected


# --- tensors on the model's device -------------------------------------------------------------------------------


def test_step_evaluator_noise_scale_and_loader_create_nothing_off_the_model_device():
    """With `meta` as torch's default device, any tensor created without the model's device would be on `meta` and
    the next op mixing it with the model's (CPU) tensors, or reading its value, fails."""
    from scalinglab.config import ModelConfig
    from scalinglab.data.loader import WindowLoader
    from scalinglab.model import build_model
    from scalinglab.train.evaluate import Evaluator
    from scalinglab.train.noise_scale import MicroBatchNorms, NoiseScaleEstimator
    from scalinglab.train.optim import make_optimizer
    from scalinglab.train.step import train_step

    cpu = torch.device("cpu")
    tokens = np.asarray(markov_tokens(5_000, 64, 1), dtype=np.uint16)
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=1, d_model=32, n_ctx=16, vocab_size=64))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(model, 1e-3, device=cpu)
    with torch.device("meta"):
        loader = WindowLoader(tokens, 16, 8, seed=0)
        evaluator = Evaluator({"val": tokens}, 16, 256, 64, cpu)
        noise = NoiseScaleEstimator()
        for _ in range(3):
            x, y = loader.next_batch()
            assert x.device == y.device == cpu  # host batches, moved by runtime.to_device
            stats = train_step(x, y, forward=model, params=params, opt=opt, pieces=2, grad_clip=1.0,
                               norms=MicroBatchNorms(params))
            assert math.isfinite(stats.loss) and stats.small_sq is not None
            noise.update(stats.small_sq, stats.grad_norm**2, stats.b_small, 8)
        per_pos = evaluator(model)
    assert per_pos["val"].device == cpu and per_pos["val"].shape == (16,)
    assert all(p.device == cpu for p in model.parameters())
    assert all(t.device == cpu for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor))


# --- fp16 loss scaling ---------------------------------------------------------------------------------------------


def test_fp16_overflow_skips_the_step_and_lowers_the_scale():
    from scalinglab.config import ModelConfig
    from scalinglab.model import build_model
    from scalinglab.train.optim import make_optimizer
    from scalinglab.train.step import train_step

    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=1, d_model=32, n_ctx=16, vocab_size=64))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(model, 1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=1e38)  # scaled gradients overflow float32
    x = torch.randint(0, 64, (4, 16))
    before = [p.detach().clone() for p in params]

    def step():
        return train_step(x, x, forward=model, params=params, opt=opt, grad_clip=1.0, scaler=scaler,
                          autocast=lambda: torch.autocast("cpu", dtype=torch.float16))

    s = step()
    assert s.overflow and not s.stepped and math.isfinite(s.loss) and scaler.get_scale() == pytest.approx(5e37, rel=1e-6)
    assert all(torch.equal(a, p) for a, p in zip(before, params, strict=True))
    scaler.update(1024.0)
    s = step()
    assert s.stepped and not s.overflow and math.isfinite(s.grad_norm)
    assert not all(torch.equal(a, p) for a, p in zip(before, params, strict=True))


# --- bf16 and fp16 runs end to end -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def precisions(corpus, tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("precisions")
    out = {}
    for p in ("fp32", "bf16", "fp16"):
        proc = run_main("train", "--corpus", corpus, "--out", base / p, *SHAPE, "--precision", p, check=True)
        out[p] = json.loads(proc.stdout.strip().splitlines()[-1]) | {"dir": base / p}
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "dtype"), [("bf16", "bfloat16"), ("fp16", "float16")])
def test_low_precision_runs_end_to_end(precisions, precision, dtype):
    r, ref = precisions[precision], precisions["fp32"]
    assert r["status"] == "done" and r["precision"] == precision and r["dtype"] == dtype and r["compile"] is False
    assert ref["dtype"] == "float32"
    assert abs(r["val_loss"] - ref["val_loss"]) < 0.02  # same run, rounded differently
    assert r["noise_scale"] > 0 and len(r["val_loss_per_position"]) == 16
    ck = torch.load(r["dir"] / "checkpoint.pt", weights_only=True)
    assert ("scaler" in ck) == (precision == "fp16")
    if precision == "fp16":
        assert ck["scaler"]["scale"] > 0


@pytest.mark.slow
def test_bench_train_in_bf16_on_cpu():
    from scalinglab.bench import bench_train
    from scalinglab.config import ModelConfig

    r = bench_train(ModelConfig(n_layer=1, d_model=32, n_ctx=16, vocab_size=64), batch_size=4, steps=2,
                    warmup_steps=1, threads=1, device="cpu", precision="bf16", peak_sizes=(64,), peak_repeats=1)
    assert r["dtype"] == "bfloat16" and r["precision"] == "bf16" and math.isfinite(r["loss_last"])
