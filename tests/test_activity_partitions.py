"""Scoring reads the activity log in lead partitions: the same features as the whole log in
memory, the same checks and messages per batch, and nothing left on disk afterwards."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet
import pytest

from leadscore.features.build import FeatureSpec, build_features
from leadscore.features.shapes import shape_for
from leadscore.features.tables import clean, crm_as_of
from leadscore.pipeline.config import SourceConfig
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io import activities as activity_partitions
from leadscore.pipeline.io.activities import (
    ActivityPartitions,
    SpilledActivities,
    lead_chunks,
    partition_activities,
)
from leadscore.pipeline.io.checks import SORT_KEYS, canonical_order
from leadscore.pipeline.io.sources import load_tables
from leadscore.pipeline.synthetic_crm import SyntheticCrm

MOMENT = pd.Timestamp("2026-11-01", tz="UTC")


def _partition(
    folder: Path,
    spec: SourceConfig,
    leads: pd.Series,
    bucket_size: int,
    warnings: list[str] | None = None,
) -> ActivityPartitions:
    out = folder / "parts"
    out.mkdir()
    where = str(folder / (spec.path or "sql"))
    warn = warnings.append if warnings is not None else None
    return partition_activities(spec, where, folder, leads, out, warn, bucket_size=bucket_size)


@pytest.fixture
def crm_folder(small_crm: SyntheticCrm, write_crm, tmp_path: Path) -> Path:
    return write_crm(small_crm, tmp_path / "crm")


@pytest.mark.parametrize("chunk_size, bucket_size", [(300, 300), (300, 1000), (100_000, 10_000)])
def test_partitioned_chunks_build_the_features_of_the_whole_log(
    crm_folder, monkeypatch, chunk_size, bucket_size
):
    monkeypatch.setattr(activity_partitions, "BATCH_ROWS", 7_000)  # many batches per source
    whole = load_tables(None, crm_folder)
    in_memory = clean(crm_as_of(whole, MOMENT))
    spine = shape_for("events").open_spine(in_memory, MOMENT)
    lite = clean(crm_as_of(load_tables(None, crm_folder, activities=False), MOMENT))
    assert lite.activities.empty
    parts = _partition(
        crm_folder, SourceConfig(path="activities.parquet"), whole.leads["lead_id"], bucket_size
    )
    assert parts.rows == len(whole.activities)

    expected = build_features(in_memory, spine, FeatureSpec())
    spilled = SpilledActivities(parts).at(MOMENT)
    pieces = list(spilled.chunks(lite, spine, chunk_size))
    assert all(len(chunk) <= chunk_size for _, chunk in pieces)
    if chunk_size < len(spine):
        assert len(pieces) > 1
    for part, chunk in pieces:  # each chunk holds its own leads' activities and no others
        assert set(part.activities["lead_id"]) <= set(chunk["lead_id"])
    got = pd.concat([build_features(part, chunk, FeatureSpec()) for part, chunk in pieces])
    pd.testing.assert_frame_equal(got, expected)
    # and the same chunks as the in-memory path's, activity for activity
    memory_rows = pd.concat([p.activities for p, _ in lead_chunks(in_memory, spine, chunk_size)])
    memory_rows["occurred_at"] = memory_rows["occurred_at"].dt.as_unit("ns")  # the unit only
    disk_rows = pd.concat([p.activities for p, _ in pieces])
    pd.testing.assert_frame_equal(
        disk_rows.reset_index(drop=True), memory_rows.reset_index(drop=True)
    )
    # the spilled log builds any spine's features as the whole log does: leads at several
    # cutoffs, in any order (training and monitor use it this way)
    cutoffs = pd.DatetimeIndex(["2026-05-01", "2026-08-01", "2026-10-15"], tz="UTC")
    from leadscore.features.snapshots import open_leads

    many = open_leads(in_memory, cutoffs, 365).sample(frac=1.0, random_state=1)
    pd.testing.assert_frame_equal(
        spilled.features(lite, many, FeatureSpec()),
        build_features(in_memory, many, FeatureSpec()),
    )


def test_csv_and_sql_sources_stream_to_the_same_partitions(crm_folder, monkeypatch):
    monkeypatch.setattr(activity_partitions, "BATCH_ROWS", 5_000)
    whole = load_tables(None, crm_folder)
    leads = whole.leads["lead_id"]
    acts = pd.read_parquet(crm_folder / "activities.parquet")
    csv = crm_folder / "as_csv"
    csv.mkdir()
    acts.to_csv(csv / "activities.csv", index=False)
    with sqlite3.connect(crm_folder / "crm.db") as conn:
        acts.assign(occurred_at=acts["occurred_at"].astype(str)).to_sql("acts", conn, index=False)

    def everything(parts: ActivityPartitions) -> pd.DataFrame:
        return parts.read(range(len(leads) // parts.bucket_size + 1))

    from_parquet = everything(
        _partition(crm_folder, SourceConfig(path="activities.parquet"), leads, 500)
    )
    from_csv = everything(_partition(csv, SourceConfig(path="activities.csv"), leads, 500))
    url = f"sqlite:///{crm_folder / 'crm.db'}"
    sql_folder = crm_folder / "sql"
    sql_folder.mkdir()
    from_sql = everything(_partition(sql_folder, SourceConfig(url=url, table="acts"), leads, 500))
    # the loaded table, in its canonical order, is what every streamed source gives back
    expected = whole.activities[["lead_id", "occurred_at", "activity_type"]]
    for got in (from_parquet, from_csv, from_sql):
        assert len(got) == len(expected)
        assert (got["lead_id"].to_numpy() == expected["lead_id"].to_numpy()).all()
        assert got["occurred_at"].equals(expected["occurred_at"].dt.as_unit("ns"))
        assert (got["activity_type"].astype(str) == expected["activity_type"].astype(str)).all()


def _csv(folder: Path, frame: pd.DataFrame) -> Path:
    folder.mkdir(exist_ok=True)
    frame.to_csv(folder / "activities.csv", index=False)
    return folder


def _acts(n: int, leads: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": [leads[i % len(leads)] for i in range(n)],
            "occurred_at": [f"2026-01-01T00:{i % 60:02d}:00Z" for i in range(n)],
            "activity_type": ["email_open"] * n,
        }
    )


def test_a_bad_timestamp_in_a_later_batch_names_file_column_and_row(tmp_path, monkeypatch):
    monkeypatch.setattr(activity_partitions, "BATCH_ROWS", 100)
    acts = _acts(450, [1, 2, 3])
    acts.loc[377, "occurred_at"] = "yesterday-ish"
    folder = _csv(tmp_path / "bad", acts)
    with pytest.raises(InputError) as caught:
        _partition(folder, SourceConfig(path="activities.csv"), pd.Series([1, 2, 3]), 10)
    message = str(caught.value)
    assert "activities.csv" in message and "'occurred_at'" in message
    assert "yesterday-ish" in message and "ISO 8601" in message
    acts.loc[377, "occurred_at"] = ""
    folder = _csv(tmp_path / "empty", acts)
    with pytest.raises(
        InputError, match=r"'occurred_at' is empty in 1 row\(s\) \(first at row 378\)"
    ):
        _partition(folder, SourceConfig(path="activities.csv"), pd.Series([1, 2, 3]), 10)


def test_unknown_leads_are_counted_over_all_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(activity_partitions, "BATCH_ROWS", 100)
    folder = _csv(tmp_path / "some", _acts(450, [1, 2, 3, 99]))  # lead 99 is not a lead
    warnings: list[str] = []
    parts = _partition(
        folder, SourceConfig(path="activities.csv"), pd.Series([1, 2, 3]), 10, warnings
    )
    assert parts.rows == 450 - 112
    assert any(
        "112 of 450 rows have a lead_id not in the leads table, e.g. 99" in w for w in warnings
    )
    assert len(warnings) == 1  # one warning for the source, not one per batch

    folder = _csv(tmp_path / "none", _acts(450, [7, 8]))
    with pytest.raises(InputError, match=r"no value of column 'lead_id' matches leads\.lead_id"):
        _partition(folder, SourceConfig(path="activities.csv"), pd.Series([1, 2, 3]), 10)


def test_dropped_rows_are_warned_about_once_with_the_totals(tmp_path, monkeypatch):
    monkeypatch.setattr(activity_partitions, "BATCH_ROWS", 100)
    acts = _acts(450, [1, 2, 3])
    acts.loc[acts.index % 10 == 0, "occurred_at"] = ""  # 45 rows, in every batch
    folder = _csv(tmp_path / "gaps", acts)
    spec = SourceConfig(path="activities.csv", drop_rows_without=["occurred_at"])
    warnings: list[str] = []
    parts = _partition(folder, spec, pd.Series([1, 2, 3]), 10, warnings)
    assert warnings == [f"{folder / 'activities.csv'}: dropped 45 of 450 rows without occurred_at"]
    assert parts.rows == 405


def test_empty_and_unreadable_sources_are_input_errors(tmp_path):
    (tmp_path / "activities.csv").write_text("")
    with pytest.raises(InputError, match=r"activities\.csv: the file is empty"):
        _partition(tmp_path, SourceConfig(path="activities.csv"), pd.Series([1]), 10)
    (tmp_path / "activities.parquet").write_text("not parquet at all")
    with pytest.raises(InputError, match=r"activities\.parquet: cannot be read as parquet"):
        _partition(
            tmp_path / "..",
            SourceConfig(path=f"{tmp_path.name}/activities.parquet"),
            pd.Series([1]),
            10,
        )


@pytest.mark.e2e
def test_score_leaves_no_partition_files_behind(trained_copy, run_cli, monkeypatch, tmp_path):
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setenv("TMPDIR", str(spill))
    workdir, _ = trained_copy(6000, 3, "2026-10-01")  # as test_incremental: trained once
    run_cli("score", "--as-of", "2026-10-01", "--output", "scores.db")
    assert not list(spill.glob("leadscore-activities-*"))
    acts = pd.read_parquet(workdir / "demo_data" / "activities.parquet")
    acts["occurred_at"] = acts["occurred_at"].astype(str)
    acts.loc[len(acts) - 1, "occurred_at"] = "not a time"
    acts.to_parquet(workdir / "demo_data" / "activities.parquet", index=False)
    failed = run_cli("score", "--as-of", "2026-10-01", "--output", "scores.db", check=False)
    assert failed.returncode == 2, failed.stderr
    assert "activities.parquet" in failed.stderr and "'occurred_at'" in failed.stderr
    assert not list(spill.glob("leadscore-activities-*"))


def test_batches_whose_ids_read_as_another_type_still_match(tmp_path, monkeypatch):
    """A CSV read a chunk at a time guesses each chunk's types: an early chunk of numeric ids
    must still match leads whose ids are text (some are prefixed)."""
    monkeypatch.setattr(activity_partitions, "BATCH_ROWS", 100)
    acts = _acts(300, [1, 2, 3])
    acts["lead_id"] = acts["lead_id"].astype(object)
    acts.loc[250:, "lead_id"] = "LD-9"  # only the last batch has text ids
    folder = _csv(tmp_path / "mixed", acts)
    leads = pd.Series(["1", "2", "3", "LD-9"], dtype=object)
    warnings: list[str] = []
    parts = _partition(folder, SourceConfig(path="activities.csv"), leads, 10, warnings)
    assert parts.rows == 300 and warnings == []
    numbers = _partition(_csv(tmp_path / "numbers", _acts(300, [1, 2])),
                         SourceConfig(path="activities.csv"), pd.Series([1, 2, 3]), 10)  # fmt: skip
    assert numbers.rows == 300


def test_row_numbers_in_messages_count_source_rows_after_dropped_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(activity_partitions, "BATCH_ROWS", 100)
    acts = _acts(450, [1, 2, 3])
    acts.loc[[5, 120, 230], "lead_id"] = None  # dropped (drop_rows_without), before row 378
    acts.loc[377, "occurred_at"] = ""
    folder = _csv(tmp_path / "gaps", acts)
    spec = SourceConfig(path="activities.csv", drop_rows_without=["lead_id"])
    with pytest.raises(InputError, match=r"empty in 1 row\(s\) \(first at row 378\)"):
        _partition(folder, spec, pd.Series([1, 2, 3]), 10)


@pytest.mark.parametrize("ids", ["sorted text", "shuffled text", "sorted numbers"])
def test_buckets_read_in_the_canonical_order_whatever_the_ids(tmp_path, ids):
    """A bucket's rows come back ordered by (lead, time, type), as a loaded log is: from the
    leads' positions when the leads table's ids are in canonical order, from the ids
    themselves when not. Times tie within a lead, so the type decides some rows."""
    rng = np.random.default_rng(7)
    names = [f"L{k:05d}" for k in range(400)] if "text" in ids else list(range(1000, 1400))
    leads = pd.Series(names)
    if ids.startswith("shuffled"):
        leads = leads.sample(frac=1.0, random_state=3).reset_index(drop=True)
    n = 6000
    activities = pd.DataFrame(
        {
            "lead_id": rng.choice(np.asarray(names, dtype=object), n),
            "occurred_at": pd.Timestamp("2026-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 40, n), unit="D"),
            "activity_type": rng.choice(["web_visit", "email_open", "meeting", "webinar"], n),
        }
    )
    activities.to_parquet(tmp_path / "activities.parquet", index=False)
    parts = _partition(tmp_path, SourceConfig(path="activities.parquet"), leads, 50)
    assert parts.ids_sorted == ids.startswith("sorted")
    got = pd.concat([parts.read([k]) for k in range(-(-len(leads) // 50))], ignore_index=True)
    expected = canonical_order(activities, SORT_KEYS["activities"])
    got = canonical_order(got, ["lead_id"]) if not parts.ids_sorted else got  # buckets by position
    for column in expected.columns:
        assert got[column].astype(str).tolist() == expected[column].astype(str).tolist(), column


@pytest.mark.parametrize(
    "values",
    [
        pd.Categorical(["web_visit", None, "Email Open", "web_visit"]),
        pd.Categorical(["é", "a b", None], categories=["a b", "é", "unused"]),
        pd.Categorical([], categories=["meeting"]),
        pd.Categorical([3, 1, None, 3]),  # spelt through floats, as astype does: '3.0'
        pd.Categorical([True, False, None]),
        pd.Series(["x", None, "y"], dtype=object),
        pd.Series(["x", None], dtype="str"),
        pd.Series([4, 5], dtype="int64"),
    ],
)
def test_activity_types_are_spelt_as_astype_string_spells_them(values):
    """Spilled activity types: a categorical column of text (Parquet written from pandas) is
    spelt per category, and gives what spelling every value gives."""
    column = pd.Series(values)
    expected = pa.Array.from_pandas(column.astype("string"))
    if isinstance(expected, pa.ChunkedArray):
        expected = expected.combine_chunks()
    got = activity_partitions._arrow_text(column)
    assert got.cast(pa.string()).to_pylist() == expected.cast(pa.string()).to_pylist()


def test_streaming_a_parquet_log_holds_one_batch_not_the_file(tmp_path: Path) -> None:
    """Arrow's Parquet reader, pre-buffering, kept every range it had read until it was closed:
    streaming a 0.8 GB log held about as much again by its end. The reader's live allocations
    stay near one batch, whatever the file's size (here 30 row groups of random integers)."""
    from leadscore.pipeline.io.readers import iter_source

    rng = np.random.default_rng(0)
    rows, groups = 100_000, 30
    table = pa.table({"lead_id": rng.integers(0, 2**62, rows * groups)})
    path = tmp_path / "activities.parquet"
    pa.parquet.write_table(table, path, row_group_size=rows, compression="none")
    del table
    start = pa.total_allocated_bytes()
    growth = []
    for batch in iter_source(SourceConfig(path=path.name), tmp_path, rows):
        growth.append(pa.total_allocated_bytes() - start)
        del batch
    assert len(growth) == groups
    file_size = path.stat().st_size  # 24 MB
    assert max(growth) < file_size / 5, [g // 2**20 for g in growth]
