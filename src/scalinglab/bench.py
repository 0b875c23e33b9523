"""Measure training speed honestly: tokens/s, model FLOPs/s and MFU against this machine's own matmul peak.

`bench_train` times the trainer's own step (`train.step.train_step`: zero_grad, forward, backward, grad-norm
clip, AdamW step) on random tokens after warm-up steps, with the same runtime setup the trainer uses
(`train.runtime`). With `baseline=True` it also times, in the same process and interleaved step by step, a
plain eager nanoGPT-style model of the same shape (exact GELU, `torch.optim.AdamW(model.parameters())` with
default settings, torch's default threads, no compile) on that same step, so the speedup is measured side by
side under the same load.

FLOP conventions. `mfu` uses the paper's Table 1 training FLOPs per token, 3·(2N + 2·n_layer·n_ctx·d_attn) with
N the non-embedding parameters, i.e. the C = 6NBS of the scaling laws. The output head is real work the
hardware does (6·d_model·n_vocab per token) that this convention leaves out, so `mfu_with_head` adds it.
`peak_flops_per_s` is the best of timed square fp32 matmuls (bf16 on CUDA) with the same thread count. On a GPU
named in `DATASHEET_BF16_DENSE`, `mfu_datasheet` is the same model FLOP/s against the vendor's dense bf16 peak.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from scalinglab.config import ModelConfig
from scalinglab.errors import UserError
from scalinglab.train.optim import resolve_device


def _sync(device: torch.device) -> None:
    from scalinglab.train.runtime import synchronize

    synchronize(device)


def matmul_peak(
    device: str | torch.device = "cpu",
    threads: int | None = None,
    sizes: tuple[int, ...] | None = None,
    repeats: int = 5,
    dtype: torch.dtype | None = None,
) -> dict:
    """This machine's dense matmul peak: the best FLOP/s of `repeats` timed n×n @ n×n products per size.

    Uses the thread count currently set (or `threads`). Returns {"peak_flops_per_s", "by_size", "dtype"}.
    """
    dev = torch.device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    if dtype is None:
        dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    if sizes is None:
        sizes = (2048, 4096, 8192) if dev.type == "cuda" else (512, 1024, 2048)
    gen = torch.Generator().manual_seed(0)
    by_size: dict[str, float] = {}
    for n in sizes:
        a = torch.randn(n, n, generator=gen).to(dev, dtype)
        b = torch.randn(n, n, generator=gen).to(dev, dtype)
        out = torch.empty(n, n, device=dev, dtype=dtype)
        torch.mm(a, b, out=out)  # warm up (library init, page faults)
        _sync(dev)
        best = math.inf
        for _ in range(repeats):
            t = time.perf_counter()
            torch.mm(a, b, out=out)
            _sync(dev)
            best = min(best, time.perf_counter() - t)
        by_size[str(n)] = 2.0 * n**3 / best
    return {"peak_flops_per_s": max(by_size.values()), "by_size": by_size, "dtype": str(dtype).removeprefix("torch.")}


# Dense bf16 tensor-core peaks from the vendors' datasheets (FLOP/s, without sparsity), by a substring of
# `torch.cuda.get_device_name()`; the first match wins, so more specific names come first.
DATASHEET_BF16_DENSE: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM
    ("H200", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
)


def datasheet_peak(device_name: str) -> float | None:
    """The datasheet's dense bf16 peak of a GPU named like `torch.cuda.get_device_name()`, or None if unknown."""
    for key, flops in DATASHEET_BF16_DENSE:
        if key.lower() in device_name.lower():
            return flops
    return None


# --- the plain baseline: nanoGPT's model and loop as a user would first write them -------------------------


class _PlainBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.d_attn = cfg.n_heads, cfg.d_attn
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.c_attn = nn.Linear(cfg.d_model, 3 * cfg.d_attn)
        self.attn_proj = nn.Linear(cfg.d_attn, cfg.d_model)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.c_fc = nn.Linear(cfg.d_model, cfg.d_ff)
        self.gelu = nn.GELU()  # exact (erf) GELU, nanoGPT's default
        self.mlp_proj = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(self.d_attn, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, self.d_attn))
        return x + self.mlp_proj(self.gelu(self.c_fc(self.ln_2(x))))


class PlainGPT(nn.Module):
    """nanoGPT-style reference model of the same shape (and parameter count) as `model.transformer.GPT`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.n_ctx, cfg.d_model)
        n_distinct = 1 if cfg.arch == "universal" else cfg.n_layer
        self.h = nn.ModuleList([_PlainBlock(cfg) for _ in range(n_distinct)])
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for i in range(self.cfg.n_layer):
            x = self.h[0 if self.cfg.arch == "universal" else i](x)
        logits = self.lm_head(self.ln_f(x))
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


# --- timing ----------------------------------------------------------------------------------------------------


def _step_stats(times_s: list[float]) -> dict:
    ms = sorted(t * 1000.0 for t in times_s)
    q = statistics.quantiles(ms, n=10) if len(ms) >= 2 else [ms[0]] * 9
    return {
        "mean": statistics.fmean(ms),
        "median": statistics.median(ms),
        "min": ms[0],
        "max": ms[-1],
        "p10": q[0],
        "p90": q[-1],
        "std": statistics.stdev(ms) if len(ms) >= 2 else 0.0,
    }


class _Runner:
    """One model + optimiser timed on the trainer's own step (`train.step.train_step`); `step()` returns seconds."""

    def __init__(self, model, forward, opt, batches, device, grad_clip, autocast, before_step=None, scaler=None):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.forward, self.opt = forward, opt
        self.batches, self.device, self.grad_clip, self.autocast = batches, device, grad_clip, autocast
        self.before_step, self.scaler = before_step, scaler
        self.i = 0
        self.times: list[float] = []
        self.losses: list[float] = []

    def step(self) -> float:
        from scalinglab.train.step import train_step

        if self.before_step is not None:
            self.before_step()
        x, y = self.batches[self.i % len(self.batches)]
        self.i += 1
        _sync(self.device)
        t = time.perf_counter()
        stats = train_step(x, y, forward=self.forward, params=self.params, opt=self.opt, grad_clip=self.grad_clip,
                           autocast=self.autocast, scaler=self.scaler)
        _sync(self.device)
        dt = time.perf_counter() - t
        self.losses.append(stats.loss)
        return dt


def validate_bench_args(batch_size: int, steps: int, warmup_steps: int, threads: int | None) -> None:
    """Reject impossible sizes before any work (imported by the CLI before torch)."""
    if batch_size <= 0:
        raise UserError(f"--batch-size must be a positive number of sequences (got {batch_size})")
    if steps <= 0:
        raise UserError(f"--steps must be positive (got {steps})")
    if warmup_steps < 0:
        raise UserError(f"--warmup-steps must be zero or more (got {warmup_steps})")
    if threads is not None and threads <= 0:
        raise UserError(f"--threads must be positive (got {threads})")




def bench_train(
    cfg: ModelConfig,
    batch_size: int = 16,
    steps: int = 20,
    warmup_steps: int = 3,
    threads: int | None = None,
    compile: bool | str | None = None,
    device: str = "auto",
    baseline: bool = False,
    precision: str = "auto",
    lr: float = 3e-4,
    grad_clip: float = 1.0,
    seed: int = 0,
    peak_repeats: int = 5,
    peak_sizes: tuple[int, ...] | None = None,
) -> dict:
    """Time `steps` training steps of `cfg` after `warmup_steps`, and (optionally) the plain baseline.

    `batch_size` counts sequences; tokens per step = batch_size · n_ctx (the paper's B in tokens).
    Returns a flat dict (see the module docstring for the FLOP conventions); `baseline` nests the plain loop's
    figures and `speedup` = baseline median step time / tuned median step time.
    """
    from scalinglab.train import runtime

    validate_bench_args(batch_size, steps, warmup_steps, threads)
    rt = runtime.resolve(resolve_device(device, what="--device"), compile, precision)
    dev = rt.device
    if baseline and cfg.arch == "lstm":
        raise UserError("--baseline compares with a plain nanoGPT loop; use it with --arch transformer or universal")
    default_threads = torch.get_num_threads()  # torch's own choice, before we set ours
    with runtime.session(threads, dev) as n_threads:
        tuned, plain = _runners(cfg, batch_size, rt, lr, grad_clip, seed, baseline)
        if plain is not None:  # each loop runs with its own thread count
            tuned.before_step = lambda: torch.set_num_threads(n_threads)
            plain.before_step = lambda: torch.set_num_threads(default_threads)
        load_before = _loadavg()
        peak_before = matmul_peak(dev, threads=n_threads, sizes=peak_sizes, repeats=peak_repeats)
        runners = [tuned] + ([plain] if plain is not None else [])
        warm_s = {id(r): [r.step()] for r in runners}  # the first step includes compilation when compiled
        for _ in range(max(0, warmup_steps - 1)):
            for r in runners:
                warm_s[id(r)].append(r.step())
        for i in range(steps):  # interleave so both see the same machine load
            for r in runners if i % 2 == 0 else runners[::-1]:
                r.times.append(r.step())
        torch.set_num_threads(n_threads)
        # best of before/after: the peak is a property of the machine, so other load should lower it as little as possible
        peak = max(peak_before, matmul_peak(dev, threads=n_threads, sizes=peak_sizes, repeats=peak_repeats),
                   key=lambda p: p["peak_flops_per_s"])
    return _report(cfg, batch_size, steps, warmup_steps, rt, n_threads, tuned, plain, warm_s,
                   peak, [load_before, _loadavg()], default_threads)


def _runners(cfg: ModelConfig, batch_size: int, rt, lr: float, grad_clip: float,
             seed: int, baseline: bool) -> tuple[_Runner, _Runner | None]:
    """The trainer's model and optimiser, and the plain baseline's when asked, on the same random batches."""
    from scalinglab.model import build_model
    from scalinglab.train.optim import make_optimizer

    dev = rt.device
    torch.manual_seed(seed)
    model = build_model(cfg).to(dev)
    model.train()
    forward = rt.prepare(model)
    opt = make_optimizer(model, lr=lr, device=dev)
    gen = torch.Generator().manual_seed(seed)
    batches = [
        tuple(torch.randint(0, cfg.vocab_size, (batch_size, cfg.n_ctx), generator=gen).to(dev) for _ in range(2))
        for _ in range(4)
    ]
    tuned = _Runner(model, forward, opt, batches, dev, grad_clip, rt.autocast, scaler=rt.scaler())
    if not baseline:
        return tuned, None
    torch.manual_seed(seed)
    pmodel = PlainGPT(cfg).to(dev)
    popt = torch.optim.AdamW(pmodel.parameters(), lr=lr)
    return tuned, _Runner(pmodel, pmodel, popt, batches, dev, grad_clip, contextlib.nullcontext)


def _report(cfg: ModelConfig, batch_size: int, steps: int, warmup_steps: int, rt, n_threads: int,
            tuned: _Runner, plain: _Runner | None, warm_s: dict, peak: dict,
            load_average: list, default_threads: int) -> dict:
    """The flat result dict of `bench_train`."""
    from scalinglab.model.counting import count_model, flops_per_token_train

    dev, use_compile = rt.device, rt.compile
    counts = count_model(cfg)
    f_train = flops_per_token_train(cfg)
    f_head = flops_per_token_train(cfg, embedding=True)
    tokens_per_step = batch_size * cfg.n_ctx

    def figures(r: _Runner) -> dict:
        stats = _step_stats(r.times)
        tps = tokens_per_step / (stats["median"] / 1000.0)
        return {
            "tokens_per_s": tps,
            "tokens_per_s_mean": tokens_per_step / (stats["mean"] / 1000.0),
            "model_flops_per_s": f_train * tps,
            "model_flops_per_s_with_head": f_head * tps,
            "mfu": f_train * tps / peak["peak_flops_per_s"],
            "mfu_with_head": f_head * tps / peak["peak_flops_per_s"],
            "step_ms": stats,
            "step_ms_each": [round(t * 1000.0, 3) for t in r.times],
            "first_step_s": warm_s[id(r)][0],
            "loss_first": r.losses[0],
            "loss_last": r.losses[-1],
        }

    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name()
    out = {
        "device": str(dev),
        "device_name": device_name,
        "threads": n_threads,
        "dtype": rt.dtype_name,
        "precision": rt.precision,
        "compile": use_compile,
        "torch": torch.__version__,
        "arch": cfg.arch,
        "n_layer": cfg.n_layer,
        "d_model": cfg.d_model,
        "d_ff": cfg.d_ff,
        "d_attn": cfg.d_attn,
        "n_heads": cfg.n_heads,
        "n_ctx": cfg.n_ctx,
        "vocab_size": cfg.vocab_size,
        "batch_size": batch_size,
        "tokens_per_step": tokens_per_step,
        "steps": steps,
        "warmup_steps": warmup_steps,
        "n_params": counts.n_params,
        "flops_per_token_train": f_train,
        "flops_per_token_train_with_head": f_head,
        **figures(tuned),
        # the untimed warm-up steps' time beyond the steady state's median: compilation (and recompiles)
        "compile_s": sum(max(0.0, t - _step_stats(tuned.times)["median"] / 1000.0) for t in warm_s[id(tuned)])
        if use_compile else 0.0,
        "peak_flops_per_s": peak["peak_flops_per_s"],
        **datasheet_figures(device_name if dev.type == "cuda" else "", f_train * tokens_per_step
                            / (_step_stats(tuned.times)["median"] / 1000.0)),
        "peak_by_size": peak["by_size"],
        "peak_dtype": peak["dtype"],
        "mfu_convention": "mfu = Table 1 training FLOPs/token 3*(2N + 2*n_layer*n_ctx*d_attn), N non-embedding, "
        "x tokens/s / measured matmul peak; mfu_with_head adds the output head 6*d_model*n_vocab",
        "tokens_per_s_from": "median step time",
        "load_average": load_average,  # 1-min load before/after: other work on the machine skews times
        "cpu_count": os.cpu_count(),
    }
    if plain is not None:
        out["baseline"] = {
            "description": "plain eager nanoGPT-style loop: exact GELU, torch.optim.AdamW defaults, "
            "default threads, no compile; the same train_step",
            "threads": default_threads,
            **figures(plain),
        }
        out["speedup"] = out["tokens_per_s"] / out["baseline"]["tokens_per_s"]
        # each timed tuned step ran next to a baseline step: the median of the pairwise ratios is robust to
        # load from other processes that comes and goes during the measurement
        out["speedup_paired_median"] = statistics.median(b / t for b, t in zip(plain.times, tuned.times, strict=True))
    return out


def datasheet_figures(device_name: str, model_flops_per_s: float) -> dict:
    """MFU against the GPU's datasheet dense bf16 peak (None for CPUs and GPUs not in the table)."""
    peak = datasheet_peak(device_name) if device_name else None
    return {"datasheet_peak_flops_per_s": peak, "mfu_datasheet": None if peak is None else model_flops_per_s / peak}


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # pragma: no cover - Windows
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()
