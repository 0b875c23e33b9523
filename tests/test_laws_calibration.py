"""Calibration as a tested property (issue #14 item 8): on synthetic studies with a known truth, the 95% bootstrap
interval of each family's key exponent covers the truth in 88-99% of at least 100 studies (laws/analyses/calibration.py;
the README's coverage table comes from `python -m scalinglab.laws.analyses.calibration`, with more resamples)."""

from __future__ import annotations

import pytest

from scalinglab.laws.analyses.calibration import coverage


def _check(family: str, bootstrap: int) -> None:
    r = coverage(family, studies=100, bootstrap=bootstrap, seed=11)
    assert 0.88 <= r["coverage"] <= 0.99, r


@pytest.mark.slow  # about 28 s: 100 synthetic studies with bootstrap intervals
def test_kaplan_n_final_losses_coverage():
    _check("kaplan-n", 100)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["kaplan-ns", "chinchilla", "frontier"])
def test_curve_and_grid_families_coverage(family):
    _check(family, 100)
