"""Attributes with a field history are point in time: at each cutoff a column takes the value of
its newest change before the cutoff, and nothing stamped at or after the cutoff changes it."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadscore.features.attributes import attribute_features
from leadscore.features.build import FeatureSpec
from leadscore.features.tables import CrmTables, empty_history
from leadscore.features.training_set import attribute_names
from leadscore.pipeline.config import load_config
from leadscore.pipeline.io.sources import load_tables

T0 = pd.Timestamp("2025-01-01", tz="UTC")
DAYS = 120
TIERS = ("gold", "Silver", "bronze", None)


def _tables(history: pd.DataFrame) -> CrmTables:
    leads = pd.DataFrame(
        {
            "lead_id": [1, 2, 3, 4],
            "account_id": pd.array([10, 10, 11, None], dtype="Int64"),
            "created_at": [T0] * 4,
            "tier": ["gold", "gold", "bronze", "silver"],  # the export's (final) values
            "region": ["emea", "amer", "emea", "apac"],  # untimed
        }
    )
    accounts = pd.DataFrame({"account_id": [10, 11], "plan": ["pro", "free"]})
    empty = pd.DataFrame()
    return CrmTables(accounts, leads, empty, empty, history)


def _history(rows: list[tuple[str, int, str, str | None, int]]) -> pd.DataFrame:
    """(kind, id, field, value, day) -> the canonical history frame."""
    frame = pd.DataFrame(
        {
            "lead_id": [i if k == "lead" else None for k, i, *_ in rows],
            "account_id": [i if k == "account" else None for k, i, *_ in rows],
            "field": [f for _, _, f, _, _ in rows],
            "value": [v for _, _, _, v, _ in rows],
            "changed_at": [T0 + pd.Timedelta(days=d) for *_, d in rows],
        }
    )
    if frame.empty:
        return empty_history()
    return frame.astype(
        {"lead_id": object, "account_id": object, "changed_at": "datetime64[ns, UTC]"}
    )


def _at(history: pd.DataFrame, day: int) -> pd.DataFrame:
    spine = pd.DataFrame({"lead_id": [1, 2, 3, 4], "cutoff": T0 + pd.Timedelta(days=day)})
    return attribute_features(_tables(history), spine, ("lead_id", "account_id"))


def test_a_column_takes_its_newest_change_before_the_cutoff():
    history = _history(
        [
            ("lead", 1, "tier", "bronze", 5),
            ("lead", 1, "tier", "Gold", 40),
            ("lead", 2, "tier", "silver", 30),
            ("account", 10, "plan", "trial", 1),
            ("account", 10, "plan", "pro", 50),
        ]
    )
    early = _at(history, 10)
    assert early["tier"].tolist() == ["bronze", None, None, None]  # unknown before a change
    assert early["region"].tolist() == ["emea", "amer", "emea", "apac"]  # untimed: as exported
    # a column with a history is known from it alone: account 11 never had a plan recorded
    assert early["account_plan"].tolist() == ["trial", "trial", None, None]
    assert _at(history, 40)["tier"].tolist() == ["bronze", "silver", None, None]  # not at 40
    late = _at(history, 60)
    assert late["tier"].tolist() == ["gold", "silver", None, None]  # values normalised
    assert late["account_plan"].tolist() == ["pro", "pro", None, None]


@st.composite
def histories(draw):
    """A random history, a cutoff, and the same history with rows stamped at or after the
    cutoff added, removed, retimed (staying at or after it) or given other values."""
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["lead", "account"]),
                st.integers(1, 4),
                st.sampled_from(["tier", "plan"]),
                st.sampled_from(TIERS),
                st.integers(0, DAYS),
            ),
            max_size=25,
        )
    )
    rows = [
        (k, (10 + i % 2) if k == "account" else i, "plan" if k == "account" else f, v, d)
        for k, i, f, v, d in rows
    ]
    cutoff = draw(st.integers(0, DAYS))
    later = []
    for kind, i, f, v, day in rows:
        if day < cutoff:
            later.append((kind, i, f, v, day))
            continue
        action = draw(st.sampled_from(["keep", "drop", "retime", "revalue"]))
        if action == "keep":
            later.append((kind, i, f, v, day))
        elif action == "retime":
            later.append((kind, i, f, v, draw(st.integers(cutoff, DAYS + 30))))
        elif action == "revalue":
            later.append((kind, i, f, draw(st.sampled_from(TIERS)), day))
    extra = draw(st.lists(st.tuples(st.integers(1, 4), st.integers(cutoff, DAYS + 30)), max_size=5))
    later += [("lead", i, "tier", "platinum", d) for i, d in extra]
    return rows, later, cutoff


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(histories())
def test_changes_at_or_after_a_cutoff_change_no_feature_at_it(case):
    rows, later, cutoff = case
    if {r[2] for r in rows if r[0] == "lead"} != {r[2] for r in later if r[0] == "lead"}:
        return  # a field gaining or losing its history everywhere changes what it is
    if {r[2] for r in rows if r[0] == "account"} != {r[2] for r in later if r[0] == "account"}:
        return
    pd.testing.assert_frame_equal(_at(_history(rows), cutoff), _at(_history(later), cutoff))


def test_history_backed_columns_are_not_audited_as_untimed():
    history = _history([("lead", 1, "tier", "gold", 3), ("account", 10, "plan", "pro", 3)])
    names = attribute_names(_tables(history), FeatureSpec(skip_columns=("lead_id", "account_id")))
    assert "tier" not in names and "account_plan" not in names and "region" in names


def test_a_salesforce_style_history_export_maps_onto_the_leads(tmp_path, small_crm, write_crm):
    data = write_crm(small_crm, tmp_path / "data")
    leads = small_crm.leads.head(3)
    pd.DataFrame(
        {
            "LeadId": [str(i) for i in leads["lead_id"]]
            + ["999999", str(leads["lead_id"].iloc[0])],
            "Field": ["Seniority", "seniority", "Job Title", "Seniority", "NoSuchField"],
            "NewValue": ["VP", "Manager", "CTO", "VP", "x"],
            "CreatedDate": ["2025-01-02T10:00:00Z"] * 5,
        }
    ).to_csv(data / "lead_history.csv", index=False)
    config = load_config(
        None,
        (
            "data.attribute_history={path: lead_history.csv, rename: {LeadId: lead_id, "
            "Field: field, NewValue: value, CreatedDate: changed_at}}",
        ),
    )
    warnings: list[str] = []
    tables = load_tables(config, data, warnings.append)
    history = tables.history
    assert sorted(history["field"].unique()) == ["job_title", "seniority"]  # the tables' names
    assert len(history) == 3 and history["lead_id"].map(type).eq(int).all()
    assert any("2 of 5 rows name a field that is no column" in w for w in warnings)


def test_shape_flat_refuses_a_history():
    with pytest.raises(Exception, match="needs timestamps"):
        load_config(
            None,
            (
                "data.shape=flat",
                "data.leads={path: leads.csv}",
                "data.attribute_history={path: h.csv}",
            ),
        )
