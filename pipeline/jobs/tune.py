"""`leadscore tune`: a hyperparameter search on the time-forward slices, one nested MLflow run
per trial, the best parameters written into a config that `train` reads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import yaml
from sklearn.metrics import roc_auc_score

from leadscore.features.training_set import TrainingSet
from leadscore.models.lead_model import LeadScoringModel
from leadscore.pipeline.catalog import Catalog
from leadscore.pipeline.config import Config, config_as_dict
from leadscore.pipeline.io.atomic_files import write_text_atomically
from leadscore.pipeline.io.run_identity import config_fingerprint, git_commit, run_name
from leadscore.pipeline.io.tracking import configure_tracking, use_experiment
from leadscore.pipeline.redaction import HIDDEN
from leadscore.pipeline.steps.examples import labelled_examples
from leadscore.pipeline.steps.leakage import audited_features

TUNED = (  # the model settings searched, and their ranges
    "learning_rate",
    "num_leaves",
    "min_child_samples",
    "subsample",
    "colsample_bytree",
    "reg_lambda",
)


@dataclass(frozen=True)
class TuneResult:
    best_params: dict[str, float | int]
    best_auc: float
    baseline_auc: float  # the config's own settings, measured the same way
    trials: pd.DataFrame  # number, auc, params, best_iteration
    written: Path
    run_id: str


def _suggest(trial: optuna.Trial) -> dict[str, float | int]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 20, 500, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }


def tune(
    catalog: Catalog,
    as_of: pd.Timestamp | None,
    trials: int,
    out: Path,
    timeout_s: float | None = None,
) -> TuneResult:
    """load -> as-of -> snapshots -> features -> audit -> search the model settings with
    Optuna's TPE sampler -> write the best into a config.

    Each trial trains on the train slice with early stopping on the valid slice, and is scored
    by the ROC AUC of its raw margins on the calibration slice (newest cutoffs before the
    holdout, leads the trees never saw). The holdout is not touched: `train` with the written
    config reports it. The config's own settings are trial 0, so the search can only
    recommend something it measured to be at least as good."""
    config, steps = catalog.config, catalog.steps
    data = catalog.load_as_of(as_of, activities="whole", with_fingerprint=True)
    examples = labelled_examples(data, catalog)
    X = audited_features(examples, data.tables, config, steps).X
    configure_tracking()
    use_experiment(config.mlflow.experiment)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=config.split.seed)
    )
    base = config.model.model_dump()
    study.enqueue_trial({k: base[k] for k in TUNED})  # the current settings first
    rows: list[dict] = []
    config_hash = config_fingerprint(config)
    with mlflow.start_run(run_name=run_name("tune", data.as_of, config_hash)) as parent:
        mlflow.set_tags(
            {
                "job": "tune",
                "as_of": data.as_of.isoformat(),
                "data_fingerprint": str(data.fingerprint),
                "config_hash": config_hash,
                "git_commit": git_commit(),
                "objective": "ROC AUC of raw margins on the calibration slice",
            }
        )
        objective = _objective(examples, X, base, rows)
        with steps.progress(f"Searching model settings ({trials} trials)", trials) as bar:
            study.optimize(
                objective, n_trials=trials, timeout=timeout_s, callbacks=[lambda *_: bar(1)]
            )
        best = study.best_trial
        best_params = {k: best.params[k] for k in TUNED}
        mlflow.log_params({f"best.{k}": v for k, v in best_params.items()})
        mlflow.log_metrics(
            {"best_calibration_slice_roc_auc": best.value, "trials": float(len(study.trials))}
        )
        note = (
            f"the model settings of trial {best.number} of {len(study.trials)} (calibration-"
            f"slice AUC {best.value:.4f}; the base config's own: {rows[0]['auc']:.4f})"
        )
        _write_tuned_config(config, best_params, out, parent.info.run_id, note)
    return TuneResult(
        best_params=best_params,
        best_auc=float(best.value),
        baseline_auc=float(rows[0]["auc"]),
        trials=pd.DataFrame(rows).sort_values("auc", ascending=False, ignore_index=True),
        written=out,
        run_id=parent.info.run_id,
    )


def _objective(
    examples: TrainingSet, X: pd.DataFrame, base: dict, rows: list[dict]
) -> Callable[[optuna.Trial], float]:
    """One trial: a nested MLflow run that fits the model with the trial's settings and scores
    its raw margins on the calibration slice; each trial's figures are appended to `rows`."""
    parts = examples.masks()
    y = examples.rows["label"].to_numpy()

    def objective(trial: optuna.Trial) -> float:
        params = _suggest(trial)
        with mlflow.start_run(run_name=f"trial-{trial.number:03d}", nested=True):
            model = LeadScoringModel(**{**base, **params}).fit(
                X[parts["train"]],
                y[parts["train"]],
                X_val=X[parts["valid"]],
                y_val=y[parts["valid"]],
                X_cal=X[parts["calibration"]],
                y_cal=y[parts["calibration"]],
                groups_cal=examples.rows.loc[parts["calibration"], "lead_id"].to_numpy(),
            )
            margin = model.decision_function(X[parts["calibration"]])
            auc = float(roc_auc_score(y[parts["calibration"]], margin))
            mlflow.set_tags({"job": "tune-trial", "trial": str(trial.number)})
            mlflow.log_params(params)
            trees = model.best_iteration_
            mlflow.log_metrics({"calibration_slice_roc_auc": auc, "best_iteration": trees})
        rows.append({"trial": trial.number, "auc": auc, **params, "best_iteration": trees})
        return auc

    return objective


def _write_tuned_config(
    config: Config, best: dict[str, float | int], out: Path, run_id: str, note: str
) -> None:
    """The config with the best model settings, for `train --config`, logged with the run."""
    tuned = config_as_dict(config)
    tuned["model"] = {**tuned["model"], **best}
    header = (
        f"# Written by `leadscore tune` (MLflow run {run_id}):\n# {note}.\n"
        "# Use it with: leadscore train --config <this file>\n"
    )
    body = yaml.safe_dump(tuned, sort_keys=False)
    if HIDDEN in body:
        header += (
            "# Passwords written into URLs are hidden (***) here, as everywhere leadscore\n"
            "# writes: put them in the environment and refer to them as ${VARIABLE}.\n"
        )
    write_text_atomically(out, header + body)
    mlflow.log_artifact(str(out))
