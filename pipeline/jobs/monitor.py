"""`leadscore monitor`: load -> as-of -> features of a sample of open leads -> drift against
the training population; score history -> backtest against what happened since -> alerts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from leadscore.features.snapshots import lead_outcomes, open_leads
from leadscore.features.tables import CrmTables
from leadscore.models.drift import drift_table
from leadscore.models.scoring import ScoringBundle
from leadscore.pipeline.catalog import Catalog, LoadedData
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.registry import chosen_bundle
from leadscore.pipeline.io.tracking import MonitorRecord, log_monitor
from leadscore.pipeline.redaction import redact


@dataclass(frozen=True)
class MonitorResult:
    as_of: pd.Timestamp
    version: str
    drift: pd.DataFrame  # feature, psi, gain (score first among equals)
    sampled: int  # open leads measured
    outside_training_age: float  # share of open leads older than training ever saw
    backtest: pd.DataFrame  # per matured batch: as_of, leads, wins, realized_auc, predicted, actual
    bands: pd.DataFrame  # per matured batch and grade: leads, predicted, actual win rate
    alerts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "as_of": self.as_of.isoformat(),
            "model_version": self.version,
            "alerts": self.alerts,
            "warnings": self.warnings,
            "sampled_open_leads": self.sampled,
            "outside_training_age": self.outside_training_age,
            "drift": self.drift.to_dict("records"),
            "backtest": self.backtest.astype({"as_of": str}).to_dict("records"),
            "bands": self.bands.astype({"as_of": str}).to_dict("records"),
        }


def monitor(
    catalog: Catalog, as_of: pd.Timestamp | None, model_version: str | None = None
) -> MonitorResult:
    """Drift of the open leads against the training population, and a backtest of the score
    history; alerts per `config.monitor`. The report is logged to MLflow (job monitor)."""
    config, steps = catalog.config, catalog.steps
    data = catalog.load_as_of(as_of, activities="streamed")
    version, bundle = chosen_bundle(
        config.mlflow.registered_model, data.as_of, model_version, steps
    )
    with steps.step("Measuring drift against the training population"):
        drift, sampled, outside = _drift(catalog, data, bundle)
    with steps.step("Backtesting past scores against outcomes since"):
        backtest, bands, notes = _backtest(catalog, data.tables, data.as_of)
    alerts, warnings = _verdicts(catalog, drift, backtest, outside)
    result = MonitorResult(
        data.as_of, version, drift, sampled, outside, backtest, bands, alerts, [*notes, *warnings]
    )
    log_monitor(_record(result), config.mlflow.experiment)
    return result


def _drift(
    catalog: Catalog, data: LoadedData, bundle: ScoringBundle
) -> tuple[pd.DataFrame, int, float]:
    """PSI of a sample of the open leads against the training population."""
    reference = bundle.drift_reference
    if reference is None:
        raise InputError(
            "the model version has no training reference for drift (it was trained before "
            "`leadscore monitor` existed): train a new version"
        )
    shape = catalog.shape
    spine = shape.open_spine(data.tables, data.as_of)
    max_age = catalog.config.snapshots.max_lead_age_days
    spine, outside = shape.like_training(data.tables, spine, data.as_of, max_age)
    if spine.empty:
        raise InputError(
            f"no open leads at {data.as_of:%Y-%m-%d} to compare with the training data"
        )
    spine = spine.sample(min(len(spine), catalog.config.monitor.sample), random_state=0)
    spine = spine.sort_index().reset_index(drop=True)
    X = data.activities.features(data.tables, spine, bundle.feature_spec).reset_index(drop=True)
    p = bundle.estimator.predict_proba(X)[:, 1]
    table = drift_table(reference, X, p, bundle.estimator.feature_importance())
    return table, len(spine), outside


def _backtest(
    catalog: Catalog, tables: CrmTables, as_of: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Past batches in the score history whose conversion window has passed: realized AUC and
    the win rate per grade against the probability predicted then."""
    config = catalog.config
    notes: list[str] = []
    history = catalog.score_history()
    empty = pd.DataFrame(
        columns=["as_of", "leads", "wins", "realized_auc", "predicted", "actual", "verdict"]
    )
    bands = pd.DataFrame(columns=["as_of", "grade", "leads", "predicted", "actual"])
    if history is None or history.empty:
        where = f"{redact(catalog.target)} ({config.scoring.history_table})"
        notes.append(f"no score history at {where}: no backtest")
        return empty, bands, notes
    window = pd.Timedelta(days=config.snapshots.conversion_window_days)
    history = history.assign(as_of=pd.to_datetime(history["as_of"], utc=True))
    matured = sorted(t for t in history["as_of"].unique() if t + window <= as_of)
    if not matured:
        notes.append(
            f"no scored batch is {window.days} days old yet (the conversion window): no backtest"
        )
        return empty, bands, notes
    won_at = lead_outcomes(tables.deals)["won_at"]
    won_at.index = won_at.index.astype(str)  # a CSV history reads ids back as it guesses
    history = history.assign(lead_id=history["lead_id"].astype(str))
    rows, band_rows = [], []
    for t in matured[-config.monitor.backtest_batches :]:
        row, grades = _matured_batch(_in_force(history, tables, t), won_at, t, window, catalog)
        rows.append(row)
        band_rows += grades
    return (
        pd.DataFrame(rows, columns=empty.columns),
        pd.DataFrame(band_rows, columns=bands.columns),
        notes,
    )


def _matured_batch(
    batch: pd.DataFrame, won_at: pd.Series, t: pd.Timestamp, window: pd.Timedelta, catalog: Catalog
) -> tuple[dict, list[dict]]:
    """The scores in force at `t` against the wins in the window after it: realized AUC and
    predicted against actual win rates, overall and per grade."""
    won = won_at.reindex(batch["lead_id"].to_numpy())
    y = ((won >= t) & (won < t + window)).to_numpy()
    p = batch["probability"].to_numpy(dtype=float)
    enough = len(y) >= catalog.config.monitor.backtest_min_examples and 0 < y.sum() < len(y)
    row = {
        "as_of": t,
        "leads": len(y),
        "wins": int(y.sum()),
        "realized_auc": float(roc_auc_score(y, p)) if enough else float("nan"),
        "predicted": float(p.mean()),
        "actual": float(y.mean()),
        "verdict": "ok" if enough else "too few leads or one outcome only",
    }
    frame = pd.DataFrame({"grade": batch["grade"].to_numpy(), "y": y, "p": p})
    grades = [
        {
            "as_of": t,
            "grade": grade,
            "leads": len(group),
            "predicted": float(group["p"].mean()),
            "actual": float(group["y"].mean()),
        }
        for grade, group in frame.groupby("grade")
    ]
    return row, grades


def _in_force(history: pd.DataFrame, tables: CrmTables, t: pd.Timestamp) -> pd.DataFrame:
    """The scores marketing had at `t`: each lead open at `t`, with its newest history row
    stamped `t` or earlier. An incremental batch holds only the leads it rescored; the others
    kept their earlier rows, so a batch alone is not the population scored then."""
    known = history[history["as_of"] <= t].sort_values("as_of", kind="stable")
    latest = known.drop_duplicates("lead_id", keep="last")
    still_open = open_leads(tables, pd.DatetimeIndex([t], name="cutoff"), None)["lead_id"]
    return latest[latest["lead_id"].isin(still_open.astype(str))]


def _verdicts(
    catalog: Catalog, drift: pd.DataFrame, backtest: pd.DataFrame, outside: float
) -> tuple[list[str], list[str]]:
    """Alerts and warnings, per `config.monitor`."""
    m = catalog.config.monitor
    alerts, warnings = [], []
    for row in drift.itertuples():
        what = "the score" if row.feature == "score" else f"feature {row.feature}"
        if row.psi >= m.psi_alert and (row.feature == "score" or row.gain >= m.min_gain_share):
            alerts.append(f"PSI of {what} is {row.psi:.3f} (alert at {m.psi_alert})")
        elif row.psi >= m.psi_warn:
            warnings.append(f"PSI of {what} is {row.psi:.3f} (warn at {m.psi_warn})")
    if outside > 0:
        warnings.append(
            f"{outside:.1%} of open leads are older than max_lead_age_days "
            f"({catalog.config.snapshots.max_lead_age_days}), which training never saw; drift "
            "is measured on the younger ones"
        )
    for row in backtest.itertuples():
        if np.isfinite(row.realized_auc) and row.realized_auc < m.backtest_min_auc:
            alerts.append(
                f"scores of {row.as_of:%Y-%m-%d} reached a realized AUC of {row.realized_auc:.3f} "
                f"(alert below {m.backtest_min_auc})"
            )
    return alerts, warnings


def _record(result: MonitorResult) -> MonitorRecord:
    score_psi = result.drift.loc[result.drift["feature"] == "score", "psi"]
    features = result.drift[result.drift["feature"] != "score"]
    metrics = {
        "psi_score": float(score_psi.iloc[0]) if len(score_psi) else float("nan"),
        "psi_max_feature": float(features["psi"].max()) if len(features) else float("nan"),
        "alerts": float(len(result.alerts)),
        "sampled_open_leads": float(result.sampled),
    }
    aucs = result.backtest["realized_auc"].dropna()
    if len(aucs):
        metrics["backtest_realized_auc"] = float(aucs.iloc[-1])
    return MonitorRecord(
        result.as_of, result.version, bool(result.alerts), metrics, result.as_dict()
    )
