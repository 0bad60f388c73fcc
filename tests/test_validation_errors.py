"""Every kind of bad input stops `leadscore train` with exit code 2, a message naming where, and
nothing written: no MLflow run, no registered model, no scores."""

from __future__ import annotations

import fcntl
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory) -> Path:
    """`leadscore demo-data --leads 300 --seed 1`, once for the module; tests copy it."""
    folder = tmp_path_factory.mktemp("demo")
    exe = Path(sys.executable).with_name("leadscore")
    subprocess.run(
        [str(exe), "demo-data", "--out", "data", "--leads", "300", "--seed", "1"],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return folder / "data"


@pytest.fixture
def data(demo_export, tmp_path) -> Path:
    return shutil.copytree(demo_export, tmp_path / "data")


def _as_csv(data: Path, name: str, edit: Callable[[pd.DataFrame], None] | None = None) -> Path:
    """Replace `<name>.parquet` by `<name>.csv`, edited in place by `edit` first."""
    frame = pd.read_parquet(data / f"{name}.parquet")
    for column in frame.select_dtypes("datetimetz").columns:
        frame[column] = frame[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype(object)
    if edit is not None:
        edit(frame)
    (data / f"{name}.parquet").unlink()
    frame.to_csv(data / f"{name}.csv", index=False)
    return data / f"{name}.csv"


def _train(run_cli, tmp_path: Path, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return run_cli("train", "--config", "config.yaml", "--data", "data", check=False)


def _assert_refused(result: subprocess.CompletedProcess[str], folder: Path, *fragments: str):
    """Exit code 2, every fragment in stderr, and no run, model or scores written."""
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
    assert not (folder / "mlruns").exists()
    store = folder / "mlflow.db"
    if store.exists():
        with sqlite3.connect(store) as conn:
            assert conn.execute("SELECT COUNT(*) FROM registered_models").fetchone() == (0,)
    assert not [p for p in folder.iterdir() if p.name.startswith("scores")]


def test_missing_required_column(run_cli, tmp_path, data):
    _as_csv(data, "deals", lambda f: f.pop("outcome"))
    result = _train(run_cli, tmp_path, {"data": {"deals": {"path": "deals.csv"}}})
    _assert_refused(result, tmp_path, "deals.csv", "missing required column(s) 'outcome'")
    assert not (tmp_path / "mlflow.db").exists()  # refused at its load: no store was opened


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the store is made aside on Linux only"
)
def test_refused_after_its_load_leaves_a_whole_store(run_cli, tmp_path, data):
    # a new store's tables are made in a child process while the examples are built; a run
    # refused meanwhile waits for them instead of leaving a half-migrated store behind. The
    # store's lock, held here for a while, keeps the child at work past the refusal
    lock = (tmp_path / ".leadscore-mlflow-store.lock").open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    threading.Timer(8.0, lock.close).start()  # closing the file releases its lock
    started = time.monotonic()
    result = _train(run_cli, tmp_path, {"validation": {"min_wins": 100_000}})
    assert time.monotonic() - started > 8.0  # it waited for the child
    _assert_refused(result, tmp_path, "training needs at least 100000 wins")
    assert (tmp_path / "mlflow.db").is_file()
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")  # checks the schema is current
    assert [e.name for e in client.search_experiments()] == ["Default"]


@pytest.mark.parametrize(
    ("timestamps", "expected"),
    [
        ({}, "expected ISO 8601"),
        (
            {"created_at": {"format": "%d/%m/%Y %H:%M", "timezone": "Europe/Berlin"}},
            "expected format '%d/%m/%Y %H:%M'",
        ),
    ],
    ids=["iso", "configured-format"],
)
def test_timestamp_that_does_not_parse(run_cli, tmp_path, data, timestamps, expected):
    def edit(frame: pd.DataFrame) -> None:
        if timestamps:  # the export's own format, with one impossible date
            stamps = pd.to_datetime(frame["created_at"]).dt.tz_convert("Europe/Berlin")
            frame["created_at"] = stamps.dt.strftime("%d/%m/%Y %H:%M")
            frame.loc[4, "created_at"] = "31/02/2025 10:00"
        else:
            frame.loc[4, "created_at"] = "last tuesday"

    _as_csv(data, "leads", edit)
    spec = {"path": "leads.csv", "timestamps": timestamps}
    result = _train(run_cli, tmp_path, {"data": {"leads": spec}})
    bad = "'31/02/2025 10:00'" if timestamps else "'last tuesday'"
    _assert_refused(result, tmp_path, "leads.csv", "column 'created_at'", bad, expected)


def test_empty_required_timestamp(run_cli, tmp_path, data):
    def edit(frame: pd.DataFrame) -> None:
        frame.loc[9, "occurred_at"] = None

    _as_csv(data, "activities", edit)
    result = _train(run_cli, tmp_path, {"data": {"activities": {"path": "activities.csv"}}})
    _assert_refused(result, tmp_path, "activities.csv", "column 'occurred_at' is empty in 1 row(s)")


def test_duplicate_key(run_cli, tmp_path, data):
    def edit(frame: pd.DataFrame) -> None:
        frame.loc[7, "lead_id"] = frame.loc[6, "lead_id"]

    _as_csv(data, "leads", edit)
    result = _train(run_cli, tmp_path, {"data": {"leads": {"path": "leads.csv"}}})
    _assert_refused(result, tmp_path, "leads.csv", "column 'lead_id' must be unique")


def _first_closed(frame: pd.DataFrame) -> int:
    return int(frame["outcome"].notna().idxmax())


def test_unknown_outcome_value(run_cli, tmp_path, data):
    def edit(frame: pd.DataFrame) -> None:
        frame.loc[_first_closed(frame), "outcome"] = "Pending"

    _as_csv(data, "deals", edit)
    spec = {"path": "deals.csv", "values": {"outcome": {"Closed Won": "won"}}}
    result = _train(run_cli, tmp_path, {"data": {"deals": spec}})
    _assert_refused(result, tmp_path, "deals.csv", "column 'outcome'", "'Pending'")


def test_unknown_outcome_value_with_square_brackets(run_cli, tmp_path, data):
    def edit(frame: pd.DataFrame) -> None:
        frame.loc[_first_closed(frame), "outcome"] = "[/pending]"

    _as_csv(data, "deals", edit)
    result = _train(run_cli, tmp_path, {"data": {"deals": {"path": "deals.csv"}}})
    _assert_refused(result, tmp_path, "deals.csv", "column 'outcome'", "'[/pending]'")


def test_closed_before_created(run_cli, tmp_path, data):
    def edit(frame: pd.DataFrame) -> None:
        frame.loc[_first_closed(frame), "closed_at"] = "2020-01-01T00:00:00Z"

    _as_csv(data, "deals", edit)
    result = _train(run_cli, tmp_path, {"data": {"deals": {"path": "deals.csv"}}})
    _assert_refused(result, tmp_path, "deals.csv", "'closed_at' is before 'created_at'")


def test_join_key_where_none_match(run_cli, tmp_path, data):
    accounts = pd.read_parquet(data / "accounts.parquet")
    accounts["account_id"] = accounts["account_id"].astype(str)  # "100017" against 100017
    accounts.to_parquet(data / "accounts.parquet", index=False)
    config = {
        "data": {"accounts": {"path": "accounts.parquet"}, "leads": {"path": "leads.parquet"}}
    }
    result = _train(run_cli, tmp_path, config)
    _assert_refused(
        result,
        tmp_path,
        "leads.parquet",
        "no value of column 'account_id' matches accounts.account_id",
        "accounts.parquet",
    )


def test_unknown_config_key_in_the_data_section(run_cli, tmp_path, data):
    config = {"data": {"leads": {"path": "leads.parquet", "renam": {"id": "lead_id"}}}}
    result = _train(run_cli, tmp_path, config)
    _assert_refused(result, tmp_path, "config.yaml", "data.leads.renam: unknown key")


def test_rename_of_a_column_the_file_does_not_have(run_cli, tmp_path, data):
    _as_csv(data, "leads")
    spec = {"path": "leads.csv", "rename": {"Lead ID": "lead_id"}}
    result = _train(run_cli, tmp_path, {"data": {"leads": spec}})
    _assert_refused(result, tmp_path, "leads.csv", "rename names column(s) 'Lead ID'")


def test_value_map_for_a_missing_column(run_cli, tmp_path, data):
    _as_csv(data, "leads")
    spec = {"path": "leads.csv", "values": {"lead_stage": {"Select": None}}}
    result = _train(run_cli, tmp_path, {"data": {"leads": spec}})
    _assert_refused(result, tmp_path, "leads.csv", "value map for column 'lead_stage'")


def test_lookup_whose_join_column_is_missing(run_cli, tmp_path, data):
    (data / "products.csv").write_text("product,price\nA,100\nB,250\n")
    lookup = {"path": "products.csv", "join_on": "product", "prefix": "product_"}
    config = {"data": {"leads": {"path": "leads.parquet"}, "lookups": [lookup]}}
    result = _train(run_cli, tmp_path, config)
    _assert_refused(result, tmp_path, "products.csv", "no column 'product' to join on")


def test_too_few_labelled_wins(run_cli, tmp_path, data):
    config = {"data": {"leads": {"path": "leads.parquet"}}, "validation": {"min_wins": 1000}}
    result = _train(run_cli, tmp_path, config)
    _assert_refused(result, tmp_path, "validation.min_wins", "at least 1000 wins")
    wins = re.search(r"with ([\d,]+) wins", result.stderr)
    assert wins is not None and 0 < int(wins.group(1).replace(",", "")) < 1000
