"""Overlapping jobs take turns: two score runs into one target both finish, two first train runs
share one new MLflow store, and a job that waits too long says who holds what (exit 5)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from leadscore.pipeline.errors import EXIT_BUSY
from leadscore.pipeline.io.writeback import read_history

pytestmark = pytest.mark.e2e
AS_OF = "2026-10-01"
LEADSCORE = str(Path(sys.executable).with_name("leadscore"))


def _start(folder: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.Popen(
        [LEADSCORE, *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    stdout, stderr = process.communicate(timeout=900)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("output", ["scores.db", "scores.parquet"])
def test_two_score_runs_into_one_target_both_finish(trained_copy, output):
    folder, _ = trained_copy(6000, 3, AS_OF)
    runs = [
        _start(folder, "score", "--as-of", as_of, "--output", output)
        for as_of in ("2026-10-02", "2026-10-03")
    ]
    results = [_finish(run) for run in runs]
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    history = read_history(str(folder / output), "lead_score_history")
    assert history["batch_id"].nunique() == 2
    assert sorted({f"{t:%Y-%m-%d}" for t in pd.to_datetime(history["as_of"], utc=True)}) == [
        "2026-10-02",
        "2026-10-03",
    ]


def test_a_held_sqlite_target_makes_the_run_wait_then_exit_5(trained_copy):
    folder, _ = trained_copy(6000, 3, AS_OF)
    target = folder / "held.db"
    holder = sqlite3.connect(target, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another job's write transaction
    try:
        result = _finish(
            _start(
                folder, "score", "--as-of", AS_OF, "--output", str(target),
                "--set", "scoring.lock_timeout_s=2",
            )
        )  # fmt: skip
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == EXIT_BUSY, result.stderr
    assert str(target) in result.stderr and "held by another job" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_held_file_target_makes_the_run_wait_then_exit_5(trained_copy):
    folder, _ = trained_copy(6000, 3, AS_OF)
    target = folder / "held.parquet"
    with (folder / ".held.parquet.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another job writing the same file
        result = _finish(
            _start(
                folder, "score", "--as-of", AS_OF, "--output", str(target),
                "--set", "scoring.lock_timeout_s=2",
            )
        )  # fmt: skip
    assert result.returncode == EXIT_BUSY, result.stderr
    assert str(target) in result.stderr and "another leadscore job" in result.stderr
    assert "waited 2 s" in result.stderr  # the configured wait, reading the target included
    assert not target.exists()


@pytest.mark.postgres
def test_a_held_postgres_table_makes_the_run_wait_then_exit_5(trained_copy, postgres_url):
    folder, _ = trained_copy(6000, 3, AS_OF)
    table = f"held_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as holder:  # another writer's transaction on the same table
            holder.execute(sa.text("SELECT pg_advisory_lock(hashtext(:t))"), {"t": table})
            result = _finish(
                _start(
                    folder, "score", "--as-of", AS_OF, "--output", postgres_url,
                    "--set", f"scoring.table={table}", "--set", "scoring.lock_timeout_s=2",
                )
            )  # fmt: skip
            holder.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:t))"), {"t": table})
        assert result.returncode == EXIT_BUSY, result.stderr
        assert table in result.stderr and "held by another job" in result.stderr
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table(table)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()


def test_two_first_train_runs_share_one_new_mlflow_store(tmp_path, write_crm, small_crm):
    write_crm(small_crm, tmp_path / "data")
    assert not (tmp_path / "mlflow.db").exists()
    args = ("train", "--data", "data", "--as-of", AS_OF, "--set", "split.min_wins=10")
    # a small history: too few of marketing's leads win to train on them alone
    args += ("--set", "lifecycle.sql_from=none")
    runs = [_start(tmp_path, *args) for _ in range(2)]
    results = [_finish(run) for run in runs]
    for result in results:
        assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "mlflow.db") as conn:
        versions = conn.execute("SELECT COUNT(*) FROM model_versions").fetchone()[0]
    assert versions == 2
