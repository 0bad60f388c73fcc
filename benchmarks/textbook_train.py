"""A textbook lead-scoring training job, as a competent practitioner would write it: the
baseline `benchmarks/training.py` measures `leadscore train` against.

Monthly snapshots of the leads open at each cutoff, labelled won within 90 days; pandas
group-bys for activity counts per type over 7, 30 and 90 days and days since the last
activity; lead and account attributes one-hot encoded by scikit-learn; LightGBM with early
stopping on a time-forward validation slice; isotonic calibration; holdout AUC. No audit, no
bootstrap, no plots, no registry: the floor for "train a calibrated model on point-in-time
snapshots".

Usage: python benchmarks/textbook_train.py DATA_FOLDER AS_OF
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

WINDOWS = (7, 30, 90)
LABEL_DAYS = 90


def snapshots(leads: pd.DataFrame, deals: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    closed = deals.dropna(subset=["closed_at"]).groupby("lead_id")["closed_at"].min()
    won = deals[deals["outcome"] == "won"].groupby("lead_id")["closed_at"].min()
    start = leads["created_at"].min() + pd.Timedelta(days=90)
    last = as_of - pd.Timedelta(days=LABEL_DAYS)
    rows = []
    for cutoff in pd.date_range(start, last, freq="MS", tz="UTC"):
        open_ = leads[
            (leads["created_at"] < cutoff)
            & ~(leads["lead_id"].map(closed) < cutoff)
            & (leads["created_at"] >= cutoff - pd.Timedelta(days=365))
        ]
        w = open_["lead_id"].map(won)
        label = (w >= cutoff) & (w < cutoff + pd.Timedelta(days=LABEL_DAYS))
        rows.append(pd.DataFrame({"lead_id": open_["lead_id"].to_numpy(), "cutoff": cutoff,
                                  "label": label.to_numpy().astype(int)}))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def activity_features(spine: pd.DataFrame, activities: pd.DataFrame) -> pd.DataFrame:
    joined = spine[["lead_id", "cutoff"]].reset_index().merge(activities, on="lead_id")
    joined = joined[joined["occurred_at"] < joined["cutoff"]]
    age = (joined["cutoff"] - joined["occurred_at"]).dt.days
    parts = []
    for days in WINDOWS:
        recent = joined[age < days]
        counts = recent.pivot_table(index="index", columns="activity_type", values="lead_id",
                                    aggfunc="size", fill_value=0)  # fmt: skip
        parts.append(counts.add_suffix(f"_{days}d"))
    last = joined.groupby("index")["occurred_at"].max()
    recency = (spine["cutoff"] - last.reindex(spine.index)).dt.days.rename("days_since_last")
    return pd.concat(parts, axis=1).reindex(spine.index, fill_value=0).join(recency)


def main() -> None:
    folder, as_of = Path(sys.argv[1]), pd.Timestamp(sys.argv[2], tz="UTC")
    leads = pd.read_parquet(folder / "leads.parquet")
    accounts = pd.read_parquet(folder / "accounts.parquet")
    activities = pd.read_parquet(folder / "activities.parquet")
    deals = pd.read_parquet(folder / "deals.parquet")
    leads = leads[leads["created_at"] < as_of]
    activities = activities[activities["occurred_at"] < as_of]
    deals = deals[deals["created_at"] < as_of]
    spine = snapshots(leads, deals, as_of)
    attributes = ["source", "job_title", "seniority", "department", "country"]
    firmo = ["industry", "employees", "annual_revenue_musd"]
    table = spine.merge(leads[["lead_id", "account_id", *attributes]], on="lead_id", how="left")
    table = table.merge(accounts[["account_id", *firmo]], on="account_id", how="left")
    X_act = activity_features(spine, activities)
    categorical = [*attributes, "industry"]
    encoder = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=20), categorical)],
        remainder="passthrough",
    )
    X = pd.concat([table[[*categorical, "employees", "annual_revenue_musd"]], X_act], axis=1)
    X[categorical] = X[categorical].astype(str)
    cutoffs = np.sort(spine["cutoff"].unique())
    holdout = spine["cutoff"] >= cutoffs[-3]
    valid = (spine["cutoff"] >= cutoffs[-6]) & ~holdout
    train = ~holdout & ~valid
    Xt = encoder.fit_transform(X[train])
    model = lgb.LGBMClassifier(n_estimators=2000, learning_rate=0.05, num_leaves=31,
                               min_child_samples=100, subsample=0.8, subsample_freq=1,
                               colsample_bytree=0.8, verbose=-1, n_jobs=2)  # fmt: skip
    X_valid, y_valid = encoder.transform(X[valid]), spine.loc[valid, "label"]
    model.fit(
        Xt,
        spine.loc[train, "label"],
        eval_set=[(X_valid, y_valid)],
        callbacks=[lgb.early_stopping(100, verbose=False)],
    )
    calibrated = CalibratedClassifierCV(FrozenEstimator(model), method="isotonic")
    calibrated.fit(X_valid, y_valid)
    p = calibrated.predict_proba(encoder.transform(X[holdout]))[:, 1]
    print(f"textbook holdout AUC {roc_auc_score(spine.loc[holdout, 'label'], p):.3f} "
          f"on {int(holdout.sum()):,} snapshots; {len(spine):,} examples")  # fmt: skip


if __name__ == "__main__":
    main()
