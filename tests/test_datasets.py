"""Packaged published tables: the index, the data against the README's checksums, and the CLI."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from scalinglab import datasets
from scalinglab.errors import UserError
from tests.helpers import assert_clean_error, run_cli, run_main

EXPECTED = {"chinchilla_epoch_fig4": 245, "chinchilla_kyo_takano": 234, "llama3_fig2_isoflops": 133,
            "misfitting_checkpoints": 4852, "openathena_isoflops": 947}


def _readme_sha256() -> dict[str, str]:
    text = datasets.provenance()
    return {f.removesuffix(".csv"): h for h, f in re.findall(r"^([0-9a-f]{64})  (\S+\.csv)$", text, flags=re.M)}


def test_index_lists_the_five_tables_with_their_row_counts():
    assert datasets.names() == sorted(EXPECTED)
    for d in datasets.list_datasets():
        df = datasets.load(d.name)
        assert d.rows == EXPECTED[d.name] == len(df)
        assert {"N", "D", "C", "L"} <= set(df.columns)
        assert d.title and d.source and d.licence and datasets.path(d.name).is_file()


def test_bytes_match_the_published_checksums():
    """The four small files are verbatim; the gzip copy decompresses to the source's exact bytes."""
    sums = _readme_sha256()
    assert set(sums) == set(EXPECTED)
    for name, h in sums.items():
        assert hashlib.sha256(datasets.read_bytes(name)).hexdigest() == h, name
    assert datasets.path("misfitting_checkpoints").name.endswith(".csv.gz")


def test_provenance_is_the_section_of_one_table():
    text = datasets.provenance("llama3_fig2_isoflops")
    assert text.startswith("## 4. `llama3_fig2_isoflops.csv`") and "## 5." not in text
    with pytest.raises(UserError, match="unknown dataset 'nope'.*chinchilla_epoch_fig4"):
        datasets.info("nope")


def test_cli_list_show_export(tmp_path):
    listing = json.loads(run_cli("datasets", "list", "--json", check=True).stdout)
    assert [d["name"] for d in listing] == sorted(EXPECTED)
    shown = run_main("datasets", "show", "chinchilla_kyo_takano", check=True).stdout
    assert "kyo-takano/chinchilla" in shown and "234 rows" in shown
    out = tmp_path / "m.csv"
    run_main("datasets", "export", "misfitting_checkpoints", "--out", out, check=True)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == _readme_sha256()["misfitting_checkpoints"]


def test_cli_bad_names_exit_2(tmp_path):
    out = tmp_path / "keep.csv"
    out.write_text("mine\n")
    assert_clean_error(run_main("datasets", "export", "nope", "--out", out), "unknown dataset", "nope")
    assert out.read_text() == "mine\n"
    assert_clean_error(run_main("fit", "--dataset", "nope", "--law", "chinchilla"), "unknown dataset")
    assert_clean_error(run_main("fit", "--dataset", "chinchilla_kyo_takano", "--csv", out, "--law", "chinchilla"),
                       "exactly one")


def test_fit_dataset_is_the_csv_shorthand():
    args = ("--law", "chinchilla", "--query", "in_epoch_fit", "--json", "-")
    by_name = json.loads(run_main("fit", "--dataset", "chinchilla_epoch_fig4", *args, check=True).stdout)
    by_path = json.loads(run_main("fit", "--csv", datasets.path("chinchilla_epoch_fig4"), *args, check=True).stdout)
    assert by_name["source"] == "dataset:chinchilla_epoch_fig4"
    assert by_name["params"] == by_path["params"] and by_name["n_points"] == 240
