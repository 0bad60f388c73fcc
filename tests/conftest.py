"""Shared fixtures: small synthetic CRM data, real temp folders, the real CLI."""

from __future__ import annotations

import fcntl
import os

# Before LightGBM loads OpenMP: spinning threads crawl on a busy 2-core machine (see pipeline.cli).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import pickle
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import settings

from leadscore.features.tables import CrmTables
from leadscore.pipeline.synthetic_crm import SyntheticCrm, generate_crm

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


def _copy_demo_config(target: Path) -> Path:
    target.parent.mkdir(exist_ok=True)
    shutil.copy(REPO / "configs" / "demo.yaml", target)
    return target


@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    return _copy_demo_config(tmp_path / "configs" / "demo.yaml")


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


def _run_in(folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the installed `leadscore` console script in `folder`."""
    exe = Path(sys.executable).with_name("leadscore")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run(
        [str(exe), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"leadscore {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    """Run the installed `leadscore` console script in the test's folder."""

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run_in(tmp_path, *args, check=check)

    return run


Trained = tuple[Path, subprocess.CompletedProcess[str]]


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder all xdist workers of this run see (their base temps share a parent), or the
    session's own base temp without xdist."""
    base = tmp_path_factory.getbasetemp()
    # popen workers' base temps are <this run's folder>/popen-gwN; any other layout (workers
    # started over ssh or a socket) keeps its own, not to share one with other runs
    shared = os.environ.get("PYTEST_XDIST_WORKER") and base.name.startswith("popen-")
    root = base.parent if shared else base
    (root / "trained").mkdir(exist_ok=True)
    return root / "trained"


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def relocate(copy: Path, original: Path) -> None:
    """Point a copied folder's MLflow store at its own artifacts: the SQLite store and MLmodel
    files name the artifacts by absolute path. Fails if the original's path is left anywhere."""
    old, new = f"{original}/", f"{copy}/"
    with closing(sqlite3.connect(copy / "mlflow.db")) as conn, conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]:
                conn.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                    f'WHERE instr("{column}", ?) > 0',
                    (old, new, old),
                )
                hits = conn.execute(  # the bare folder too, not only paths inside it
                    f'SELECT count(*) FROM "{table}" WHERE instr("{column}", ?) > 0',
                    (str(original),),
                ).fetchone()[0]
                assert hits == 0, f"{table}.{column} still names {original}"
    for path in copy.rglob("*"):
        if not path.is_file() or path.name == "mlflow.db":
            continue
        data = path.read_bytes()
        if path.name == "MLmodel":
            data = data.replace(old.encode(), new.encode())
            path.write_bytes(data)
        assert str(original).encode() not in data, f"{path} names {original}: relocate it too"


@pytest.fixture(scope="session")
def _trained_once(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int, int, str], Trained]:
    """Demo data and a model trained on it, made once per (leads, seed, as-of) per test run: the
    xdist workers share it through a file lock. Tests read copies (`trained_copy`), never it."""
    root = _shared_root(tmp_path_factory)

    def make(leads: int, seed: int, as_of: str) -> Trained:
        name = f"{leads}-{seed}-{as_of}"
        folder, done = root / name, root / f"{name}.train.pickle"
        with _exclusive(root / f"{name}.lock"):
            if not done.exists():
                shutil.rmtree(folder, ignore_errors=True)  # a worker that died while training
                folder.mkdir()
                _copy_demo_config(folder / "configs" / "demo.yaml")
                _run_in(
                    folder,
                    "demo-data",
                    "--out",
                    "demo_data",
                    "--leads",
                    str(leads),
                    "--seed",
                    str(seed),
                )
                train = _run_in(folder, "train", "--as-of", as_of)
                marker = done.with_name(f".{done.name}.tmp")
                marker.write_bytes(pickle.dumps(train))
                marker.replace(done)  # whole or absent, never cut short
        return folder, pickle.loads(done.read_bytes())

    return make


def copy_trained(original: Path, target: Path) -> Path:
    """A copy of a trained folder with its own MLflow store and artifacts."""
    shutil.copytree(original, target, dirs_exist_ok=True)
    relocate(target, original)
    return target


@pytest.fixture
def trained_copy(
    _trained_once: Callable[[int, int, str], Trained], tmp_path: Path
) -> Callable[[int, int, str], Trained]:
    """This test's own copy of a trained folder: its data, config, scores, MLflow store and model
    artifacts, which it may change freely."""

    def copy(leads: int, seed: int, as_of: str) -> Trained:
        folder, train = _trained_once(leads, seed, as_of)
        return copy_trained(folder, tmp_path), train

    return copy
