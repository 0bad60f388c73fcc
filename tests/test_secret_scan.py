"""The scan: the whole job run with a password in every URL it accepts, then everything it wrote
(the MLflow store, artifacts, reports, score tables, stdout and stderr) searched for those
passwords and for the input's e-mail addresses. None may appear anywhere.

The server trusts local connections, so any password connects: each URL gets its own, and a
leak names which URL leaked."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from leadscore.pipeline.synthetic_crm import generate_crm

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
AS_OF = "2026-10-01"
LEADSCORE = str(Path(sys.executable).with_name("leadscore"))


def _with_password(url: str, password: str, database: str | None = None) -> str:
    parsed = sa.engine.make_url(url).set(password=password)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
def crm_in_postgres(postgres_url):
    """The demo CRM as tables of the test database, and a database for the MLflow store."""
    marker = uuid.uuid4().hex[:8]
    crm = generate_crm(n_leads=5000, seed=3)
    names = {name: f"scan_{name}_{marker}" for name in ("leads", "accounts", "activities", "deals")}
    regions = pd.DataFrame({"country": crm.leads["country"].dropna().unique()}).assign(
        region=lambda f: f["country"].str[:2]
    )
    names["regions"] = f"scan_regions_{marker}"
    store = f"scan_mlflow_{marker}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        for name, frame in [*crm.tables().items(), ("regions", regions)]:
            if name in names:
                frame.to_sql(names[name], conn, index=False, chunksize=20_000)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{store}"'))
    yield crm, names, store, marker
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{store}" WITH (FORCE)'))
    with engine.begin() as conn:
        for table in conn.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE tablename LIKE :m"), {"m": f"%{marker}%"}
        ).scalars():
            sa.Table(table, sa.MetaData()).drop(conn)
    engine.dispose()


def _everything_written(folder: Path, inputs: set[Path]) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file() and path not in inputs
    }


def _database_text(url: str, prefixes: tuple[str, ...] = ("",)) -> dict[str, bytes]:
    """Every row of every table of a database whose name starts with one of `prefixes`, as text
    (the test database is shared: other tests' tables come and go while this one reads)."""
    engine = sa.create_engine(url)
    out = {}
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            if not table.startswith(prefixes):
                continue
            rows = conn.execute(sa.select(sa.Table(table, sa.MetaData(), autoload_with=conn)))
            out[f"{url.split('@')[-1]}:{table}"] = "\n".join(map(str, rows)).encode()
    engine.dispose()
    return out


def test_no_password_or_email_reaches_anything_written(tmp_path, postgres_url, crm_in_postgres):
    crm, names, store, marker = crm_in_postgres
    passwords = {
        "leads source (literal)": f"pw-leads-{marker}",
        "sources via ${LS_SCAN_PW}": f"pw-env-{marker}",
        "lookup source (literal)": f"pw-lookup-{marker}",
        "scoring.output (literal)": f"pw-output-{marker}",
        "--output via ${LS_SCAN_OUT_PW}": f"pw-outenv-{marker}",
        "MLFLOW_TRACKING_URI": f"pw-mlflow-{marker}",
    }
    literal = _with_password(postgres_url, passwords["leads source (literal)"])
    from_env = _with_password(postgres_url, "${LS_SCAN_PW}")
    config = {
        "data": {
            "leads": {"url": literal, "table": names["leads"]},
            "accounts": {"url": from_env, "table": names["accounts"]},
            "activities": {"url": literal, "query": f'SELECT * FROM "{names["activities"]}"'},
            "deals": {"url": from_env, "table": names["deals"]},
            "lookups": [
                {
                    "url": _with_password(postgres_url, passwords["lookup source (literal)"]),
                    "table": names["regions"],
                    "join_on": "country",
                    "columns": ["region"],
                }
            ],
        },
        "features": {
            "identifiers": ["lead_id", "account_id", "deal_id", "name"],
            "exclude": ["disqualify_reason"],
        },
        "scoring": {
            "output": _with_password(postgres_url, passwords["scoring.output (literal)"]),
            "table": f"scan_scores_{marker}",
            "history_table": f"scan_history_{marker}",
            "changes_table": f"scan_changes_{marker}",
        },
        "evaluation": {"bootstrap": 20},
        "split": {"min_wins": 5},  # marketing's leads of a small history win seldom
        "validation": {"min_wins": 60, "min_losses": 60},
    }
    config_file = tmp_path / "secret.yaml"
    config_file.write_text(yaml.safe_dump(config))
    mlflow_uri = _with_password(postgres_url, passwords["MLFLOW_TRACKING_URI"], store)
    env = {
        **{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
        "LS_SCAN_PW": passwords["sources via ${LS_SCAN_PW}"],
        "LS_SCAN_OUT_PW": passwords["--output via ${LS_SCAN_OUT_PW}"],
        "MLFLOW_TRACKING_URI": mlflow_uri,
    }
    other_output = _with_password(postgres_url, "${LS_SCAN_OUT_PW}")
    base = ["--config", str(config_file), "--as-of", AS_OF]
    commands = [
        ["audit", *base, "--out", "audit.json"],
        ["train", *base, "--report", "report.html"],
        ["score", *base],
        ["score", *base, "--output", other_output],
        ["monitor", *base, "--report", "monitor.json"],
        ["runs", "--config", str(config_file)],
        ["tune", *base, "--trials", "2", "--out", "tuned.yaml"],
        # a failure whose message names a source URL
        ["score", *base, "--set", f"data.deals.table=missing_{marker}"],
        # a failure whose message names the output URL
        ["score", *base, "--output", _with_password(postgres_url, "x", f"none_{marker}")],
    ]
    shown: dict[str, bytes] = {}
    for number, args in enumerate(commands):
        result = subprocess.run(
            [LEADSCORE, *args], cwd=tmp_path, env=env, capture_output=True, timeout=900
        )
        expected = 2 if number >= len(commands) - 2 else 0
        assert result.returncode == expected, result.stderr.decode()
        shown[f"stdout of {args[0]} #{number}"] = result.stdout
        shown[f"stderr of {args[0]} #{number}"] = result.stderr
    assert b"missing_" in shown[f"stderr of score #{len(commands) - 2}"]  # the message ran

    written = _everything_written(tmp_path, {config_file})
    assert "report.html" in written and "tuned.yaml" in written and "monitor.json" in written
    assert any(name.endswith("bundle.joblib") for name in written)
    store_rows = _database_text(_with_password(postgres_url, "", store))
    assert any(b"leadscore" in rows for rows in store_rows.values())  # the runs are there
    score_rows = _database_text(
        postgres_url, tuple(f"scan_{kind}_{marker}" for kind in ("scores", "history", "changes"))
    )
    assert len(score_rows) == 3

    searched = {**shown, **written, **store_rows, **score_rows}
    for what, password in passwords.items():
        leaks = [name for name, data in searched.items() if password.encode() in data]
        assert not leaks, f"the password of {what} reached {leaks}"
    emails = [e.encode() for e in crm.leads["email"].dropna().unique()]
    for name, data in searched.items():
        found = [e for e in emails if e in data]
        assert not found, f"{name} holds e-mail addresses of the input, e.g. {found[:2]}"
