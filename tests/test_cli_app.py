"""The app as a whole: assembled downward (importing it gives every command), driven by typer's CliRunner, and
`train` options generated from TrainConfig, with --config FILE and --set KEY=VALUE."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.helpers import assert_clean_error, run_main


def test_imported_app_is_complete_and_cli_runner_drives_it():
    from scalinglab.cli import app

    runner = CliRunner()
    listing = runner.invoke(app, ["--help"])
    assert listing.exit_code == 0
    for name in ("count", "corpus", "train", "bench", "sweep", "runs", "fit", "plan", "predict", "report",
                 "reproduce", "datasets", "import"):
        assert f"  {name}" in listing.output, name
    res = runner.invoke(app, ["count", "--n-layer", "2", "--d-model", "64", "--n-ctx", "32", "--vocab", "100",
                              "--json"])
    assert res.exit_code == 0, res.output
    from scalinglab.config import ModelConfig
    from scalinglab.model.counting import count_model

    expected = count_model(ModelConfig(n_layer=2, d_model=64, n_ctx=32, vocab_size=100)).n_params
    assert json.loads(res.output)["n_params"] == expected


def test_every_train_config_field_is_a_train_option():
    from scalinglab.cli import app
    from scalinglab.config import TrainConfig

    help_text = CliRunner().invoke(app, ["train", "--help"], terminal_width=200).output
    for name in TrainConfig.model_fields:
        assert "--" + name.replace("_", "-") in help_text, name
    assert "--untie-embeddings" in help_text and "[default: 128]" in help_text


def test_config_file_set_and_flags_give_the_same_run_as_flags_alone(tmp_path, synthetic_corpus):
    from scalinglab.cli.train import train_config

    (tmp_path / "corpus").symlink_to(synthetic_corpus)
    run = tmp_path / "run.toml"
    run.write_text('[train]\ncorpus = "corpus"\nn_layer = 1\nd_model = 16\nsteps = 9\nlr = 1e-3\n')
    by_file = train_config({"n_ctx": 32}, str(run), ["steps=4", "eval_every=log", "early_stop=true"])
    by_flags = train_config({"corpus": str((tmp_path / "corpus").resolve()), "n_layer": 1, "d_model": 16,
                             "n_ctx": 32, "steps": 4, "lr": "1e-3", "early_stop": True})
    assert by_file == by_flags
    assert by_file.steps == 4 and by_file.lr == 1e-3 and by_file.eval_every == "log"  # --set wins over the file


@pytest.mark.slow
def test_train_from_a_config_file_runs(tmp_path, synthetic_corpus):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'corpus = "{synthetic_corpus}"\nn_layer = 1\nd_model = 16\nn_ctx = 16\nbatch_size = 2\n'
                   'steps = 2\neval_tokens = 256\nthreads = 1\n')
    res = run_main("train", "--config", cfg, "--set", "seed=3", "--out", tmp_path / "r", "--json", check=True)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["status"] == "done" and out["steps"] == 2
    assert json.loads((tmp_path / "r" / "config.json").read_text())["seed"] == 3


@pytest.mark.parametrize(("args", "needles"), [
    (["--lr", "fast"], ["--lr", "valid number or 'auto'", "fast"]),
    (["--schedule", "step"], ["--schedule", "'cosine'"]),
    (["--set", "stpes=4"], ["--set stpes", "not permitted"]),
    (["--set", "lr"], ["--set expects KEY=VALUE"]),
    (["--config", "missing.toml"], ["--config", "not found"]),
    (["--config", "bad.toml"], ["bad.toml", "not valid TOML"]),
    (["--config", "zero.toml"], ["zero.toml: n_layer", "greater than 0"]),
])
def test_train_option_errors_name_where_the_value_came_from(tmp_path, args, needles):
    (tmp_path / "bad.toml").write_text("n_layer = \n")
    (tmp_path / "zero.toml").write_text("n_layer = 0\n")
    args = [str(tmp_path / a) if a.endswith(".toml") else a for a in args]
    base = ["train", "--corpus", tmp_path, "--out", tmp_path / "run", "--d-model", "16", "--steps", "2"]
    if "--config" not in args:
        base += ["--n-layer", "1"]
    assert_clean_error(run_main(*base, *args), *needles)
    assert not (tmp_path / "run").exists()


def test_missing_required_setting_names_its_flag(tmp_path):
    assert_clean_error(run_main("train", "--out", tmp_path / "run"), "--corpus", "required")


def test_ctrl_c_in_a_command_exits_130_with_one_line(monkeypatch):
    from scalinglab.model import counting

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(counting, "count_model", interrupted)
    res = run_main("count", "--n-layer", "1", "--d-model", "8")
    assert res.returncode == 130 and res.stderr.strip() == "interrupted" and "Traceback" not in res.stderr
