"""`leadscore monitor`: is the population scored now still the one the model learned from, and
did past scores match what happened since?"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from leadscore.features.build import build_features
from leadscore.features.snapshots import lead_outcomes, open_leads
from leadscore.features.tables import CrmTables
from leadscore.models.drift import drift_table
from leadscore.pipeline.config import Config
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.registry import chosen_bundle
from leadscore.pipeline.io.sources import as_of_view, load_tables, resolve_as_of
from leadscore.pipeline.io.writeback import read_history
from leadscore.pipeline.jobs.score import open_spine
from leadscore.pipeline.progress import Steps
from leadscore.pipeline.redaction import redact, redact_text


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


def _drift(
    tables: CrmTables, moment: pd.Timestamp, bundle: object, config: Config
) -> tuple[pd.DataFrame, int, float]:
    """PSI of a sample of the open leads against the training population."""
    reference = getattr(bundle, "drift_reference", None)
    if reference is None:
        raise InputError(
            "the model version has no training reference for drift (it was trained before "
            "`leadscore monitor` existed): train a new version"
        )
    spine = open_spine(tables, moment, config.data.shape)
    outside = 0.0
    max_age = config.snapshots.max_lead_age_days
    if config.data.shape != "flat" and max_age is not None and len(spine):
        created = tables.leads.set_index("lead_id")["created_at"].reindex(spine["lead_id"])
        young = (created >= moment - pd.Timedelta(days=max_age)).to_numpy()  # as training
        outside = float(1 - young.mean())
        spine = spine[young]  # like with like: training only had leads this young
    if spine.empty:
        raise InputError(f"no open leads at {moment:%Y-%m-%d} to compare with the training data")
    spine = spine.sample(min(len(spine), config.monitor.sample), random_state=0)
    spine = spine.sort_index().reset_index(drop=True)
    X = build_features(tables, spine, bundle.feature_spec).reset_index(drop=True)
    p = bundle.estimator.predict_proba(X)[:, 1]
    table = drift_table(reference, X, p, bundle.estimator.feature_importance())
    return table, len(spine), outside


def _backtest(
    output: str, tables: CrmTables, moment: pd.Timestamp, config: Config
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Past batches in the score history whose conversion window has passed: realized AUC and
    the win rate per grade against the probability predicted then."""
    s = config.scoring
    notes: list[str] = []
    history = read_history(output, s.history_table, dict(s.columns))
    empty = pd.DataFrame(
        columns=["as_of", "leads", "wins", "realized_auc", "predicted", "actual", "verdict"]
    )
    bands = pd.DataFrame(columns=["as_of", "grade", "leads", "predicted", "actual"])
    if history is None or history.empty:
        notes.append(f"no score history at {redact(output)} ({s.history_table}): no backtest")
        return empty, bands, notes
    window = pd.Timedelta(days=config.snapshots.conversion_window_days)
    history = history.assign(as_of=pd.to_datetime(history["as_of"], utc=True))
    matured = sorted(t for t in history["as_of"].unique() if t + window <= moment)
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
        batch = _in_force(history, tables, t)
        won = won_at.reindex(batch["lead_id"].to_numpy())
        y = ((won >= t) & (won < t + window)).to_numpy()
        p = batch["probability"].to_numpy(dtype=float)
        enough = len(y) >= config.monitor.backtest_min_examples and 0 < y.sum() < len(y)
        auc = float(roc_auc_score(y, p)) if enough else float("nan")
        rows.append(
            {
                "as_of": t,
                "leads": len(y),
                "wins": int(y.sum()),
                "realized_auc": auc,
                "predicted": float(p.mean()),
                "actual": float(y.mean()),
                "verdict": "ok" if enough else "too few leads or one outcome only",
            }
        )
        frame = pd.DataFrame({"grade": batch["grade"].to_numpy(), "y": y, "p": p})
        for grade, group in frame.groupby("grade"):
            band_rows.append(
                {
                    "as_of": t,
                    "grade": grade,
                    "leads": len(group),
                    "predicted": float(group["p"].mean()),
                    "actual": float(group["y"].mean()),
                }
            )
    return (
        pd.DataFrame(rows, columns=empty.columns),
        pd.DataFrame(band_rows, columns=bands.columns),
        notes,
    )


def _in_force(history: pd.DataFrame, tables: CrmTables, t: pd.Timestamp) -> pd.DataFrame:
    """The scores marketing had at `t`: each lead open at `t`, with its newest history row
    stamped `t` or earlier. An incremental batch holds only the leads it rescored; the others
    kept their earlier rows, so a batch alone is not the population scored then."""
    known = history[history["as_of"] <= t].sort_values("as_of", kind="stable")
    latest = known.drop_duplicates("lead_id", keep="last")
    still_open = open_leads(tables, pd.DatetimeIndex([t], name="cutoff"), None)["lead_id"]
    return latest[latest["lead_id"].isin(still_open.astype(str))]


def monitor(
    config: Config,
    data_dir: Path,
    moment: pd.Timestamp | None,
    output: str,
    steps: Steps,
    model_version: str | None = None,
) -> MonitorResult:
    """Drift of the open leads against the training population, and a backtest of the score
    history; alerts per `config.monitor`. The report is logged to MLflow (job monitor)."""
    with steps.step(f"Loading {data_dir}"):
        raw = load_tables(config, data_dir, steps.warn)
    moment = resolve_as_of(raw, moment, steps.note)
    tables = as_of_view(raw, moment, config.data.shape, steps.warn)
    version, bundle = chosen_bundle(config.mlflow.registered_model, moment, model_version, steps)
    with steps.step("Measuring drift against the training population"):
        drift, sampled, outside = _drift(tables, moment, bundle, config)
    with steps.step("Backtesting past scores against outcomes since"):
        backtest, bands, notes = _backtest(output, tables, moment, config)
    m = config.monitor
    alerts, warnings = [], list(notes)
    for row in drift.itertuples():
        what = "the score" if row.feature == "score" else f"feature {row.feature}"
        if row.psi >= m.psi_alert and (row.feature == "score" or row.gain >= m.min_gain_share):
            alerts.append(f"PSI of {what} is {row.psi:.3f} (alert at {m.psi_alert})")
        elif row.psi >= m.psi_warn:
            warnings.append(f"PSI of {what} is {row.psi:.3f} (warn at {m.psi_warn})")
    if outside > 0:
        warnings.append(
            f"{outside:.1%} of open leads are older than max_lead_age_days "
            f"({config.snapshots.max_lead_age_days}), which training never saw; drift is "
            "measured on the younger ones"
        )
    for row in backtest.itertuples():
        if np.isfinite(row.realized_auc) and row.realized_auc < m.backtest_min_auc:
            alerts.append(
                f"scores of {row.as_of:%Y-%m-%d} reached a realized AUC of {row.realized_auc:.3f} "
                f"(alert below {m.backtest_min_auc})"
            )
    result = MonitorResult(
        moment, version, drift, sampled, outside, backtest, bands, alerts, warnings
    )
    _log(result, config)
    return result


def _log(result: MonitorResult, config: Config) -> None:
    mlflow.set_experiment(config.mlflow.experiment)
    score_psi = result.drift.loc[result.drift["feature"] == "score", "psi"]
    features = result.drift[result.drift["feature"] != "score"]
    with mlflow.start_run(run_name=f"monitor-{result.as_of:%Y%m%d}"):
        mlflow.set_tags(
            {
                "job": "monitor",
                "as_of": result.as_of.isoformat(),
                "model_version": result.version,
                "alert": str(bool(result.alerts)).lower(),
            }
        )
        metrics = {
            "psi_score": float(score_psi.iloc[0]) if len(score_psi) else float("nan"),
            "psi_max_feature": float(features["psi"].max()) if len(features) else float("nan"),
            "alerts": float(len(result.alerts)),
            "sampled_open_leads": float(result.sampled),
        }
        aucs = result.backtest["realized_auc"].dropna()
        if len(aucs):
            metrics["backtest_realized_auc"] = float(aucs.iloc[-1])
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        report = json.dumps(result.as_dict(), indent=2, default=str)
        mlflow.log_text(redact_text(report), "monitor_report.json")
