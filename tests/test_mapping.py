"""Config-driven loading: CSV options, renames, value maps, timestamps, lookups, shapes, SQL."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from leadscore.features.tables import CrmTables
from leadscore.pipeline.config import Config, load_config
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.sources import default_as_of, fingerprint, load_tables

UTC = "UTC"


BERLIN_LEADS = {  # day-first local times in Berlin, as a European CRM exports them
    "path": "leads.csv",
    "timestamps": {"created_at": {"format": "%d/%m/%Y %H:%M", "timezone": "Europe/Berlin"}},
}


def _write_other_tables(folder: Path) -> None:
    """The canonical accounts, activities and deals an events-shape load also needs."""
    (folder / "accounts.csv").write_text("account_id,industry\n10,Energy\n")
    (folder / "activities.csv").write_text("lead_id,occurred_at,activity_type\n")
    (folder / "deals.csv").write_text("deal_id,lead_id,created_at,closed_at,outcome\n")


def _load(folder: Path, data: dict[str, Any], warnings: list[str] | None = None) -> CrmTables:
    config = Config.model_validate({"data": data})
    return load_tables(config, folder, warnings.append if warnings is not None else None)


def _by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("lead_id").sort_index()


# --- CSV options ---------------------------------------------------------------------------------


def test_delimiter_encoding_and_quotechar_from_a_yaml_config(tmp_path):
    _write_other_tables(tmp_path)
    (tmp_path / "export.csv").write_bytes(
        "lead_id;account_id;created_at;name;note\n"
        "1;10;2025-01-01;José Müller;'Smith; Jones'\n"
        "2;;2025-01-02;Zoë;plain\n".encode("latin-1")
    )
    (tmp_path / "config.yaml").write_text(
        "data:\n"
        "  leads:\n"
        "    path: export.csv\n"
        "    csv: {delimiter: ';', encoding: latin-1, quotechar: \"'\"}\n"
    )
    leads = _by_id(load_tables(load_config(tmp_path / "config.yaml"), tmp_path).leads)
    assert leads.loc[1, "name"] == "José Müller"
    assert leads.loc[2, "name"] == "Zoë"
    assert leads.loc[1, "note"] == "Smith; Jones"
    assert list(leads.columns) == ["account_id", "created_at", "name", "note"]


def test_latin1_file_read_as_utf8_is_an_input_error_naming_the_file(tmp_path):
    _write_other_tables(tmp_path)
    (tmp_path / "export.csv").write_bytes(
        "lead_id;account_id;created_at;name\n1;10;2025-01-01;José\n".encode("latin-1")
    )
    with pytest.raises(InputError, match=r"export\.csv: cannot be read as csv"):
        _load(tmp_path, {"leads": {"path": "export.csv", "csv": {"delimiter": ";"}}})


@pytest.mark.parametrize(
    ("null_values", "missing"),
    [
        ([""], {4}),
        (["", "n/a"], {3, 4}),
    ],
)
def test_only_the_configured_null_tokens_are_missing(tmp_path, null_values, missing):
    _write_other_tables(tmp_path)
    (tmp_path / "leads.csv").write_text(
        "lead_id,account_id,created_at,source\n"
        "1,10,2025-01-01,None\n"
        "2,10,2025-01-01,NA\n"
        "3,10,2025-01-01,n/a\n"
        "4,10,2025-01-01,\n"
    )
    leads = _by_id(
        _load(tmp_path, {"leads": {"path": "leads.csv", "csv": {"null_values": null_values}}}).leads
    )
    assert set(leads.index[leads["source"].isna()]) == missing
    assert leads.loc[1, "source"] == "None"
    assert leads.loc[2, "source"] == "NA"
    if 3 not in missing:
        assert leads.loc[3, "source"] == "n/a"


@pytest.mark.parametrize(("section", "wrong"), [("leads", "renam"), ("lookups", "joinon")])
def test_unknown_key_in_a_source_lists_the_known_keys(tmp_path, section, wrong):
    source: Any = {"path": "leads.csv", wrong: "x"}
    if section == "lookups":
        source = [{**source, "join_on": "product"}]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": {section: source}}))
    with pytest.raises(InputError, match=rf"{wrong}: unknown key") as info:
        load_config(tmp_path / "config.yaml")
    assert "path, url, table, query" in str(info.value)


# --- renames, value maps, timestamps, dropped rows ------------------------------------------------


def test_rename_and_value_maps_for_one_column_and_every_text_column(tmp_path):
    _write_other_tables(tmp_path)
    (tmp_path / "leads.csv").write_text(
        "Lead ID,Account,Created,Lead Source,country,employees\n"
        "1,10,2025-01-01,Select,DE,10\n"
        "2,10,2025-01-02,Webinar,Select,20\n"
        "3,,2025-01-03,Select,FR,30\n"
    )
    spec = {
        "path": "leads.csv",
        "rename": {
            "Lead ID": "lead_id",
            "Account": "account_id",
            "Created": "created_at",
            "Lead Source": "source",
        },
        "values": {"*": {"Select": None}, "country": {"DE": "Germany"}},
    }
    leads = _by_id(_load(tmp_path, {"leads": spec}).leads)
    assert {"source", "country", "account_id", "created_at"} <= set(leads.columns)
    assert "Lead Source" not in leads.columns
    assert leads["source"].isna().tolist() == [True, False, True]
    assert leads.loc[2, "source"] == "Webinar"
    assert leads.loc[1, "country"] == "Germany" and pd.isna(leads.loc[2, "country"])
    assert leads.loc[3, "country"] == "FR"
    assert leads["employees"].tolist() == [10, 20, 30]


def test_integer_outcomes_map_with_string_keys(tmp_path):
    (tmp_path / "units.csv").write_text(
        "lead_id,account_id,created_at,closed_at,outcome\n"
        "1,,2025-01-01,2025-02-01,1\n"
        "2,,2025-01-02,2025-03-01,0\n"
        "3,,2025-01-03,2025-03-02,1\n"
    )
    spec = {"path": "units.csv", "values": {"outcome": {"1": "won", "0": "lost"}}}
    deals = _load(tmp_path, {"shape": "unit", "leads": spec}).deals
    assert deals.set_index("deal_id")["outcome"].to_dict() == {1: "won", 2: "lost", 3: "won"}


def test_integer_outcomes_map_with_string_keys_when_some_units_are_open(tmp_path):
    (tmp_path / "units.csv").write_text(
        "lead_id,account_id,created_at,closed_at,outcome\n"
        "1,,2025-01-01,2025-02-01,1\n"
        "2,,2025-01-02,2025-03-01,0\n"
        "3,,2025-01-03,,\n"
    )
    spec = {"path": "units.csv", "values": {"outcome": {"1": "won", "0": "lost"}}}
    deals = _load(tmp_path, {"shape": "unit", "leads": spec}).deals.set_index("deal_id")
    assert deals.loc[1, "outcome"] == "won" and deals.loc[2, "outcome"] == "lost"
    assert pd.isna(deals.loc[3, "outcome"])


def test_timestamp_format_and_timezone_give_the_utc_instant(tmp_path):
    _write_other_tables(tmp_path)
    (tmp_path / "leads.csv").write_text(
        "lead_id,account_id,created_at\n"
        "1,10,01/03/2025 10:30\n"  # CET, UTC+1
        "2,10,15/07/2025 00:15\n"  # CEST, UTC+2: the previous day in UTC
    )
    created = _by_id(_load(tmp_path, {"leads": BERLIN_LEADS}).leads)["created_at"]
    assert str(created.dt.tz) == UTC
    assert created[1] == pd.Timestamp("2025-03-01 09:30", tz=UTC)
    assert created[2] == pd.Timestamp("2025-07-14 22:15", tz=UTC)


def test_drop_rows_without_drops_and_reports_the_count(tmp_path):
    _write_other_tables(tmp_path)
    (tmp_path / "leads.csv").write_text(
        "lead_id,account_id,created_at\n1,10,2025-01-01\n2,10,\n3,,2025-01-03\n4,10,\n"
    )
    warnings: list[str] = []
    spec = {"path": "leads.csv", "drop_rows_without": ["created_at"]}
    leads = _load(tmp_path, {"leads": spec}, warnings).leads
    assert sorted(leads["lead_id"]) == [1, 3]
    assert len(warnings) == 1
    assert "leads.csv" in warnings[0] and "dropped 2 of 4 rows without created_at" in warnings[0]


def test_without_drop_rows_an_empty_timestamp_is_an_input_error(tmp_path):
    _write_other_tables(tmp_path)
    (tmp_path / "leads.csv").write_text("lead_id,account_id,created_at\n1,10,2025-01-01\n2,10,\n")
    with pytest.raises(InputError, match=r"leads\.csv: column 'created_at' is empty in 1 row"):
        _load(tmp_path, {"leads": {"path": "leads.csv"}})


# --- lookups -------------------------------------------------------------------------------------


@pytest.fixture
def product_leads(tmp_path) -> Path:
    _write_other_tables(tmp_path)
    (tmp_path / "leads.csv").write_text(
        "lead_id,account_id,created_at,product\n"
        "1,10,2025-01-01,A\n"
        "2,10,2025-01-02,B\n"
        "3,10,2025-01-03,Z\n"
        "4,10,2025-01-04,\n"
    )
    return tmp_path


def test_lookup_columns_join_onto_leads_with_the_prefix(product_leads):
    (product_leads / "products.csv").write_text("product,price,family\nA,100,x\nB,250,y\n")
    warnings: list[str] = []
    lookup = {"path": "products.csv", "join_on": "product", "prefix": "product_"}
    leads = _load(product_leads, {"leads": {"path": "leads.csv"}, "lookups": [lookup]}, warnings)
    leads = _by_id(leads.leads)
    assert {"product_price", "product_family"} <= set(leads.columns)
    assert "price" not in leads.columns
    assert leads.loc[1, "product_price"] == 100 and leads.loc[2, "product_family"] == "y"
    assert leads.loc[[3, 4], "product_price"].isna().all()
    assert len(warnings) == 1  # lead 4 has no product: not a miss
    assert "products.csv" in warnings[0]
    assert "1 of 4 leads have a product not in the lookup, e.g. 'Z'" in warnings[0]


def test_lookup_brings_only_the_listed_columns(product_leads):
    (product_leads / "products.csv").write_text("product,price,family\nA,100,x\nB,250,y\nZ,1,z\n")
    warnings: list[str] = []
    lookup = {"path": "products.csv", "join_on": "product", "columns": ["price"], "prefix": "p_"}
    leads = _load(product_leads, {"leads": {"path": "leads.csv"}, "lookups": [lookup]}, warnings)
    assert "p_price" in leads.leads.columns and "p_family" not in leads.leads.columns
    assert warnings == []


def test_lookup_with_a_duplicate_key_is_an_input_error_naming_the_file(product_leads):
    (product_leads / "products.csv").write_text("product,price\nA,100\nA,200\nB,250\n")
    lookup = {"path": "products.csv", "join_on": "product"}
    with pytest.raises(InputError, match=r"products\.csv: key column 'product' must be unique"):
        _load(product_leads, {"leads": {"path": "leads.csv"}, "lookups": [lookup]})


# --- shapes --------------------------------------------------------------------------------------


def test_unit_shape_derives_one_deal_per_row(tmp_path):
    (tmp_path / "opps.csv").write_text(
        "Opp,account_id,Created,Closed,Stage,amount\n"
        "1,,2025-01-01,2025-02-01,Closed Won,5\n"
        "2,,2025-01-02,2025-03-01 12:00,Closed Lost,6\n"
        "3,,2025-01-03,,,7\n"
    )
    spec = {
        "path": "opps.csv",
        "rename": {
            "Opp": "lead_id",
            "Created": "created_at",
            "Closed": "closed_at",
            "Stage": "outcome",
        },
        "values": {"outcome": {"Closed Won": "won", "Closed Lost": "lost"}},
    }
    tables = _load(tmp_path, {"shape": "unit", "leads": spec})
    assert "outcome" not in tables.leads.columns and "closed_at" not in tables.leads.columns
    assert sorted(tables.leads["lead_id"]) == [1, 2, 3]
    assert tables.leads["amount"].tolist() == [5, 6, 7]
    deals = tables.deals.set_index("deal_id").sort_index()
    assert deals["lead_id"].tolist() == [1, 2, 3]
    assert deals["outcome"].tolist()[:2] == ["won", "lost"] and pd.isna(deals.loc[3, "outcome"])
    assert deals.loc[2, "closed_at"] == pd.Timestamp("2025-03-01 12:00", tz=UTC)
    assert pd.isna(deals.loc[3, "closed_at"])
    pd.testing.assert_series_equal(
        deals["created_at"], _by_id(tables.leads)["created_at"], check_names=False
    )
    assert tables.activities.empty and tables.accounts.empty


def test_unit_shape_needs_no_account_column(tmp_path):
    (tmp_path / "units.csv").write_text(
        "lead_id,created_at,closed_at,outcome\n1,2025-01-01,2025-02-01,won\n2,2025-01-02,,\n"
    )
    tables = _load(tmp_path, {"shape": "unit", "leads": {"path": "units.csv"}})
    assert sorted(tables.deals["deal_id"]) == [1, 2]
    assert tables.leads["account_id"].isna().all()


def test_flat_shape_has_outcomes_and_no_timestamps(tmp_path):
    (tmp_path / "flat.csv").write_text(
        "id,status,industry\n1,Won,Energy\n2,lost,Retail\n3,,Energy\n"
    )
    spec = {"path": "flat.csv", "rename": {"id": "lead_id", "status": "outcome"}}
    tables = _load(tmp_path, {"shape": "flat", "leads": spec})
    leads = _by_id(tables.leads)
    assert leads["created_at"].isna().all()
    assert leads["outcome"].tolist()[:2] == ["won", "lost"] and pd.isna(leads.loc[3, "outcome"])
    assert leads["account_id"].isna().all()
    assert tables.deals.empty and tables.activities.empty


def test_flat_shape_created_at_is_tz_aware_utc(tmp_path):
    (tmp_path / "flat.csv").write_text("lead_id,outcome\n1,won\n2,lost\n")
    leads = _load(tmp_path, {"shape": "flat", "leads": {"path": "flat.csv"}}).leads
    assert isinstance(leads["created_at"].dtype, pd.DatetimeTZDtype)


def test_flat_shape_with_an_unknown_outcome_is_an_input_error(tmp_path):
    (tmp_path / "flat.csv").write_text("lead_id,outcome\n1,won\n2,Pending\n")
    with pytest.raises(InputError, match=r"flat\.csv: column 'outcome' has unknown value.*Pending"):
        _load(tmp_path, {"shape": "flat", "leads": {"path": "flat.csv"}})


# --- SQL sources ---------------------------------------------------------------------------------


@pytest.fixture
def crm_db(tmp_path) -> Path:
    """A SQLite database with a `crm_leads` table in export column names."""
    _write_other_tables(tmp_path)
    path = tmp_path / "crm.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE crm_leads (id INTEGER, account_id INTEGER, created TEXT, src TEXT)"
        )
        conn.executemany(
            "INSERT INTO crm_leads VALUES (?, ?, ?, ?)",
            [
                (1, 10, "2025-01-01 10:00:00", "Web"),
                (2, None, "2025-02-01T00:00:00+01:00", "None"),
                (3, 10, "2025-03-01 00:00:00", None),
            ],
        )
    conn.close()
    return path


RENAME = {"id": "lead_id", "created": "created_at"}


@pytest.mark.parametrize(
    "source",
    [
        {"table": "crm_leads", "rename": RENAME},
        {"query": "SELECT id AS lead_id, account_id, created AS created_at, src FROM crm_leads"},
    ],
    ids=["table", "query"],
)
def test_sqlite_table_or_query(tmp_path, crm_db, source):
    spec = {"url": f"sqlite:///{crm_db}", **source}
    leads = _by_id(_load(tmp_path, {"leads": spec}).leads)
    assert leads.index.tolist() == [1, 2, 3]
    assert leads.loc[2, "created_at"] == pd.Timestamp("2025-01-31 23:00", tz=UTC)
    assert leads.loc[2, "src"] == "None" and pd.isna(leads.loc[3, "src"])
    assert pd.isna(leads.loc[2, "account_id"]) and leads.loc[1, "account_id"] == 10


def test_env_var_in_the_url_is_expanded(tmp_path, crm_db, monkeypatch):
    monkeypatch.setenv("LEADSCORE_TEST_CRM_DIR", str(crm_db.parent))
    spec = {"url": "sqlite:///${LEADSCORE_TEST_CRM_DIR}/crm.db", "table": "crm_leads"}
    leads = _load(tmp_path, {"leads": spec | {"rename": RENAME}}).leads
    assert sorted(leads["lead_id"]) == [1, 2, 3]


def test_a_missing_env_var_is_an_input_error_naming_it(tmp_path, crm_db, monkeypatch):
    monkeypatch.delenv("LEADSCORE_TEST_UNSET", raising=False)
    spec = {"url": "sqlite:///${LEADSCORE_TEST_UNSET}/crm.db", "table": "crm_leads"}
    with pytest.raises(InputError, match=r"\$\{LEADSCORE_TEST_UNSET\}, which is not set"):
        _load(tmp_path, {"leads": spec})


def test_a_missing_sql_table_is_an_input_error_naming_it(tmp_path, crm_db):
    spec = {"url": f"sqlite:///{crm_db}", "table": "no_such_table"}
    with pytest.raises(InputError, match=r"table no_such_table at sqlite:///.*crm\.db: no such"):
        _load(tmp_path, {"leads": spec})


def test_a_failing_query_is_an_input_error(tmp_path, crm_db):
    spec = {"url": f"sqlite:///{crm_db}", "query": "SELECT * FROM crm_lead"}
    with pytest.raises(
        InputError, match=r"query at sqlite:///.*crm\.db: the query failed.*crm_lead"
    ):
        _load(tmp_path, {"leads": spec})


SECRET = "hunter2-s3cret"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres:${LEADSCORE_TEST_PW}@127.0.0.1:1/test",
        f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:1/test",
        "nosuchdialect://postgres:${LEADSCORE_TEST_PW}@127.0.0.1:1/test",
    ],
    ids=["env-password", "literal-password", "unknown-dialect"],
)
def test_errors_never_contain_the_password(tmp_path, monkeypatch, url):
    _write_other_tables(tmp_path)
    monkeypatch.setenv("LEADSCORE_TEST_PW", SECRET)
    with pytest.raises(InputError) as info:
        _load(tmp_path, {"leads": {"url": url, "table": "leads"}})
    message = str(info.value)
    assert "table leads at" in message and "127.0.0.1" in message
    assert SECRET not in message


@pytest.mark.postgres
def test_postgres_leads_load_like_the_same_file(tmp_path, postgres_url):
    _write_other_tables(tmp_path)
    (tmp_path / "activities.csv").write_text(
        "lead_id,occurred_at,activity_type\n1,2025-01-02T08:00:00Z,web_visit\n"
    )
    (tmp_path / "deals.csv").write_text(
        "deal_id,lead_id,created_at,closed_at,outcome\n7,1,2025-01-05,2025-02-05,won\n"
    )
    leads = pd.DataFrame(
        {
            "lead_id": [3, 1, 2],
            "account_id": pd.array([10, None, 10], dtype="Int64"),
            "created_at": pd.to_datetime(
                ["2025-03-01 00:00:00.5", "2025-01-01 10:00:00.123456", "2025-02-01 23:59:59"],
                format="ISO8601",
                utc=True,
            ),
            "source": ["Web", None, "None"],
            "employees": [1.5, None, 2.0],
            "opted_in": [True, False, True],
        }
    )
    leads.to_parquet(tmp_path / "leads.parquet", index=False)
    leads.to_csv(tmp_path / "leads.csv", index=False)
    table = f"leads_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres_url)
    try:
        leads.to_sql(table, engine, index=False)
        loads = {
            "parquet": _load(tmp_path, {"leads": {"path": "leads.parquet"}}),
            "csv": _load(tmp_path, {"leads": {"path": "leads.csv"}}),
            "postgres": _load(tmp_path, {"leads": {"url": postgres_url, "table": table}}),
        }
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()
    from_pg = _by_id(loads["postgres"].leads)
    assert str(from_pg["created_at"].dt.tz) == UTC
    assert from_pg.loc[1, "created_at"] == pd.Timestamp("2025-01-01 10:00:00.123456", tz=UTC)
    for kind in ("parquet", "csv"):
        pd.testing.assert_frame_equal(_by_id(loads[kind].leads), from_pg, check_dtype=False)
        assert fingerprint(loads[kind]) == fingerprint(loads["postgres"]), kind


# --- default_as_of -------------------------------------------------------------------------------


def _export(folder: Path, newest_in: str, newest: str) -> CrmTables:
    """A tiny export whose newest timestamp is `newest`, in the column named by `newest_in`."""
    stamps = dict.fromkeys(("lead", "activity", "deal_closed"), "2025-01-01T00:00:00Z")
    stamps[newest_in] = newest
    (folder / "accounts.csv").write_text("account_id\n10\n")
    (folder / "leads.csv").write_text(f"lead_id,account_id,created_at\n1,10,{stamps['lead']}\n")
    (folder / "activities.csv").write_text(
        f"lead_id,occurred_at,activity_type\n1,{stamps['activity']},web_visit\n"
    )
    (folder / "deals.csv").write_text(
        "deal_id,lead_id,created_at,closed_at,outcome\n"
        f"7,1,2024-12-01T00:00:00Z,{stamps['deal_closed']},won\n"
    )
    return load_tables(None, folder)


@pytest.mark.parametrize("newest_in", ["lead", "activity", "deal_closed"])
def test_an_old_export_is_as_of_the_day_after_its_newest_timestamp(tmp_path, newest_in):
    tables = _export(tmp_path, newest_in, "2025-06-10T17:45:00Z")
    moment = default_as_of(tables, now=pd.Timestamp("2026-01-01 12:00", tz=UTC))
    assert moment == pd.Timestamp("2025-06-11", tz=UTC)


def test_a_fresh_export_is_as_of_now(tmp_path):
    now = pd.Timestamp("2025-06-10 18:00", tz=UTC)
    tables = _export(tmp_path, "activity", "2025-06-10T17:45:00Z")
    assert default_as_of(tables, now=now) == now


def test_default_now_is_the_current_time(tmp_path):
    today = pd.Timestamp.now(tz=UTC).floor("D")  # the day after it is always later than now
    tables = _export(tmp_path, "lead", today.isoformat())
    before = pd.Timestamp.now(tz=UTC).floor("s")
    moment = default_as_of(tables)
    assert before <= moment <= pd.Timestamp.now(tz=UTC)


def test_clock_changes_resolve_instead_of_failing(tmp_path):
    _write_other_tables(tmp_path)
    (tmp_path / "leads.csv").write_text(
        "lead_id,account_id,created_at\n"
        "1,10,26/10/2025 02:30\n"  # happens twice in Berlin: the first (summer-time) pass
        "2,10,30/03/2025 02:30\n"  # never happens in Berlin: moved to the change, 03:00 CEST
    )
    created = _by_id(_load(tmp_path, {"leads": BERLIN_LEADS}).leads)["created_at"]
    assert created[1] == pd.Timestamp("2025-10-26 00:30", tz=UTC)
    assert created[2] == pd.Timestamp("2025-03-30 01:00", tz=UTC)


def test_value_maps_ignore_case_spaces_and_underscores(tmp_path):
    _write_other_tables(tmp_path)
    (tmp_path / "leads.csv").write_text(
        "lead_id,account_id,created_at,source\n"
        "1,10,2025-01-01,Page View\n2,10,2025-01-01,PAGE_VIEW\n3,10,2025-01-01,page-view\n"
    )
    spec = {"path": "leads.csv", "values": {"source": {"page view": "web"}}}
    assert set(_load(tmp_path, {"leads": spec}).leads["source"]) == {"web"}


def test_a_wrong_delimiter_gets_a_hint(tmp_path):
    _write_other_tables(tmp_path)
    (tmp_path / "leads.csv").write_text("Lead ID;account_id;created_at\n1;10;2025-01-01\n")
    spec = {"path": "leads.csv", "rename": {"Lead ID": "lead_id"}}
    with pytest.raises(InputError, match=r"Is csv\.delimiter right"):
        _load(tmp_path, {"leads": spec})
