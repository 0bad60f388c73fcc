"""The table-based TreeSHAP must give LightGBM's own `pred_contrib` numbers, row for row."""

from __future__ import annotations

import lightgbm as lgb
import numba
import numpy as np
import pandas as pd
import pytest

from leadscore.models import tree_shap
from leadscore.models.lead_model import LeadScoringModel
from leadscore.models.reasons import top_reasons


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.poisson(2, size=n).astype(float)  # many exact zeros
    x3 = rng.uniform(size=n)
    x3[rng.uniform(size=n) < 0.2] = np.nan  # missing in training: the split learns a side
    colour = rng.choice(["red", "green", "blue", "grey", None], size=n)
    logit = 1.5 * x1 + 0.6 * x2 - 2 * np.nan_to_num(x3, nan=0.5) + (colour == "red") * 1.2
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "colour": colour})
    return X, y


@pytest.fixture(scope="module")
def model() -> LeadScoringModel:
    X, y = _frame(4000, 0)
    Xv, yv = _frame(1000, 1)
    Xc, yc = _frame(1000, 2)
    return LeadScoringModel(n_estimators=60, num_leaves=15, min_child_samples=20).fit(
        X, y, X_val=Xv, y_val=yv, X_cal=Xc, y_cal=yc
    )


def _scoring_rows() -> pd.DataFrame:
    X, _ = _frame(2000, 3)
    X.loc[:50, "x1"] = np.nan  # never missing in training: LightGBM compares it as 0
    X.loc[50:100, "colour"] = "purple"  # a category the model never saw
    X.loc[100:150, "x2"] = 0.0
    return X


def test_table_shap_equals_lightgbm_pred_contrib(model: LeadScoringModel) -> None:
    X = _scoring_rows()
    fast = model.contributions(X).to_numpy()
    exact = model.exact_contributions(X).to_numpy()
    np.testing.assert_allclose(fast, exact, rtol=0, atol=1e-9)
    # and the rows add up to the raw margin, as TreeSHAP must
    np.testing.assert_allclose(fast.sum(axis=1), model.decision_function(X), atol=1e-9)


def test_zero_as_missing_and_single_leaf_trees() -> None:
    X, y = _frame(3000, 4)
    booster = lgb.train(
        {
            "objective": "binary",
            "zero_as_missing": True,
            "num_leaves": 7,
            "min_data_in_leaf": 5,
            "verbose": -1,
        },
        lgb.Dataset(X[["x1", "x2", "x3"]], y),
        num_boost_round=20,
    )
    # A tree that cannot split (every leaf would be too small) is a single leaf: a constant.
    stump = lgb.train(
        {"objective": "binary", "min_data_in_leaf": 10_000, "verbose": -1},
        lgb.Dataset(X[["x1", "x2", "x3"]], y),
        num_boost_round=3,
    )
    rows = _scoring_rows()[["x1", "x2", "x3"]].to_numpy(dtype=float)
    for b in (booster, stump):
        tables = tree_shap.build_tables(b.dump_model())
        fast = tree_shap.contributions(tables, rows)
        exact = b.predict(rows, pred_contrib=True)
        np.testing.assert_allclose(fast, exact, rtol=0, atol=1e-9)
    splits = [s for tree in booster.dump_model()["tree_info"] for s in _splits(tree)]
    assert any(s["missing_type"] == "Zero" for s in splits)  # the case this test is about


def test_trees_with_more_splits_than_one_key_holds() -> None:
    """Rows are grouped by their decisions in a tree, a bit per split node; a tree with more
    split nodes than an int64 holds explains each row on its own, with the same numbers."""
    X, y = _frame(6000, 5)
    params = {"num_leaves": 100, "min_data_in_leaf": 5, "min_gain_to_split": 2.0}
    booster = lgb.train(  # trees of 99 splits down to a few: both paths in one model
        {"objective": "binary", "learning_rate": 0.5, "verbose": -1, **params},
        lgb.Dataset(X[["x1", "x2", "x3"]], y),
        num_boost_round=8,
    )
    sizes = [len(_splits(tree)) for tree in booster.dump_model()["tree_info"]]
    assert max(sizes) > tree_shap.MAX_KEYED_NODES >= min(sizes)
    rows = _scoring_rows()[["x1", "x2", "x3"]].to_numpy(dtype=float)
    tables = tree_shap.build_tables(booster.dump_model())
    exact = booster.predict(rows, pred_contrib=True)
    fast = tree_shap.contributions(tables, rows)
    np.testing.assert_allclose(fast, exact, rtol=0, atol=1e-9)
    some = rows[:200]
    np.testing.assert_array_equal(fast[:200], np.stack([_row_by_row(tables, r) for r in some]))


def _row_by_row(tables: tree_shap.LeafTables, row: np.ndarray) -> np.ndarray:
    """One row's contributions as the kernel summed them before rows were grouped: tree by
    tree, leaf by leaf, each leaf's entries added to the row in turn (plain Python)."""
    t = tables
    out = np.zeros(t.n_features + 1)
    for tree in range(len(t.tree_node_start) - 1):
        first, end = t.tree_node_start[tree], t.tree_node_start[tree + 1]
        left = []
        for node in range(first, end):
            x = row[t.node_feature[node]]
            if t.node_kind[node] == 1:
                c0, width = (
                    t.node_cat_start[node],
                    t.node_cat_start[node + 1] - t.node_cat_start[node],
                )
                left.append(bool(0 <= x < width and t.cat_left[c0 + int(x)]))
            else:
                go = x <= t.node_threshold[node] or (np.isnan(x) and t.node_nan_left[node])
                if t.node_zero_missing[node] and abs(x) <= 1e-35:
                    go = t.node_default_left[node]
                left.append(bool(go))
        mask = [0] * (end - first)
        for k in range(1, end - first):
            parent = t.node_parent[first + k]
            off = int(left[parent] != t.node_is_left[first + k])
            mask[k] = mask[parent] | (off << int(t.node_slot[first + parent]))
        for leaf in range(t.tree_leaf_start[tree], t.tree_leaf_start[tree + 1]):
            f0, d = t.leaf_feat_start[leaf], t.leaf_feat_start[leaf + 1] - t.leaf_feat_start[leaf]
            if d == 0:
                continue
            parent = t.leaf_parent[leaf]
            off = int(left[parent] != t.leaf_is_left[leaf])
            disagree = mask[parent] | (off << int(t.node_slot[first + parent]))
            base = t.table_start[leaf] + (((1 << d) - 1) & ~disagree) * d
            for k in range(d):
                out[t.leaf_feat[f0 + k]] += t.table[base + k]
    out[-1] = t.bias
    return out


def test_grouped_rows_get_the_sums_of_rows_explained_one_by_one(model: LeadScoringModel) -> None:
    """Bit for bit, not only to rounding: sub-scores rank these sums against reference
    quantiles, and many leads tie with one exactly (one lead in 3,000 moved a point when
    the sums were taken in another order)."""
    rows = model._as_floats(model._encode(_scoring_rows().iloc[:300]))
    rows = np.concatenate([rows, rows[::3]])  # repeated rows: groups of more than one
    tables = model._shap_tables()
    grouped = tree_shap.contributions(tables, rows)
    np.testing.assert_array_equal(grouped, np.stack([_row_by_row(tables, r) for r in rows]))


def _splits(tree: dict) -> list[dict]:
    out, todo = [], [tree["tree_structure"]]
    while todo:
        node = todo.pop()
        if "split_feature" in node:
            out.append(node)
            todo += [node["left_child"], node["right_child"]]
    return out


def test_models_too_deep_for_tables_fall_back_to_lightgbm(
    model: LeadScoringModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    X = _scoring_rows()
    monkeypatch.setattr(tree_shap, "MAX_BYTES", 0)
    fresh = LeadScoringModel().set_params(**model.get_params())
    fresh.__setstate__(model.__getstate__())  # a loaded copy: no tables yet
    assert fresh._shap_tables() is None
    np.testing.assert_allclose(
        fresh.contributions(X).to_numpy(), model.exact_contributions(X).to_numpy(), atol=1e-12
    )


def test_top_three_reasons_agree_with_exact_treeshap(model: LeadScoringModel) -> None:
    X = _scoring_rows()

    def names(contrib: pd.DataFrame) -> list[list[object]]:
        return [
            [r["feature"] for r in row] for row in top_reasons(X, contrib, lambda f, v: f, 3, 0.0)
        ]

    assert names(model.contributions(X)) == names(model.exact_contributions(X))


def test_tables_are_not_pickled(model: LeadScoringModel) -> None:
    model._shap_tables()
    assert "_tables" not in model.__getstate__()


def test_one_thread_gives_the_same_numbers(
    model: LeadScoringModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scoring worker explains on one thread (`use_one_thread`, the serial driver of the same
    kernel): bit for bit what the parallel driver gives, over several blocks and a ragged end."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one CPU: the parallel driver runs on one thread too")
    X = pd.concat([_scoring_rows()] * 3, ignore_index=True)  # 6,000 rows: 3 blocks, one ragged
    parallel = model.contributions(X).to_numpy()
    exact = model.exact_contributions(X).to_numpy()
    assert not tree_shap.one_thread()
    monkeypatch.setattr(tree_shap, "_thread_cap", 1)
    assert tree_shap.one_thread()
    np.testing.assert_array_equal(model.contributions(X).to_numpy(), parallel)
    # LightGBM's own (models too deep for the tables), asked for one thread
    np.testing.assert_array_equal(model.exact_contributions(X).to_numpy(), exact)
