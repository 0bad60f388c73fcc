"""Failures that once ended in a traceback or a bare `Aborted!`: each is now exit code 2, a
message naming the file or column and what to do, and nothing previously written changed."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from conftest import copy_trained

from leadscore.pipeline.io.activities import OWNER_LOCK, SPILL_PREFIX
from leadscore.pipeline.io.registry import installed_versions

pytestmark = pytest.mark.e2e
AS_OF = "2026-10-01"
LEADSCORE = str(Path(sys.executable).with_name("leadscore"))


def _cli(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run(
        [LEADSCORE, *args],
        cwd=folder,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr and "Aborted" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"


def _demo_data(folder: Path, out: str) -> None:
    made = _cli(folder, "demo-data", "--out", out, "--leads", "6000", "--seed", "3")
    assert made.returncode == 0, made.stderr


@pytest.fixture(scope="module")
def own_model(_trained_once, tmp_path_factory) -> Path:
    """A copy of the demo data and model (6,000 leads, seed 3) whose artifacts only this module
    touches: tests that damage them restore them."""
    original, _ = _trained_once(6000, 3, AS_OF)
    return copy_trained(original, tmp_path_factory.mktemp("own-model"))


def _score(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return _cli(folder, "score", "--as-of", AS_OF, *args)


def _bundle(folder: Path) -> Path:
    (bundle,) = (folder / "mlruns").rglob("bundle.joblib")
    return bundle


@pytest.mark.parametrize(
    "damage",
    ["truncated", "deleted", "garbage", "garbage MLmodel"],
)
def test_a_damaged_model_is_named_with_what_to_do(own_model, damage):
    bundle = _bundle(own_model)
    mlmodel = bundle.parents[2] / "MLmodel" if (bundle.parents[2] / "MLmodel").exists() else None
    if mlmodel is None:
        (mlmodel,) = (own_model / "mlruns").rglob("MLmodel")
    saved = {p: p.read_bytes() for p in (bundle, mlmodel)}
    try:
        if damage == "truncated":
            bundle.write_bytes(saved[bundle][: len(saved[bundle]) // 2])
        elif damage == "deleted":
            bundle.unlink()
        elif damage == "garbage":
            bundle.write_bytes(os.urandom(4096))
        else:
            mlmodel.write_text("{{{ not: yaml: [")
        result = _score(own_model, "--output", "damaged.db")
        _refused(result, "version 1 of 'lead-scoring' cannot be loaded", "promote another version")
        assert not (own_model / "damaged.db").exists()
    finally:
        for path, data in saved.items():
            path.write_bytes(data)
    assert _score(own_model, "--output", "restored.db").returncode == 0


def test_a_model_trained_with_other_libraries_is_scored_with_a_warning_naming_them(own_model):
    """The bundle records its libraries' versions; a different installed one is said by name."""
    bundle_path = _bundle(own_model)
    saved = bundle_path.read_bytes()
    bundle = joblib.load(bundle_path)
    assert bundle.libraries == installed_versions()  # recorded at training
    try:
        joblib.dump(replace(bundle, libraries={**bundle.libraries, "numpy": "1.0.0"}), bundle_path)
        result = _score(own_model, "--output", "other_libraries.db")
        assert result.returncode == 0, result.stderr
        said = " ".join(result.stderr.split())
        assert f"numpy trained with 1.0.0, installed {np.__version__}" in said
    finally:
        bundle_path.write_bytes(saved)
    assert "trained with" not in _score(own_model, "--output", "same_libraries.db").stderr


def test_a_tracking_store_that_is_not_a_database(tmp_path):
    (tmp_path / "mlflow.db").write_bytes(b"this is not sqlite" * 100)
    result = _cli(tmp_path, "runs")
    _refused(result, "mlflow.db", "is not a SQLite database")


def test_a_config_that_is_not_utf8(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes("scoring:\n  table: caf\xe9\n".encode("latin-1"))
    _refused(_cli(tmp_path, "train", "--config", "latin1.yaml"), "latin1.yaml", "not UTF-8")


def test_a_corrupt_history_file_stops_the_run_and_changes_nothing(own_model, tmp_path):
    out = tmp_path / "scores.parquet"
    assert _score(own_model, "--output", str(out)).returncode == 0
    history = tmp_path / "scores.lead_score_history.parquet"
    history.write_bytes(b"PAR1 garbage")
    before = out.read_bytes()
    result = _score(own_model, "--output", str(out))
    _refused(result, str(history), "cannot be read", "Move it away")
    assert out.read_bytes() == before and history.read_bytes() == b"PAR1 garbage"


def _read_only(folder: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the CLI with `folder` read-only: by permissions for a normal user; for root (whom
    permissions do not stop), through a read-only bind mount in a private mount namespace."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            return _cli(cwd, *args)
        finally:
            folder.chmod(0o755)
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: cannot make a folder read-only for root")
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"root without mount namespaces here: {probe.stderr.decode()[:200]}")
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(folder), LEADSCORE, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("name", ["scores.parquet", "scores.csv", "scores.db"])
def test_outputs_in_a_read_only_folder(own_model, tmp_path, name):
    folder = tmp_path / "readonly"
    folder.mkdir()
    out = folder / name
    assert _score(own_model, "--output", str(out)).returncode == 0
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = _read_only(folder, ["score", "--as-of", "2026-10-02", "--output", str(out)], own_model)
    _refused(result, str(out), "read-only")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_lead_created_in_year_9999_is_warned_about_when_scoring(own_model, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(own_model / "demo_data", data)
    leads = pd.read_parquet(data / "leads.parquet")
    leads["created_at"] = leads["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype(object)
    leads.loc[7, "created_at"] = "9999-01-01T00:00:00Z"
    (data / "leads.parquet").unlink()
    leads.to_csv(data / "leads.csv", index=False)
    result = _score(own_model, "--data", str(data), "--output", str(tmp_path / "s.db"))
    assert result.returncode == 0, result.stderr
    assert "dated after today" in result.stderr and "9999-01-01" in result.stderr


def test_stale_spill_folders_are_removed_and_live_ones_kept(own_model, tmp_path):
    spill = tmp_path / "spill"
    stale = spill / f"{SPILL_PREFIX}killed"
    live = spill / f"{SPILL_PREFIX}running"
    for folder in (stale, live):
        folder.mkdir(parents=True)
        (folder / "0.arrow").write_bytes(b"x" * 100)
        (folder / OWNER_LOCK).touch()
    holder = subprocess.Popen(  # a live run: holds its folder's lock
        ["flock", str(live / OWNER_LOCK), "sleep", "120"]
    )
    try:
        result = _score(
            own_model, "--output", str(tmp_path / "s.db"), "--set", f"scoring.spill_dir={spill}"
        )
        assert result.returncode == 0, result.stderr
        assert not stale.exists()
        assert live.exists() and (live / "0.arrow").exists()
        assert [p.name for p in spill.iterdir()] == [live.name]  # its own folder is gone too
    finally:
        holder.kill()


def test_column_names_with_json_characters_train_score_and_read_as_written(tmp_path):
    """`Lead: Source` and friends: LightGBM refuses " , : [ ] { } in feature names."""
    folder = tmp_path
    _demo_data(folder, "data")
    config = {
        "data": {
            "leads": {
                "path": "leads.parquet",
                "rename": {"source": "Lead: Source", "country": "Country, {region}"},
            }
        },
        "features": {
            "identifiers": ["lead_id", "account_id", "deal_id", "name"],
            "exclude": ["disqualify_reason"],
        },
        "split": {"min_wins": 10},  # marketing's leads of a small history win seldom
        "validation": {"min_wins": 60, "min_losses": 60},
    }
    (folder / "odd.yaml").write_text(yaml.safe_dump(config))
    trained = _cli(folder, "train", "--config", "odd.yaml", "--data", "data", "--as-of", AS_OF)
    assert trained.returncode == 0, trained.stderr
    scored = _cli(
        folder, "score", "--config", "odd.yaml", "--data", "data", "--as-of", AS_OF,
        "--output", "odd.parquet",
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    scores = pd.read_parquet(folder / "odd.parquet")
    features = {r["feature"] for row in scores["reasons_json"] for r in json.loads(row)}
    assert "Lead: Source" in features
    assert scores["reasons"].str.contains("Lead: Source").any()


@pytest.fixture
def limited_role(postgres_url):
    """A role that may read and replace the current scores but not append to the history."""
    suffix = uuid.uuid4().hex[:8]
    role, table, history = f"ls_limited_{suffix}", f"scores_{suffix}", f"history_{suffix}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
    url = sa.engine.make_url(postgres_url).set(username=role).render_as_string(False)
    yield url, role, table, history, postgres_url
    with engine.begin() as conn:
        for name in (table, history, f"{history}_changes"):
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
        conn.execute(sa.text(f'DROP ROLE "{role}"'))
    engine.dispose()


@pytest.mark.postgres
def test_a_role_without_insert_on_the_history_is_told_which_grant_is_missing(
    own_model, limited_role
):
    url, role, table, history, admin = limited_role
    changes = f"{history}_changes"
    sets = ["--set", f"scoring.table={table}", "--set", f"scoring.history_table={history}"]
    sets += ["--set", f"scoring.changes_table={changes}"]
    assert _score(own_model, "--output", admin, *sets).returncode == 0  # made by the owner
    engine = sa.create_engine(admin)
    with engine.begin() as conn:
        conn.execute(sa.text(f'GRANT SELECT, INSERT, DELETE ON "{table}" TO "{role}"'))
        conn.execute(sa.text(f'GRANT SELECT ON "{history}" TO "{role}"'))
        conn.execute(sa.text(f'GRANT SELECT, INSERT ON "{changes}" TO "{role}"'))
        before = conn.execute(sa.text(f'SELECT COUNT(*) FROM "{history}"')).scalar()
        logged = conn.execute(sa.text(f'SELECT COUNT(*) FROM "{changes}"')).scalar()
    result = _cli(own_model, "score", "--as-of", "2026-10-02", "--output", url, *sets)
    _refused(result, f"may not use table '{history}'", "permission denied", "Grant it")
    with engine.begin() as conn:
        assert conn.execute(sa.text(f'SELECT COUNT(*) FROM "{history}"')).scalar() == before
        # the change rows, written first in the transaction, rolled back with the rest
        assert conn.execute(sa.text(f'SELECT COUNT(*) FROM "{changes}"')).scalar() == logged
        as_of = conn.execute(sa.text(f'SELECT DISTINCT as_of FROM "{table}"')).scalars().all()
    assert [f"{t:%Y-%m-%d}" for t in as_of] == [AS_OF]  # the current table rolled back too
    engine.dispose()


def test_sqlite_file_that_is_not_a_database(own_model, tmp_path):
    target = tmp_path / "scores.db"
    target.write_bytes(b"not a database at all" * 100)
    _refused(_score(own_model, "--output", str(target)), str(target), "not a SQLite database")


def test_history_index_and_key_are_created(own_model, tmp_path):
    target = tmp_path / "scores.db"
    assert _score(own_model, "--output", str(target)).returncode == 0
    with sqlite3.connect(target) as conn:
        key = [r[1] for r in conn.execute("PRAGMA table_info(lead_scores)") if r[5]]
        assert key == ["lead_id"]
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(lead_score_history)")}
        assert {
            "ix_lead_score_history_lead_as_of",
            "ix_lead_score_history_as_of",
            "ix_lead_score_history_batch",
        } <= indexes
        plan = " ".join(
            str(r[-1])
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM lead_scores WHERE scored_at > '2026-01-01'"
            )
        )
        assert "ix_lead_scores_scored_at" in plan
