"""Exact parameter counts and Table 1 FLOPs, against published facts, the real modules and the CLI."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalinglab.config import ModelConfig
from scalinglab.model import build_model
from scalinglab.model.counting import (
    PF_DAY,
    count_model,
    count_non_embedding,
    flops_per_token_forward,
    flops_per_token_train,
    n_params_closed_form,
)
from tests.helpers import assert_clean_error, run_cli, run_main


def cfg(**kw) -> ModelConfig:
    base = dict(n_layer=2, d_model=64, n_ctx=32, vocab_size=100)
    return ModelConfig(**{**base, **kw})


def test_gpt2_small_exact():
    c = cfg(n_layer=12, d_model=768, n_ctx=1024, vocab_size=50257)
    assert n_params_closed_form(c) == 85_056_000
    assert count_model(c).n_params_approx == 12 * 12 * 768**2 == 84_934_656


def test_pythia_70m_shape_exact():
    c = cfg(n_layer=6, d_model=512, n_ctx=2048, vocab_size=50304)
    assert n_params_closed_form(c) == 18_915_328
    assert count_model(c).n_params_approx == 18_874_368


@settings(max_examples=25, deadline=None)
@given(
    n_layer=st.integers(1, 4),
    d_model=st.sampled_from([8, 16, 24, 64]),
    ff_mult=st.sampled_from([1, 2, 4]),
    attn_mult=st.sampled_from([0.5, 1, 2]),
    tie=st.booleans(),
)
def test_closed_form_matches_real_module(n_layer, d_model, ff_mult, attn_mult, tie):
    c = cfg(n_layer=n_layer, d_model=d_model, d_ff=ff_mult * d_model, d_attn=int(attn_mult * d_model),
            n_heads=2, tie_embeddings=tie)
    model = build_model(c)
    assert count_non_embedding(model) == n_params_closed_form(c)
    total = sum(p.numel() for p in model.parameters())
    m = count_model(c)
    assert total == m.n_params_total
    assert m.n_params_approx == 2 * d_model * n_layer * (2 * c.d_attn + c.d_ff)


@given(n_layer=st.integers(1, 48), d_model=st.integers(1, 4096))
def test_approx_is_12_L_d2_for_default_shape(n_layer, d_model):
    c = ModelConfig(n_layer=n_layer, d_model=d_model, n_ctx=8, vocab_size=10, n_heads=1)
    assert count_model(c).n_params_approx == 12 * n_layer * d_model**2


def test_table1_flops():
    c = cfg(n_layer=12, d_model=768, n_ctx=1024, vocab_size=50257)
    n = 85_056_000
    assert flops_per_token_forward(c) == 2 * n + 2 * 12 * 1024 * 768
    assert flops_per_token_forward(c, context=False) == 2 * n
    assert flops_per_token_train(c) == 3 * flops_per_token_forward(c)
    assert flops_per_token_train(c, context=False) == 6 * n
    assert flops_per_token_train(c, embedding=True) == 3 * (2 * n + 2 * 12 * 1024 * 768 + 2 * 768 * 50257)
    assert PF_DAY == 8.64e19


def test_embedding_count():
    m = count_model(cfg(n_layer=12, d_model=768, n_ctx=1024, vocab_size=50257))
    assert m.n_embedding == (50257 + 1024) * 768
    assert m.n_head == 50257 * 768


def test_count_cli_json():
    proc = run_cli("count", "--n-layer", 12, "--d-model", 768, "--n-ctx", 1024, "--vocab", 50257, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["n_params"] == 85_056_000
    assert out["n_params_approx"] == 84_934_656
    for key in ("n_embedding", "flops_per_token_forward", "flops_per_token_train"):
        assert key in out


def test_count_cli_table():
    proc = run_main("count", "--n-layer", 6, "--d-model", 512)
    assert proc.returncode == 0
    assert "18,915,328" in proc.stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--n-layer", "0", "--d-model", "64"], "n_layer"),
        (["--n-layer", "2", "--d-model", "-3"], "d_model"),
        (["--n-layer", "2", "--d-model", "64", "--n-heads", "3"], "n_heads"),
        (["--n-layer", "2", "--d-model", "64", "--arch", "rnn"], "arch"),
        (["--n-layer", "two", "--d-model", "64"], "n-layer"),
        (["--d-model", "64"], "n-layer"),
    ],
)
def test_count_cli_bad_input(args, needle):
    assert_clean_error(run_main("count", *args), needle)


def test_version_and_help():
    assert run_main("--version").stdout.startswith("scalinglab ")
    assert "Usage" in run_main("count", "--help").stdout
