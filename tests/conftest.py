"""Shared fixtures: small synthetic CRM data, real temp folders, the real CLI."""

from __future__ import annotations

import os

# Before LightGBM loads OpenMP: spinning threads crawl on a busy 2-core machine (see pipeline.cli).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import settings

from features.tables import CrmTables
from pipeline.synthetic_crm import SyntheticCrm, generate_crm

REPO = Path(__file__).resolve().parents[1]

# CI explores the same examples on every run (a landing must not depend on luck); locally each run
# explores new ones, which is how the empty-lookback dtype bug was found.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
DEMO_END = pd.Timestamp("2026-11-01", tz="UTC")


@pytest.fixture(autouse=True)
def _own_working_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own temp folder with its own MLflow store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def small_crm() -> SyntheticCrm:
    return generate_crm(n_leads=4000, seed=3)


@pytest.fixture(scope="session")
def small_tables(small_crm: SyntheticCrm) -> CrmTables:
    c = small_crm
    return CrmTables(accounts=c.accounts, leads=c.leads, activities=c.activities, deals=c.deals)


def _write_crm(crm: SyntheticCrm, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in crm.tables().items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


@pytest.fixture
def write_crm() -> Callable[[SyntheticCrm, Path], Path]:
    """Write a synthetic CRM as the canonical Parquet folder."""
    return _write_crm


@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    target = tmp_path / "configs" / "demo.yaml"
    target.parent.mkdir(exist_ok=True)
    shutil.copy(REPO / "configs" / "demo.yaml", target)
    return target


POSTGRES_URL = os.environ.get(
    "LEADSCORE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def postgres_url() -> str:
    """The real PostgreSQL server; skipped when there is none, except under CI where it must be."""
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect():
            pass
    except Exception as exc:  # any failure to reach the server
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but PostgreSQL at {POSTGRES_URL} is unreachable: {exc}")
        pytest.skip(f"no PostgreSQL server at {POSTGRES_URL} ({type(exc).__name__})")
    finally:
        engine.dispose()
    return POSTGRES_URL


RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    """Run the installed `leadscore` console script in the test's folder."""
    exe = Path(sys.executable).with_name("leadscore")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        result = subprocess.run(
            [str(exe), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"leadscore {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    return run
