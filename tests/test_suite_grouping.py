"""The suite's own scheduling holds: under `-n 2 --dist loadgroup` a shared module fixture (conftest.SHARED_FIXTURES)
is built once, on one worker. If a pytest or pytest-xdist upgrade silently stops grouping, a Ray cluster or a
training fixture is built on both workers at once; this test says so instead of the suite getting slower and
busier without a word."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SUITE = '''
import os
import pytest

@pytest.fixture(scope="module")
def local_sweep():  # a name in SHARED_FIXTURES
    with open(os.environ["BUILT"], "a") as f:
        f.write(os.environ.get("PYTEST_XDIST_WORKER", "main") + "\\n")
    return 1

@pytest.mark.parametrize("i", range(6))
def test_shared(local_sweep, i):
    with open(os.environ["RAN"], "a") as f:
        f.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")

@pytest.mark.parametrize("i", range(6))
def test_plain(i):
    pass
'''


def test_a_shared_module_fixture_is_built_once_on_one_worker(tmp_path):
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n")
    (tmp_path / "test_grouped.py").write_text(SUITE)
    built, ran = tmp_path / "built.txt", tmp_path / "ran.txt"
    env = {"PYTHONPATH": str(ROOT), "BUILT": str(built), "RAN": str(ran), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p",
                           "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "12 passed" in proc.stdout
    assert len(built.read_text().split()) == 1, f"the shared fixture was built on {built.read_text().split()}"
    assert len(set(ran.read_text().split())) == 1
