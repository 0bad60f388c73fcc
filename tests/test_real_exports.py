"""Mappings that fit real exports without a pandas prep script first: policies for duplicate
keys and for units closed before they were created, generated ids, flat exports in time order,
plain explanations when snapshots cannot be made, and rule lists that cannot hide a typo."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadscore.features.build import FeatureSpec
from leadscore.features.segments import segment_columns
from leadscore.features.training_set import flat_training_set
from leadscore.pipeline.config import load_config
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.sources import load_tables


def _opportunities(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A unit-shaped export as a CRM writes it: its own names, local dates."""
    rng = np.random.default_rng(seed)
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 500, n), unit="D")
    closed = created + pd.to_timedelta(rng.integers(5, 120, n), unit="D")
    return pd.DataFrame(
        {
            "Opportunity ID": [f"OPP-{i:05d}" for i in range(n)],
            "Created": created.strftime("%d/%m/%Y"),
            "Closed": closed.strftime("%d/%m/%Y"),
            "Stage": rng.choice(["Closed Won", "Closed Lost"], n, p=[0.3, 0.7]),
            "Region": rng.choice(["North", "South"], n),
        }
    )


UNIT = {
    "data.shape": "unit",
    "data.leads": "{path: opps.csv, rename: {Opportunity ID: lead_id, Created: created_at, "
    "Closed: closed_at, Stage: outcome}, values: {outcome: {Closed Won: won, Closed Lost: lost}}, "
    'timestamps: {created_at: {format: "%d/%m/%Y"}, closed_at: {format: "%d/%m/%Y"}}',
}


def _config(extra: str = "", **sets: str):
    leads = UNIT["data.leads"] + (f", {extra}" if extra else "") + "}"
    return load_config(
        None, ("data.shape=unit", f"data.leads={leads}", *(f"{k}={v}" for k, v in sets.items()))
    )


def test_duplicate_ids_stop_the_run_or_keep_first_or_last_with_counts(tmp_path):
    opps = _opportunities()
    pd.concat([opps, opps.head(3).assign(Region="West")]).to_csv(tmp_path / "opps.csv", index=False)
    with pytest.raises(
        InputError, match=r"'Opportunity ID' must be unique.*duplicates: first or last"
    ):
        load_tables(_config(), tmp_path)
    for keep, region in (("first", "North"), ("last", "West")):
        warnings: list[str] = []
        tables = load_tables(_config(f"duplicates: {keep}"), tmp_path, warnings.append)
        assert len(tables.leads) == 400
        kept = tables.leads.set_index("lead_id").loc["OPP-00000", "Region"]
        assert kept == (opps.loc[0, "Region"] if keep == "first" else region)
        assert any("6 rows share a Opportunity ID" in w and "dropped 3" in w for w in warnings)


def test_units_closed_before_created_name_the_exports_key_or_are_dropped(tmp_path):
    opps = _opportunities()
    opps.loc[7, "Closed"] = "01/01/2020"
    opps.to_csv(tmp_path / "opps.csv", index=False)
    with pytest.raises(InputError, match=r"Opportunity ID 'OPP-00007'.*closed_before_created"):
        load_tables(_config(), tmp_path)
    warnings: list[str] = []
    tables = load_tables(_config("closed_before_created: drop"), tmp_path, warnings.append)
    assert "OPP-00007" not in set(tables.leads["lead_id"]) and len(tables.deals) == 399
    assert any("dropped 1 of 400 rows closed before they were created" in w for w in warnings)


def test_a_flat_export_without_ids_gets_row_numbers(tmp_path):
    pd.DataFrame({"Converted": [1, 0, 0, 1], "City": ["a", "b", "c", "d"]}).to_csv(
        tmp_path / "leads.csv", index=False
    )
    config = load_config(
        None,
        (
            "data.shape=flat",
            "data.leads={path: leads.csv, generated_id: true, rename: {Converted: outcome}, "
            "values: {outcome: {'1': won, '0': lost}}}",
        ),
    )
    tables = load_tables(config, tmp_path)
    assert tables.leads["lead_id"].tolist() == [1, 2, 3, 4]


def test_a_flat_export_in_time_order_holds_out_its_newest_rows():
    n = 1000
    leads = pd.DataFrame(
        {
            "lead_id": np.arange(n),
            "call_date": pd.date_range("2024-01-01", periods=n, freq="h").astype(str),
            "outcome": np.where(np.arange(n) % 4 == 0, "won", "lost"),
            "job": np.where(np.arange(n) % 3 == 0, "a", "b"),
        }
    ).sample(frac=1.0, random_state=0)
    from leadscore.features.tables import CrmTables

    empty = pd.DataFrame({"account_id": pd.Series([], dtype=object)})
    tables = CrmTables(
        empty, leads.assign(account_id=None, created_at=pd.NaT), pd.DataFrame(), pd.DataFrame()
    )
    config = load_config(
        None, ("data.shape=flat", "data.leads={path: x.csv}", "split.order_by=call_date")
    )
    ts = flat_training_set(
        tables,
        config.split,
        FeatureSpec(skip_columns=("lead_id", "call_date")),
        pd.Timestamp("2025-01-01", tz="UTC"),
    )
    order = leads.set_index("lead_id")["call_date"]
    holdout = pd.to_datetime(order.reindex(ts.rows.loc[ts.rows["split"] == "holdout", "lead_id"]))
    train = pd.to_datetime(order.reindex(ts.rows.loc[ts.rows["split"] == "train", "lead_id"]))
    assert len(holdout) == 200 and holdout.min() > train.max()  # the newest 20%, after training
    assert ts.split_method == "ordered by call_date" and "NEWEST ROWS" in ts.holdout_kind
    with pytest.raises(Exception, match="orders the rows of shape flat"):
        load_config(None, ("split.order_by=created_at",))


def test_segments_match_columns_as_the_mapping_does(small_tables):
    ids = small_tables.leads["lead_id"].head(5)
    frame = segment_columns(small_tables, ids, ("Source", "INDUSTRY"))
    assert list(frame.columns) == ["source", "account_industry"]


def test_yaml_booleans_in_a_value_map_get_a_hint():
    with pytest.raises(InputError, match=r"put the value in quotes, e\.g\. 'yes'"):
        load_config(None, ("data.leads={path: x.csv, values: {outcome: {yes: won}}}",))


# -- through the real CLI ---------------------------------------------------------------------


@pytest.mark.e2e
def test_a_typo_in_a_rule_list_stops_the_run_naming_the_close_match(
    run_cli, tmp_path, small_crm, write_crm
):
    write_crm(small_crm, tmp_path / "data")
    result = run_cli(
        "audit", "--data", "data", "--set", "features.exclude=[disqualfy_reason]", check=False
    )
    assert result.returncode == 2, result.stderr
    assert "features.exclude names 'disqualfy_reason'" in result.stderr
    assert "did you mean 'disqualify_reason'" in result.stderr


@pytest.mark.e2e
def test_units_that_close_the_day_they_open_are_explained(run_cli, tmp_path):
    opps = _opportunities(2000)
    opps["Closed"] = opps["Created"]  # decided at once, like a call
    opps.to_csv(tmp_path / "opps.csv", index=False)
    leads = UNIT["data.leads"] + "}"
    result = run_cli(
        "train",
        "--data",
        ".",
        "--set",
        "data.shape=unit",
        "--set",
        f"data.leads={leads}",
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "closed within a day of their creation: they are never open at a cutoff" in result.stderr
    assert "use shape flat, with split.order_by" in result.stderr


@pytest.mark.e2e
def test_training_says_one_line_about_screened_columns_and_logs_the_data_used(trained_copy):
    folder, train = trained_copy(6000, 3, "2026-10-01")
    noted = [line for line in train.stderr.splitlines() if "not a feature" in line]
    assert noted == []  # the detail is in the report (the shared X Education test counts lines)
    with sqlite3.connect(folder / "mlflow.db") as conn:
        (logged,) = conn.execute("SELECT value FROM params WHERE key = 'data.dir'").fetchone()
    assert logged == "demo_data"  # what ran (the demo's --data default)
    report = next(folder.rglob("validation_report.json"))
    details = json.loads(report.read_text())
    assert all(isinstance(line, str) for line in details)


@pytest.mark.e2e
def test_the_logged_config_names_the_data_folder_actually_used(
    run_cli, tmp_path, small_crm, write_crm
):
    write_crm(small_crm, tmp_path / "elsewhere")
    run_cli(
        "train", "--data", "elsewhere", "--as-of", "2026-11-01",
        "--set", "split.min_wins=10", "--set", "lifecycle.sql_from=none",
    )  # fmt: skip
    with sqlite3.connect(tmp_path / "mlflow.db") as conn:
        (logged,) = conn.execute("SELECT value FROM params WHERE key = 'data.dir'").fetchone()
    assert logged == "elsewhere"
    config_yaml = next(Path(tmp_path).rglob("config.yaml")).read_text()
    assert "dir: elsewhere" in config_yaml


def test_a_holdout_of_old_leads_only_is_warned_about(tmp_path):
    """The default as-of follows the newest timestamp, often a close date long after the last
    lead was created: the holdout's cutoffs then judge only old leads."""
    from leadscore.features.training_set import TrainingSet
    from leadscore.pipeline.catalog import Catalog
    from leadscore.pipeline.progress import Steps
    from leadscore.pipeline.steps.examples import _warn_hollow_holdout

    cutoffs = pd.to_datetime(["2017-09-01", "2017-10-01", "2017-11-01"], utc=True)
    rows = pd.DataFrame(
        {"lead_id": [1, 2, 3], "cutoff": cutoffs, "label": [0, 1, 0], "split": ["holdout"] * 3}
    )
    ts = TrainingSet(rows, pd.DataFrame(index=rows.index), FeatureSpec(), {}, [], "time-forward")
    leads = pd.DataFrame(
        {"lead_id": [1, 2, 3], "created_at": pd.to_datetime(["2017-03-01"] * 3, utc=True)}
    )
    from leadscore.features.tables import CrmTables

    tables = CrmTables(pd.DataFrame(), leads, pd.DataFrame(), pd.DataFrame())
    catalog = Catalog(load_config(None), tmp_path, steps=Steps(quiet=True))
    _warn_hollow_holdout(ts, tables, catalog)
    (warning,) = catalog.warnings
    assert "all come after the newest lead (created 2017-03-01" in warning
    recent = leads.assign(created_at=pd.to_datetime(["2017-10-15"] * 3, utc=True))
    catalog.warnings.clear()
    _warn_hollow_holdout(
        ts, CrmTables(pd.DataFrame(), recent, pd.DataFrame(), pd.DataFrame()), catalog
    )
    assert catalog.warnings == []


def test_strict_mode_keeps_only_the_vouched_attributes_and_checks_their_names(small_tables):
    """features.known_at_creation: only the columns a person vouches for become attribute
    features (engagement and deal features stay, being timed); a name that is not a column
    stops the run like any rule list."""
    from leadscore.features.build import build_features
    from leadscore.pipeline.io.checks import check_named_columns
    from leadscore.pipeline.steps.examples import feature_spec

    spine = (
        small_tables.leads[["lead_id"]].head(50).assign(cutoff=pd.Timestamp("2026-06-01", tz="UTC"))
    )
    everything = build_features(small_tables, spine, feature_spec(load_config(None)))
    config = load_config(None, ("features.known_at_creation=[Source, account_industry]",))
    strict = build_features(small_tables, spine, feature_spec(config))
    attributes = set(everything.columns) - set(strict.columns)
    assert {"job_title", "country", "account_employees"} <= attributes
    assert {"source", "account_industry", "lead_age_days"} <= set(strict.columns)
    assert [c for c in strict.columns if c not in everything.columns] == []
    assert any(c.startswith("n_") or "activit" in c for c in strict.columns)  # timed ones stay
    check_named_columns(config, small_tables)  # both names are columns (one as its feature)
    typo = load_config(None, ("features.known_at_creation=[sourse]",))
    with pytest.raises(InputError, match=r"known_at_creation.*source"):
        check_named_columns(typo, small_tables)
