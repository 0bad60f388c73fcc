"""Every load checks its input; bad input names the file and column."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.checks import (
    SORT_KEYS,
    canonical_order,
    canonical_permutation,
    sort_codes,
)
from leadscore.pipeline.io.sources import _canonical_text, _row_hashes, fingerprint, load_tables


@pytest.fixture
def data_dir(small_crm, tmp_path, write_crm) -> Path:
    return write_crm(small_crm, tmp_path / "data")


def _as_csv(data_dir: Path, name: str) -> Path:
    frame = pd.read_parquet(data_dir / f"{name}.parquet")
    (data_dir / f"{name}.parquet").unlink()
    path = data_dir / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


def test_loads_parquet_and_csv_alike(data_dir):
    from_parquet = load_tables(None, data_dir)
    _as_csv(data_dir, "activities")
    _as_csv(data_dir, "deals")
    from_csv = load_tables(None, data_dir)
    assert len(from_csv.activities) == len(from_parquet.activities)
    assert str(from_csv.activities["occurred_at"].dt.tz) == "UTC"
    pd.testing.assert_series_equal(
        from_csv.deals["closed_at"].dt.floor("s"),
        from_parquet.deals["closed_at"].dt.floor("s"),
        check_dtype=False,
    )


def test_naive_and_offset_timestamps_become_utc(data_dir):
    path = _as_csv(data_dir, "activities")
    frame = pd.read_csv(path)
    frame.loc[0, "occurred_at"] = "2025-01-01 10:00:00"
    frame.loc[1, "occurred_at"] = "2025-01-01T12:00:00+02:00"
    frame.to_csv(path, index=False)
    acts = load_tables(None, data_dir).activities
    first_two = acts[acts["lead_id"] == frame.loc[0, "lead_id"]]  # loads sort by lead and time
    both = first_two["occurred_at"] == pd.Timestamp("2025-01-01 10:00", tz="UTC")
    assert both.sum() == 2


def _expect(data_dir: Path, *fragments: str) -> None:
    with pytest.raises(InputError) as info:
        load_tables(None, data_dir)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_missing_column(data_dir):
    path = _as_csv(data_dir, "leads")
    pd.read_csv(path).drop(columns="created_at").to_csv(path, index=False)
    _expect(data_dir, str(path), "'created_at'", "missing required column")


def test_bad_timestamp(data_dir):
    path = _as_csv(data_dir, "activities")
    frame = pd.read_csv(path)
    frame.loc[5, "occurred_at"] = "last tuesday"
    frame.to_csv(path, index=False)
    _expect(data_dir, str(path), "'occurred_at'", "'last tuesday'", "ISO 8601")


def test_empty_file(data_dir):
    (data_dir / "deals.parquet").unlink()
    (data_dir / "deals.csv").write_text("")
    _expect(data_dir, "deals.csv", "empty")


def test_missing_table(data_dir):
    (data_dir / "accounts.parquet").unlink()
    _expect(data_dir, "accounts.parquet or accounts.csv")


def test_duplicate_key(data_dir):
    path = _as_csv(data_dir, "leads")
    frame = pd.read_csv(path)
    pd.concat([frame, frame.head(2)]).to_csv(path, index=False)
    _expect(data_dir, str(path), "'lead_id' must be unique")


def test_unknown_outcome(data_dir):
    path = _as_csv(data_dir, "deals")
    frame = pd.read_csv(path)
    frame.loc[frame["outcome"].notna().idxmax(), "outcome"] = "Pending"
    frame.to_csv(path, index=False)
    _expect(data_dir, str(path), "'outcome'", "'Pending'")


def test_closed_before_created(data_dir):
    path = _as_csv(data_dir, "deals")
    frame = pd.read_csv(path)
    row = frame["closed_at"].notna().idxmax()
    frame.loc[row, "closed_at"] = "2020-01-01T00:00:00Z"
    frame.to_csv(path, index=False)
    _expect(data_dir, str(path), "'closed_at' is before 'created_at'")


@pytest.mark.parametrize(
    ("table", "column"), [("leads", "created_at"), ("activities", "occurred_at")]
)
def test_empty_required_timestamp(data_dir, table, column):
    path = _as_csv(data_dir, table)
    frame = pd.read_csv(path)
    frame.loc[7, column] = None
    frame.to_csv(path, index=False)
    _expect(data_dir, str(path), repr(column), "empty in 1 row(s)")


def test_join_keys_of_another_type_are_fatal(data_dir):
    path = _as_csv(data_dir, "activities")
    frame = pd.read_csv(path)
    frame["lead_id"] = "L-" + frame["lead_id"].astype(str)
    frame.to_csv(path, index=False)
    _expect(data_dir, str(path), "no value of column 'lead_id' matches leads.lead_id")


def test_some_unknown_join_keys_are_a_warning(data_dir):
    path = _as_csv(data_dir, "activities")
    frame = pd.read_csv(path)
    frame.loc[:9, "lead_id"] = -1
    frame.to_csv(path, index=False)
    warnings: list[str] = []
    load_tables(None, data_dir, warnings.append)
    assert len(warnings) == 1
    assert "activities.csv: 10 of" in warnings[0] and "-1" in warnings[0]


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_tables(None, tmp_path / "nowhere")


def test_fingerprint_changes_with_the_data_not_the_format(data_dir):
    before = fingerprint(load_tables(None, data_dir))
    _as_csv(data_dir, "leads")
    assert fingerprint(load_tables(None, data_dir)) == before
    acts = pd.read_parquet(data_dir / "activities.parquet")
    acts.iloc[:-1].to_parquet(data_dir / "activities.parquet", index=False)
    assert fingerprint(load_tables(None, data_dir)) != before


def _activity_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "lead_id": rng.integers(0, 50, n),
            "occurred_at": pd.to_datetime(rng.integers(0, 20, n), unit="D", utc=True),
            "activity_type": pd.Categorical(rng.choice(["web_visit", "email_open", "meeting"], n)),
            "row": np.arange(n),  # tells rows that tie on every key apart
        }
    )


@pytest.mark.parametrize("presorted", ["none", "lead_and_time", "all"])
def test_canonical_order_equals_a_stable_pandas_sort(presorted: str) -> None:
    keys = list(SORT_KEYS["activities"])
    frame = _activity_frame(5000, 0)
    if presorted == "lead_and_time":  # the usual export: ties on (lead, time) in any order
        frame = frame.sort_values(keys[:2], kind="stable").reset_index(drop=True)
    elif presorted == "all":
        frame = frame.sort_values(keys, kind="stable").reset_index(drop=True)
    expected = frame.sort_values(keys, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(canonical_order(frame, keys), expected)


def test_canonical_order_with_missing_keys_does_not_depend_on_input_order() -> None:
    frame = _activity_frame(3000, 1).drop(columns="row")
    frame.loc[::7, "occurred_at"] = pd.NaT
    frame["lead_id"] = frame["lead_id"].astype(str).where(frame.index % 11 != 0, None)
    keys = list(SORT_KEYS["activities"])
    shuffled = frame.sample(frac=1, random_state=2).reset_index(drop=True)
    pd.testing.assert_frame_equal(canonical_order(shuffled, keys), canonical_order(frame, keys))


@pytest.mark.parametrize("categories", [["web", "email", "call", "demo"], ["call", "demo"]])
def test_a_categorical_sorts_by_its_codes_as_it_did_by_its_factorized_values(categories) -> None:
    """Categories in any order (a Parquet dictionary's, not sorted), missing values, unused
    and absent ones: the codes order rows as factorizing the values with sort=True did."""
    rng = np.random.default_rng(3)
    values = pd.Series(rng.choice([*categories, None], 4000), dtype=object)
    column = pd.Series(pd.Categorical(values, categories=[*categories, "unused"]))
    before = pd.factorize(column, sort=True, use_na_sentinel=True)[0]
    now = sort_codes(column)
    np.testing.assert_array_equal(np.argsort(now, kind="stable"), np.argsort(before, kind="stable"))
    assert (now == -1).sum() == column.isna().sum()


def _canonical_text_before(values: pd.Series) -> pd.Series:
    """`_canonical_text` as it was before it was vectorised (2026-11-30): one value at a time."""
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
        return _canonical_text(values)  # unchanged
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce").astype(float)
        return numbers.map(lambda v: "" if np.isnan(v) else f"{v:.10g}")
    return values.astype(object).map(lambda v: "" if v is None or v != v else str(v))


EDGES = [0.0, -0.0, 1.0, -1.0, 9_999_999_999.0, 1e10, -1e10, 123456789.5, 1e-7, 2.5e15,
         np.nan, np.inf, -np.inf, 0.1 + 0.2, 2**53, -(2**63), 1e300]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    floats=st.lists(st.one_of(st.floats(), st.sampled_from(EDGES)), max_size=40),
    ints=st.lists(st.integers(-(10**12), 10**12), max_size=40),
    texts=st.lists(st.one_of(st.none(), st.text(max_size=5), st.just(np.nan)), max_size=40),
)
def test_the_vectorised_canonical_text_spells_every_value_as_before(floats, ints, texts):
    columns = [
        pd.Series(floats, dtype=float),
        pd.Series(ints, dtype="int64"),
        pd.Series(ints, dtype="Int64").where(pd.Series(ints, dtype="int64") % 3 != 0),
        pd.Series([i % 2 == 0 for i in ints], dtype=bool),
        pd.Series(texts, dtype=object),
        pd.Series(texts, dtype=object).astype("category"),
        pd.Series([t if isinstance(t, str) else None for t in texts], dtype="str"),
        pd.Series([*ints[:3], "mixed", None], dtype=object),  # not all text: one at a time
        pd.Series(ints, dtype="int64").astype("category"),
    ]
    for column in columns:
        expected = _canonical_text_before(column).to_numpy(dtype=object)
        assert list(_canonical_text(column).to_numpy(dtype=object)) == list(expected), column.dtype


@settings(max_examples=40, deadline=None)
@given(
    ints=st.lists(st.integers(-(10**12), 10**12), max_size=30),
    texts=st.lists(st.one_of(st.none(), st.text(max_size=5)), max_size=30),
    columns=st.integers(0, 4),
)
def test_row_hashes_one_column_at_a_time_equal_pandas_whole_frame_hashes(ints, texts, columns):
    n = min(len(ints), len(texts))
    kinds = [
        pd.Series(ints[:n], dtype="int64"),
        pd.Series(texts[:n], dtype=object),
        pd.Series(texts[:n], dtype=object).astype("category"),
        pd.to_datetime(pd.Series(ints[:n], dtype="int64") * 1000, utc=True),
    ]
    frame = pd.DataFrame({f"c{i}": kinds[i % len(kinds)] for i in range(columns)}, index=range(n))
    names = list(frame.columns)
    text = pd.DataFrame({c: _canonical_text(frame[c]).to_numpy() for c in names}, index=range(n))
    expected = pd.util.hash_pandas_object(text, index=False).to_numpy()
    assert _row_hashes(frame, names).tolist() == expected.tolist()
    assert _row_hashes(frame, names, rows_per_block=3).tolist() == expected.tolist()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(-2, 3)), min_size=0, max_size=60
    ),
    st.booleans(),
)
def test_the_canonical_permutation_is_a_stable_lexicographic_sort(rows, lead_sorted) -> None:
    """Whatever path it takes (in order already; leading keys in order, only ties moved; a
    full sort), the permutation is numpy's stable lexsort of the keys, or None for in order."""
    if lead_sorted:
        rows = sorted(rows, key=lambda r: r[:2])  # the usual export: ties in any order
    codes = [np.array([r[k] for r in rows], dtype=np.int64) for k in range(3)]
    got = canonical_permutation(codes) if rows else None
    expected = np.lexsort(codes[::-1]) if rows else np.arange(0)
    if got is None:
        np.testing.assert_array_equal(expected, np.arange(len(rows)))
    else:
        np.testing.assert_array_equal(got, expected)
