"""The calibration folds are scikit-learn's StratifiedGroupKFold folds, computed faster: held
equal to them on random slices (binary and three classes, one to many rows a group, ties)."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import StratifiedGroupKFold

from leadscore.models.calibration import calibration_folds, stratified_group_folds

SKLEARN = tuple(int(part) for part in sklearn.__version__.split(".")[:2])


@pytest.mark.skipif(
    SKLEARN < (1, 8), reason="scikit-learn before 1.8 mapped shuffled groups differently"
)
@settings(max_examples=80, deadline=None)
@given(
    rows=st.integers(20, 600),
    groups=st.integers(5, 200),
    classes=st.sampled_from([2, 2, 3]),
    rate=st.floats(0.05, 0.5),
    n_splits=st.integers(2, 6),
    seed=st.integers(0, 2**31 - 1),
    random_state=st.integers(0, 3),
)
def test_the_folds_are_scikit_learns(rows, groups, classes, rate, n_splits, seed, random_state):
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, rows) * 7 + 3  # ids need not be 0..n-1
    y = (rng.random(rows) < rate).astype(int)
    if classes == 3:
        y = y + (rng.random(rows) < rate).astype(int)
    if np.bincount(y).min(initial=0) < n_splits or len(np.unique(y)) < classes:
        y[: n_splits * classes] = np.repeat(np.arange(classes), n_splits)  # each class in each fold
    if len(np.unique(group)) < n_splits:
        group[:n_splits] = np.arange(n_splits) * 7 + 3
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    theirs = list(splitter.split(np.zeros(rows), y, group))
    ours = stratified_group_folds(y, group, n_splits, seed=random_state)
    assert len(ours) == len(theirs) == n_splits
    for (our_train, our_test), (their_train, their_test) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(our_test, their_test)
        np.testing.assert_array_equal(our_train, their_train)


def test_calibration_folds_keep_each_leads_rows_together():
    rng = np.random.default_rng(0)
    leads = rng.integers(0, 1_000, 5_000)
    y = (rng.random(5_000) < 0.1).astype(int)
    folds = calibration_folds(np.zeros(5_000), y, leads)
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(5_000))  # every row tested once
    for train, test in folds:
        assert not set(leads[train]) & set(leads[test])
