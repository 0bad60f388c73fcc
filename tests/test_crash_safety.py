"""Fault injection: a score run killed at any instant leaves its target entirely old or entirely
new, and the next run cleans up and succeeds.

Two tiers. The file commit (current + history replaced as one) is crashed deterministically at
every file-system step it takes, in a child process. The real CLI is killed with SIGKILL at
seeded random points of its write, for every kind of target (SQLite, PostgreSQL, Parquet, CSV).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from leadscore.pipeline.io.file_commit import journal_path, recover
from leadscore.pipeline.io.writeback import read_current, read_history

pytestmark = pytest.mark.e2e

TRAINED_AS_OF = "2026-10-01"
# kills per target: the transactional targets get three; the file targets two, as their commit
# is also crashed at every step it takes (test_file_commit_crashed_at_every_step...)
TRIALS = {"sql": 3, "files": 2}

CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import pandas as pd
    from leadscore.pipeline.io import file_commit

    crash_at = int(sys.argv[1])
    folder = Path(sys.argv[2])
    steps = 0

    def step(real):
        def wrapped(*args, **kwargs):
            global steps
            if steps == crash_at:
                os._exit(137)  # as SIGKILL: no cleanup, no flush
            steps += 1
            return real(*args, **kwargs)
        return wrapped

    os.replace = step(os.replace)
    os.fsync = step(os.fsync)
    os.unlink = step(os.unlink)
    paths = [folder / "scores.parquet", folder / "scores.history.parquet"]
    with file_commit.locked(paths, 10, "test"):
        with file_commit.replaced_together(paths) as temps:
            pd.DataFrame({"v": ["new"] * 3}).to_parquet(temps[0])
            pd.DataFrame({"v": ["old", "new"]}).to_parquet(temps[1])
    print(steps)
    """
)


def _files_state(folder: Path) -> tuple[list[str], list[str]]:
    current = pd.read_parquet(folder / "scores.parquet")["v"].tolist()
    history = pd.read_parquet(folder / "scores.history.parquet")["v"].tolist()
    return current, history


def test_file_commit_crashed_at_every_step_is_all_old_or_all_new(tmp_path):
    old = (["old"] * 2, ["old"])
    new = (["new"] * 3, ["old", "new"])
    seen = set()
    crash_at = 0
    while True:
        folder = tmp_path / f"crash-{crash_at}"
        folder.mkdir()
        pd.DataFrame({"v": old[0]}).to_parquet(folder / "scores.parquet")
        pd.DataFrame({"v": old[1]}).to_parquet(folder / "scores.history.parquet")
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(crash_at), str(folder)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert child.returncode in (0, 137), child.stderr
        paths = [folder / "scores.parquet", folder / "scores.history.parquet"]
        recover(paths)
        state = _files_state(folder)
        assert state in (old, new), f"crash at step {crash_at}: {state}"
        seen.add("new" if state == new else "old")
        leftovers = [p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".commit"))]
        assert leftovers == [], f"crash at step {crash_at}: {leftovers}"
        if child.returncode == 0:  # the child finished: every step has been crashed once
            break
        crash_at += 1
    assert crash_at >= 6  # fsyncs, the journal's rename, two renames, the journal's removal
    assert seen == {"old", "new"}  # crashes before the commit point and after it


def test_recover_finishes_a_committed_replacement_and_drops_an_uncommitted_one(tmp_path):
    target = tmp_path / "scores.csv"
    target.write_text("v\nold\n")
    committed = tmp_path / ".scores.csv.abc.tmp"
    committed.write_text("v\nnew\n")
    journal_path(target).write_text('{"renames": [[".scores.csv.abc.tmp", "scores.csv"]]}')
    stray = tmp_path / ".scores.csv.zzz.tmp"
    recover([target])
    assert target.read_text() == "v\nnew\n"
    assert not committed.exists() and not journal_path(target).exists()
    stray.write_text("half")
    recover([target])
    assert not stray.exists() and target.read_text() == "v\nnew\n"


# -- the real CLI, killed with SIGKILL during its write ------------------------------------------


def _state(output: str, table: str, history_table: str) -> tuple[str | None, int]:
    """(as_of of the current scores, number of history batches), read as leadscore reads them.

    The current rows must all come from one batch, and that batch must be the history's newest:
    a current table from one run beside a history from another is the mix a crash must not
    leave."""
    current, _ = read_current(output, table, history_table)
    history = read_history(output, history_table)
    as_of = None
    if current is not None and len(current):
        stamps = pd.to_datetime(current["as_of"], utc=True).unique()
        assert len(stamps) == 1, f"current scores mix batches: {stamps}"
        as_of = f"{stamps[0]:%Y-%m-%d}"
        newest = pd.to_datetime(history["as_of"], utc=True).max()
        assert f"{newest:%Y-%m-%d}" == as_of, f"current {as_of}, newest history {newest}"
    batches = 0 if history is None else history["batch_id"].nunique()
    return as_of, batches


def _integrity(output: str, folder: Path) -> None:
    if output.endswith(".db"):
        with sqlite3.connect(folder / output) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def _launch(folder: Path, args: list[str]) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("leadscore")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        [str(exe), *args],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_until_write(process: subprocess.Popen[str]) -> float:
    """Read the job's step lines until scoring is done and the write begins; its time."""
    assert process.stderr is not None
    for line in process.stderr:
        if "✓ Building features, scoring and explaining" in line:
            return time.monotonic()
    raise AssertionError(f"the job ended before its write (exit {process.wait()})")


def _write_seconds(folder: Path, args: list[str]) -> float:
    """How long the write step takes here: from the end of scoring to the write's ✓ line."""
    process = _launch(folder, args)
    started = _run_until_write(process)
    assert process.stderr is not None
    for line in process.stderr:
        if "✓ Writing" in line:
            written = time.monotonic()
            break
    else:
        raise AssertionError("no write step line")
    assert process.wait(timeout=300) == 0
    return written - started


@pytest.fixture
def postgres_target(postgres_url):
    """A PostgreSQL URL whose score tables this test owns (dropped afterwards)."""
    suffix = uuid.uuid4().hex[:8]
    yield postgres_url, f"lead_scores_{suffix}", f"lead_score_history_{suffix}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        for name in (f"lead_scores_{suffix}", f"lead_score_history_{suffix}"):
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
    engine.dispose()


def _kill_trials(
    folder: Path,
    output: str,
    seed: int,
    table: str = "lead_scores",
    history_table: str = "lead_score_history",
) -> None:
    rng = random.Random(seed)
    spill = folder / "spill"
    spill.mkdir()
    sets = [f"scoring.table={table}", f"scoring.history_table={history_table}"]
    sets.append(f"scoring.spill_dir={spill}")

    def state() -> tuple[str | None, int]:
        return _state(output, table, history_table)

    def args(as_of: str) -> list[str]:
        return ["score", "--as-of", as_of, "--output", output] + [
            x for s in sets for x in ("--set", s)
        ]

    base = pd.Timestamp(TRAINED_AS_OF)
    window = _write_seconds(folder, args(f"{base:%Y-%m-%d}"))  # also the first, old state
    outcomes = []
    trials = TRIALS["files"] if output.endswith((".parquet", ".csv")) else TRIALS["sql"]
    for trial in range(1, trials + 1):
        as_of = f"{base + pd.Timedelta(days=trial):%Y-%m-%d}"
        before = state()
        process = _launch(folder, args(as_of))
        _run_until_write(process)
        time.sleep(rng.uniform(0, window))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        _integrity(output, folder)
        after = state()
        new = (as_of, before[1] + 1)
        assert after in (before, new), f"trial {trial}: {before} -> {after} (new would be {new})"
        outcomes.append("new" if after == new else "old")
        finished = subprocess.run(
            [str(Path(sys.executable).with_name("leadscore")), *args(as_of)],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert finished.returncode == 0, finished.stderr
        assert state()[0] == as_of
        _integrity(output, folder)
        leftovers = [p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".commit"))] + [
            p.name for p in spill.iterdir()
        ]
        assert leftovers == [], f"trial {trial}: {leftovers} left behind"
    print(f"kills left {outcomes}")


@pytest.mark.parametrize("output", ["scores.db", "scores.parquet", "scores.csv"])
def test_score_killed_during_its_write_leaves_old_or_new(trained_copy, output):
    folder, _ = trained_copy(6000, 3, TRAINED_AS_OF)
    _kill_trials(folder, output, seed=len(output))


@pytest.mark.postgres
def test_score_killed_during_its_postgres_write_leaves_old_or_new(trained_copy, postgres_target):
    folder, _ = trained_copy(6000, 3, TRAINED_AS_OF)
    url, table, history_table = postgres_target
    _kill_trials(folder, url, seed=7, table=table, history_table=history_table)
