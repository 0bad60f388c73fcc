"""`score --changed-since`: rescoring only the leads that changed gives a full run's results;
and a job killed mid-write loses nothing."""

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from leadscore.features.changes import changed_lead_ids
from leadscore.features.tables import CrmTables, clean, crm_as_of
from leadscore.models.scores import SCORE_COLUMNS

pytestmark = pytest.mark.e2e
EARLIER, LATER = "2026-10-01", "2026-11-01"
SAME = [c for c in SCORE_COLUMNS if c not in ("lead_id", "scored_at")]


def _read(db: Path, table: str = "lead_scores") -> pd.DataFrame:
    with sqlite3.connect(db) as conn:
        return pd.read_sql(f"SELECT * FROM {table}", conn)


def _crm(folder: Path) -> CrmTables:
    return CrmTables(
        *(
            pd.read_parquet(folder / f"{n}.parquet")
            for n in ("accounts", "leads", "activities", "deals")
        )
    )


@pytest.fixture
def workdir(trained_copy) -> Path:
    return trained_copy(6000, 3, EARLIER)[0]


# Grades by probability bands and no MQL cap: a lead's grade and flag then depend on it alone.
# (Percentile bands and a capacity rank leads against each other, and the kept rows rank with
# their earlier probabilities, so a rescored lead's grade may differ from a full run's.)
ALONE = (
    "--set", "scoring.grade_by=probability",
    "--set", "scoring.grades={A: 0.3, B: 0.12, C: 0.04}",
    "--set", "agreement.capacity_per_week=null",
)  # fmt: skip


def test_incremental_run_equals_full_run_for_changed_leads(run_cli, workdir):
    tmp_path = workdir
    run_cli("score", "--as-of", EARLIER, "--output", "scores.db", *ALONE)
    before = _read(tmp_path / "scores.db").set_index("lead_id")

    step = run_cli(
        "score", "--as-of", LATER, "--output", "scores.db", "--changed-since", "last", *ALONE
    )  # fmt: skip
    assert "Changed since 2026-10-01" in step.stderr
    run_cli("score", "--as-of", LATER, "--output", "full.db", *ALONE)
    incremental = _read(tmp_path / "scores.db").set_index("lead_id").sort_index()
    full = _read(tmp_path / "full.db").set_index("lead_id").sort_index()

    # the same leads: every lead open at the later moment, and only those
    assert incremental.index.equals(full.index)
    changed = set(
        changed_lead_ids(
            clean(crm_as_of(_crm(tmp_path / "demo_data"), pd.Timestamp(LATER, tz="UTC"))),
            pd.Timestamp(EARLIER, tz="UTC"),
        )
    )
    rescored = [i for i in full.index if i in changed or i not in before.index]
    kept = [i for i in full.index if i not in rescored]
    assert len(rescored) > 100 and len(kept) > 100  # both kinds are really exercised
    # rescored leads: exactly the full run's results
    pd.testing.assert_frame_equal(incremental.loc[rescored, SAME], full.loc[rescored, SAME])
    # kept leads: exactly what the earlier run wrote (grades by probability bands: unchanged)
    pd.testing.assert_frame_equal(
        incremental.loc[kept, [*SAME, "scored_at"]], before.loc[kept, [*SAME, "scored_at"]]
    )
    history = _read(tmp_path / "scores.db", "lead_score_history")
    assert history["batch_id"].nunique() == 2
    assert (history["as_of"].str.startswith(LATER)).sum() == len(rescored)

    # nothing changed since the last run: nothing is rescored, the table stays as it was
    again = run_cli(
        "score", "--as-of", LATER, "--output", "scores.db", "--changed-since", "last", *ALONE
    )  # fmt: skip
    assert f"rescored 0 of {len(full):,}" in again.stderr
    pd.testing.assert_frame_equal(
        _read(tmp_path / "scores.db").set_index("lead_id").sort_index(), incremental
    )


def test_incremental_without_earlier_scores_scores_everything(run_cli, workdir):
    tmp_path = workdir
    step = run_cli("score", "--as-of", LATER, "--output", "s.parquet", "--changed-since", "last")
    assert "No earlier scores" in step.stderr
    run_cli("score", "--as-of", LATER, "--output", "full.parquet")
    a = pd.read_parquet(tmp_path / "s.parquet").set_index("lead_id").sort_index()
    b = pd.read_parquet(tmp_path / "full.parquet").set_index("lead_id").sort_index()
    pd.testing.assert_frame_equal(a[SAME], b[SAME])


def test_changed_since_must_be_a_moment(run_cli, demo_config):
    result = run_cli("score", "--changed-since", "yesterday-ish", check=False)
    assert result.returncode == 2
    assert "--changed-since 'yesterday-ish'" in result.stderr


def test_changed_leads_cover_every_kind_of_change() -> None:
    t = pd.Timestamp
    since = t("2026-01-10", tz="UTC")
    crm = CrmTables(
        accounts=pd.DataFrame({"account_id": [1, 2, 3]}),
        leads=pd.DataFrame(
            {
                "lead_id": [10, 11, 12, 13, 14, 15, 16],
                "account_id": [1, 1, 2, 2, 3, 3, None],
                "created_at": [t("2026-01-01", tz="UTC")] * 6 + [t("2026-01-11", tz="UTC")],
            }
        ),
        activities=pd.DataFrame(
            {
                "lead_id": [14, 15],
                "occurred_at": [t("2026-01-12", tz="UTC"), t("2026-01-02", tz="UTC")],
                "activity_type": ["web_visit", "web_visit"],
            }
        ),
        deals=pd.DataFrame(
            {
                "deal_id": [1],
                "lead_id": [12],
                "created_at": [t("2026-01-02", tz="UTC")],
                "closed_at": [t("2026-01-12", tz="UTC")],
                "outcome": ["lost"],
            }
        ),
    )
    # 16 is new; 14 has new activity; 12's deal closed, so its account's leads (12, 13) change
    assert sorted(changed_lead_ids(crm, since)) == [12, 13, 14, 16]


def test_killing_the_job_mid_write_leaves_the_previous_scores(run_cli, workdir):
    """SIGKILL the real CLI while its write transaction is open (SQLite's rollback journal
    exists): the next reader sees the previous scores and history, untouched."""
    tmp_path = workdir
    run_cli("score", "--as-of", EARLIER, "--output", "scores.db")
    db = tmp_path / "scores.db"
    journal = tmp_path / "scores.db-journal"
    before = _read(db)
    history_before = _read(db, "lead_score_history")
    exe = Path(sys.executable).with_name("leadscore")
    killed = False
    for _ in range(5):  # the write lasts a fraction of a second: poll for it, retry if missed
        job = subprocess.Popen(
            [str(exe), "score", "--as-of", LATER, "--output", "scores.db"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while job.poll() is None:
            if journal.exists():
                job.send_signal(signal.SIGKILL)
                killed = True
                break
        job.wait()
        if killed:
            break
        run_cli("score", "--as-of", EARLIER, "--output", "scores.db")  # missed: start over
        before, history_before = _read(db), _read(db, "lead_score_history")
    assert killed, "never caught the job inside its write transaction"
    pd.testing.assert_frame_equal(_read(db), before)
    pd.testing.assert_frame_equal(_read(db, "lead_score_history"), history_before)
