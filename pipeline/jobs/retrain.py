"""The scheduled retraining job: train a challenger, judge it against the champion on the same
newest holdout, and move the `champion` alias only if it passes the gate."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from leadscore.features.attributes import attribute_features
from leadscore.features.build import FeatureSpec, build_features
from leadscore.features.tables import CrmTables
from leadscore.models.champion_gate import GateDecision, decide
from leadscore.models.evaluation import Evaluation, evaluate
from leadscore.models.scores import assign_grades
from leadscore.pipeline.config import Config
from leadscore.pipeline.io.registry import (
    ModelUnavailable,
    champion_history,
    champion_version,
    configure_tracking,
    load_bundle,
    registry_lock,
    set_champion,
)
from leadscore.pipeline.jobs.train import TrainResult, flat_params, segment_columns, train
from leadscore.pipeline.progress import Steps

SPLIT_KEYS = ("split.seed", "split.holdout_lead_fraction", "split.holdout_cutoffs")


@dataclass(frozen=True)
class RetrainResult:
    challenger: TrainResult
    decision: GateDecision
    champion_version: str | None  # the champion the challenger was judged against
    champion: Evaluation | None


def holdout_features(
    tables: CrmTables, rows: pd.DataFrame, spec: FeatureSpec, shape: str
) -> pd.DataFrame:
    """The features a model with `spec` sees for the holdout rows (lead_id, cutoff)."""
    if shape == "flat":
        X = attribute_features(tables, rows[["lead_id", "cutoff"]], spec.skip_columns)
        return X.drop(columns="lead_age_days").reset_index(drop=True)
    return build_features(tables, rows, spec).reset_index(drop=True)


def _evaluate_champion(
    challenger: TrainResult, name: str, version: str, config: Config
) -> tuple[Evaluation | None, list[str]]:
    """The champion on the challenger's holdout, or None and why it cannot be judged."""
    try:
        bundle = load_bundle(name, version)
    except ModelUnavailable as exc:
        why = f"the champion, version {version}, cannot be loaded ({exc}): judged without it"
        return None, [why]
    rows = challenger.holdout.reset_index(drop=True)
    X = holdout_features(challenger.tables, rows, bundle.feature_spec, config.data.shape)
    p = bundle.estimator.predict_proba(X)[:, 1]
    s = config.scoring
    evaluation = evaluate(
        rows["label"].to_numpy(),
        p,
        rows["lead_id"].to_numpy(),
        assign_grades(p, s.grades, s.grade_by),
        segment_columns(challenger.tables, rows["lead_id"], config.evaluation.segments),
        config.evaluation.bootstrap,
    )
    notes = _split_notes(name, version, config)
    if challenger.as_of < bundle.as_of:
        notes.append(
            f"note: the champion was trained as of {bundle.as_of:%Y-%m-%d}, after this "
            f"challenger's {challenger.as_of:%Y-%m-%d}: it knew outcomes this holdout is judged "
            "on, so its figures are optimistic (the gate errs towards keeping it)"
        )
    return evaluation, notes


def _split_notes(name: str, version: str, config: Config) -> list[str]:
    """Holdout leads are drawn by a hash of the lead id with split.seed, so a champion trained
    with the same split settings never saw a lead of this holdout. Say so when they differ."""
    client = MlflowClient()
    try:
        run_id = client.get_model_version(name, version).run_id
        theirs = client.get_run(run_id).data.params if run_id else {}
    except MlflowException:
        return []
    mine = flat_params(config)
    differ = [k for k in SPLIT_KEYS if k in theirs and theirs[k] != mine.get(k)]
    if not differ:
        return []
    return [
        f"note: the champion was trained with other split settings ({', '.join(differ)}): it "
        "may have trained on leads of this holdout, so its figures may be optimistic (the gate "
        "then errs towards keeping it)"
    ]


def retrain(
    config: Config, data_dir: Path, moment: pd.Timestamp | None, steps: Steps
) -> RetrainResult:
    """Train a challenger, evaluate it and the champion on the challenger's holdout (the newest
    cutoffs), apply `config.gate`, and record the decision on the run and the model version.

    The whole job holds the registry lock: a second retrain waits, then judges its challenger
    against whatever the first left as champion. Neither can promote against a stale champion."""
    configure_tracking()
    name = config.mlflow.registered_model
    with registry_lock():
        challenger = train(config, data_dir, moment, steps, job="retrain", make_champion=False)
        current = champion_version(name)
        champion, notes = None, []
        if current is None:
            history = champion_history(name)  # the challenger registered the model
            gone = history[-1]["version"] if history else None
            note = (
                f"no champion: the last one, version {gone}, no longer exists"
                if gone
                else "no champion yet"
            )
        else:
            with steps.step(f"Evaluating the champion (version {current}) on the same holdout"):
                champion, notes = _evaluate_champion(challenger, name, current, config)
            note = "" if champion is not None else notes.pop()
        gate = decide(challenger.evaluation, champion, challenger.kept_flagged, config.gate, note)
        decision = GateDecision(gate.promote, [*gate.reasons, *notes])
        if decision.promote:
            set_champion(name, challenger.version, decision.summary(), action="promote (gate)")
        _record(challenger, decision, current, champion, name)
    return RetrainResult(challenger, decision, current, champion)


def _record(
    challenger: TrainResult,
    decision: GateDecision,
    champion_version: str | None,
    champion: Evaluation | None,
    name: str,
) -> None:
    """The decision and its reasons on the challenger's run and on its model version."""
    client = MlflowClient()
    tags = {
        "gate_decision": decision.verdict,
        "gate_reasons": decision.summary()[:4900],
        "gate_champion_version": champion_version or "none",
    }
    for key, value in tags.items():
        client.set_tag(challenger.run_id, key, value)
        client.set_model_version_tag(name, challenger.version, key, value)
    if champion is not None:
        for key, value in champion.logged().items():
            if np.isfinite(value):
                client.log_metric(challenger.run_id, f"champion_{key}", value)
    record = {
        "decision": decision.verdict,
        "challenger_version": challenger.version,
        "champion_version": champion_version,
        "reasons": decision.reasons,
        "challenger": challenger.evaluation.metrics if challenger.evaluation else None,
        "champion": champion.metrics if champion is not None else None,
    }
    client.log_text(challenger.run_id, json.dumps(record, indent=2), "gate_decision.json")
