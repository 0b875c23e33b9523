"""LSTM and recurrent ("universal") Transformer: exact counts vs real modules, FLOPs vs hand arithmetic,
weight sharing, gradients, the `count` CLI, and that both actually learn (paper §3.2.1, Figs. 7 and 17)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scalinglab.config import ModelConfig
from scalinglab.model import build_model
from scalinglab.model.counting import (
    count_model,
    count_non_embedding,
    flops_per_token_forward,
    flops_per_token_train,
    n_params_approx,
    n_params_closed_form,
    transformer_block_params,
)
from scalinglab.model.lstm import LSTMLM, lstm_flops_per_token_forward, lstm_params
from scalinglab.model.transformer import GPT
from tests.helpers import assert_clean_error, run_main


def cfg(**kw) -> ModelConfig:
    base = dict(n_layer=2, d_model=32, n_ctx=16, vocab_size=50)
    return ModelConfig(**{**base, **kw})


# --- exact parameter counts -------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(n_layer=st.integers(1, 4), d_model=st.sampled_from([1, 4, 8, 24, 64]), tie=st.booleans(),
       vocab=st.integers(2, 300))
def test_lstm_closed_form_matches_real_module(n_layer, d_model, tie, vocab):
    c = cfg(arch="lstm", n_layer=n_layer, d_model=d_model, vocab_size=vocab, tie_embeddings=tie)
    model = build_model(c)
    assert isinstance(model, LSTMLM)
    n = count_non_embedding(model)
    assert n == n_params_closed_form(c) == lstm_params(n_layer, d_model)
    assert n == n_layer * (8 * d_model**2 + 8 * d_model) + 2 * d_model
    m = count_model(c)
    assert m.n_embedding == vocab * d_model  # no position table
    assert sum(p.numel() for p in model.parameters()) == m.n_params_total
    assert m.n_params_approx == n_params_approx(c) == 8 * n_layer * d_model**2


@settings(max_examples=20, deadline=None)
@given(n_layer=st.integers(1, 6), d_model=st.sampled_from([8, 16, 24, 64]), ff_mult=st.sampled_from([1, 2, 4]),
       attn_mult=st.sampled_from([0.5, 1, 2]), tie=st.booleans())
def test_universal_closed_form_matches_real_module(n_layer, d_model, ff_mult, attn_mult, tie):
    c = cfg(arch="universal", n_layer=n_layer, d_model=d_model, d_ff=ff_mult * d_model,
            d_attn=int(attn_mult * d_model), n_heads=2, tie_embeddings=tie)
    model = build_model(c)
    assert isinstance(model, GPT) and len(model.h) == 1
    block = transformer_block_params(d_model, c.d_ff, c.d_attn)
    assert count_non_embedding(model) == n_params_closed_form(c) == block + 2 * d_model
    m = count_model(c)
    assert sum(p.numel() for p in model.parameters()) == m.n_params_total
    assert m.n_params_approx == 2 * d_model * (2 * c.d_attn + c.d_ff)  # one block, whatever n_layer
    # the same shape unshared has n_layer blocks, and the same compute per token
    t = cfg(**{**c.model_dump(), "arch": "transformer"})
    assert n_params_closed_form(t) == n_layer * block + 2 * d_model
    assert flops_per_token_forward(c) == flops_per_token_forward(t)


def test_universal_gpt2_small_shape():
    c = cfg(arch="universal", n_layer=12, d_model=768, n_ctx=1024, vocab_size=50257)
    block = 12 * 768**2 + 2 * 2 * 768 + 3 * 768 + 768 + 4 * 768 + 768  # weights + LNs + biases
    assert block == 7_087_872
    assert n_params_closed_form(c) == block + 2 * 768 == 7_089_408
    assert count_model(c).n_params_approx == 12 * 768**2
    # 12 passes of the block cost what GPT-2 small (85,056,000 params) costs
    assert flops_per_token_forward(c, context=False) == 2 * 85_056_000


# --- FLOPs against hand arithmetic --------------------------------------------------------------------


def test_lstm_flops_by_hand():
    # n_layer 2, d 256: per layer 2·(4·256·256 + 4·256·256) matmul FLOPs + 2·(2·4·256) for the biases
    # + 13·256 elementwise (4 gate sums, 5 nonlinearities, 3 for c, 1 for h); + 2·2·256 for the final LN.
    per_layer = 2 * 8 * 256 * 256 + 2 * 8 * 256 + 13 * 256
    assert per_layer == 1_056_000
    expected = 2 * per_layer + 2 * 2 * 256
    assert expected == 2_113_024
    assert lstm_flops_per_token_forward(2, 256) == expected
    c = cfg(arch="lstm", n_layer=2, d_model=256, n_ctx=128, vocab_size=256)
    assert flops_per_token_forward(c) == expected
    assert flops_per_token_forward(c, context=False) == expected  # no context term
    assert flops_per_token_forward(cfg(**{**c.model_dump(), "n_ctx": 4096})) == expected
    assert flops_per_token_train(c) == 3 * expected
    assert flops_per_token_train(c, embedding=True) == 3 * (expected + 2 * 256 * 256)
    assert flops_per_token_forward(c) == 2 * lstm_params(2, 256) + 2 * 13 * 256


def test_universal_flops_by_hand():
    # n_layer 2, d 256, n_ctx 128: one block is 12·256² + 3328 biases/LN = 789,760 parameters, run twice.
    c = cfg(arch="universal", n_layer=2, d_model=256, n_ctx=128, vocab_size=256)
    block = 12 * 256**2 + 4 * 256 + 3 * 256 + 256 + 4 * 256 + 256
    assert block == 789_760
    assert n_params_closed_form(c) == 790_272
    no_ctx = 2 * (2 * block + 2 * 256)
    assert flops_per_token_forward(c, context=False) == no_ctx == 3_160_064
    assert flops_per_token_forward(c) == no_ctx + 2 * 2 * 128 * 256 == 3_291_136
    assert flops_per_token_train(c) == 3 * 3_291_136
    # compute per parameter grows with depth: a 6-pass model does ~6× the FLOPs of its N
    deep = cfg(arch="universal", n_layer=6, d_model=256, n_ctx=128, vocab_size=256)
    assert n_params_closed_form(deep) == n_params_closed_form(c)
    ratio = flops_per_token_forward(deep, context=False) / (2 * n_params_closed_form(deep))
    assert 5.9 < ratio < 6.0


# --- the modules themselves ---------------------------------------------------------------------------


def test_universal_shares_one_block_across_passes():
    torch.manual_seed(0)
    c = cfg(arch="universal", n_layer=3, d_model=32, n_heads=2)
    model = build_model(c).eval()
    blocks = model.blocks()
    assert len(blocks) == 3 and all(b is model.h[0] for b in blocks)
    idx = torch.randint(0, c.vocab_size, (2, 10))
    x = model.wte(idx) + model.wpe(torch.arange(10))
    for _ in range(3):
        x = model.h[0](x)
    torch.testing.assert_close(model.hidden(idx), model.ln_f(x))
    # one pass fewer gives a different function: the passes really are applied
    x2 = model.wte(idx) + model.wpe(torch.arange(10))
    for _ in range(2):
        x2 = model.h[0](x2)
    assert not torch.allclose(model.ln_f(x2), model.hidden(idx))


def test_universal_residual_init_scales_with_passes():
    torch.manual_seed(0)
    for n_layer in (1, 8):
        model = build_model(cfg(arch="universal", n_layer=n_layer, d_model=256))
        std = model.h[0].mlp.c_proj.weight.std().item()
        assert std == pytest.approx(0.02 / math.sqrt(2 * n_layer), rel=0.02)


@pytest.mark.parametrize("arch", ["lstm", "universal"])
@pytest.mark.parametrize("tie", [False, True])
def test_forward_backward(arch, tie):
    torch.manual_seed(0)
    c = cfg(arch=arch, n_layer=2, d_model=32, dropout=0.1, tie_embeddings=tie)
    model = build_model(c)
    idx = torch.randint(0, c.vocab_size, (3, c.n_ctx))
    tgt = torch.randint(0, c.vocab_size, (3, c.n_ctx))
    logits, loss = model(idx, tgt)
    assert logits.shape == (3, c.n_ctx, c.vocab_size)
    assert loss.item() == pytest.approx(math.log(c.vocab_size), abs=0.3)  # near-uniform at init
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    model.eval()
    per_tok = model.loss_per_token(idx, tgt)
    assert per_tok.shape == (3, c.n_ctx)
    torch.testing.assert_close(per_tok.mean(), model(idx, tgt)[1])
    assert model.hidden(idx).shape == (3, c.n_ctx, c.d_model)


def test_lstm_is_causal_and_starts_each_window_fresh():
    torch.manual_seed(0)
    model = build_model(cfg(arch="lstm")).eval()
    idx = torch.randint(0, 50, (1, 12))
    changed = idx.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 50
    h, h2 = model.hidden(idx), model.hidden(changed)
    torch.testing.assert_close(h[:, :8], h2[:, :8])  # future tokens do not leak backwards
    assert not torch.allclose(h[:, 8:], h2[:, 8:])
    batch = torch.cat([idx, changed])
    torch.testing.assert_close(model.hidden(batch)[0], h[0])  # no state carried between sequences


def test_lstm_rejects_other_arch():
    with pytest.raises(ValueError, match="lstm"):
        LSTMLM(cfg(arch="transformer"))


# --- the CLI ------------------------------------------------------------------------------------------


def _count_json(*args) -> dict:
    proc = run_main("count", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_count_cli_lstm_json():
    out = _count_json("--arch", "lstm", "--n-layer", 2, "--d-model", 256, "--n-ctx", 128, "--vocab", 256)
    assert out["arch"] == "lstm"
    assert out["n_params"] == 1_053_184
    assert out["n_params_approx"] == 8 * 2 * 256**2
    assert out["n_embedding"] == 256 * 256
    assert out["flops_per_token_forward"] == 2_113_024
    assert out["flops_per_token_train"] == out["flops_per_token_train_no_context"] == 3 * 2_113_024


def test_count_cli_universal_json_and_table():
    out = _count_json("--arch", "universal", "--n-layer", 2, "--d-model", 256, "--n-ctx", 128, "--vocab", 256)
    assert out["arch"] == "universal"
    assert out["n_params"] == 790_272
    assert out["n_params_approx"] == 12 * 256**2
    assert out["n_embedding"] == (256 + 128) * 256
    assert out["flops_per_token_forward"] == 3_291_136
    proc = run_main("count", "--arch", "universal", "--n-layer", 2, "--d-model", 256, "--n-ctx", 128, "--vocab", 256)
    assert proc.returncode == 0, proc.stderr
    assert "790,272" in proc.stdout and "universal" in proc.stdout


def test_count_cli_bad_arch():
    assert_clean_error(run_main("count", "--arch", "gru", "--n-layer", 2, "--d-model", 64), "arch")


# --- they learn ---------------------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """Two xdist workers on two cores: one torch thread each avoids oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["lstm", "universal"])
def test_learns_synthetic_corpus(arch, synthetic_corpus, one_thread):
    """A tiny model, 60 AdamW steps on the Markov corpus: loss on unseen windows falls well below ln(vocab).

    The windows are from the train split's Markov chain (the fixture's val split is a different chain);
    60 batches of 16 windows out of 200k tokens almost never revisit them, and a 256×4 transition table is
    learnt, not memorised.
    """
    from scalinglab.data.corpus import Corpus
    from scalinglab.data.loader import WindowLoader, fixed_windows, windows
    from scalinglab.train.optim import make_optimizer

    torch.manual_seed(0)
    corpus = Corpus.open(synthetic_corpus)
    c = ModelConfig(arch=arch, n_layer=2, d_model=64, n_ctx=32, vocab_size=corpus.vocab_size)
    model = build_model(c)
    opt = make_optimizer(model, lr=1e-2, weight_decay=0.0)
    train = corpus.tokens("train")
    loader = WindowLoader(train, c.n_ctx, batch_size=16, seed=0)
    tail = len(train) - 8192
    ex, ey = windows(train, tail + fixed_windows(train[tail:], c.n_ctx, 4096), c.n_ctx)

    def held_out_loss() -> float:
        model.eval()
        with torch.no_grad():
            loss = model(ex, ey)[1].item()
        model.train()
        return loss

    before = held_out_loss()
    for _ in range(60):
        x, y = loader.next_batch()
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    after = held_out_loss()
    assert before == pytest.approx(np.log(corpus.vocab_size), abs=0.3)
    assert after < before - 2.0, (before, after)


# --- the comparisons preset plan ----------------------------------------------------------------------


def test_comparisons_preset_plan(tmp_path, synthetic_corpus):
    """The shipped plan parses, holds each study, and its constant-LR runs match the decays' LR area."""
    from importlib import resources

    from scalinglab.model.counting import n_params_closed_form as n_of
    from scalinglab.sweep.plan import load_plan
    from scalinglab.train.schedule import lr_at, warmup_steps

    text = resources.files("scalinglab").joinpath("presets/comparisons.toml").read_text(encoding="utf-8")
    (tmp_path / "comparisons.toml").write_text(text, encoding="utf-8")
    (tmp_path / "corpus").symlink_to(synthetic_corpus, target_is_directory=True)
    runs = [r.config for r in load_plan(tmp_path / "comparisons.toml").runs]
    by_arch = {a: [c for c in runs if c.arch == a] for a in ("transformer", "lstm", "universal")}
    assert len(by_arch["lstm"]) >= 5 and len(by_arch["universal"]) >= 3
    # LSTMs span the same decade of N as the cosine-auto Transformer family
    family = sorted(n_of(c.model()) for c in by_arch["transformer"] if c.lr == "auto" and c.d_ff == 4 * c.d_model
                    and c.n_heads == 1)
    lstm_n = sorted(n_of(c.model()) for c in by_arch["lstm"])
    assert lstm_n[0] < 2 * family[0] and lstm_n[-1] > family[-1] / 2
    # shape study: several aspect ratios, d_ff ratios and head counts at N within 20% of 1e5
    near = [c for c in by_arch["transformer"] if abs(math.log(n_of(c.model()) / 1e5)) < math.log(1.2)]
    assert len({c.d_model / c.n_layer for c in near}) >= 5
    assert len({c.d_ff / c.d_model for c in near}) >= 4
    assert len({c.n_heads for c in near}) >= 4

    def area(c) -> float:
        w = warmup_steps(c.warmup, c.total_steps)
        return sum(lr_at(s, peak=float(c.lr), total_steps=c.total_steps, warmup=w, schedule=c.schedule,
                         min_lr_ratio=c.min_lr_ratio) for s in range(1, c.total_steps + 1))

    fixed = [c for c in runs if c.lr != "auto" and c.arch == "transformer"]
    areas = {c.schedule: set() for c in fixed}
    for c in fixed:
        areas[c.schedule].add(round(area(c), 3))
    assert set(areas) == {"cosine", "linear", "constant"}
    assert areas["cosine"] == areas["linear"] == areas["constant"] and len(areas["cosine"]) == 2
