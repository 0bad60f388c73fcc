"""The scheduled retraining job: train a challenger -> evaluate the champion on the same newest
holdout -> the gate -> promote or keep, with every reason recorded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from leadscore.models.champion_gate import GateDecision, decide
from leadscore.models.evaluation import Evaluation
from leadscore.pipeline.catalog import Catalog
from leadscore.pipeline.io.registry import (
    ModelUnavailable,
    add_to_version_description,
    champion_history,
    champion_version,
    load_bundle,
    registry_lock,
    set_champion,
    warn_of_other_libraries,
)
from leadscore.pipeline.io.tracking import (
    add_to_run_description,
    configure_tracking,
    flat_params,
    log_decision,
)
from leadscore.pipeline.jobs.train import TrainResult, train
from leadscore.pipeline.steps.modelling import evaluate_predictions

SPLIT_KEYS = ("split.seed", "split.holdout_lead_fraction", "split.holdout_cutoffs")


@dataclass(frozen=True)
class RetrainResult:
    challenger: TrainResult
    decision: GateDecision
    champion_version: str | None  # the champion the challenger was judged against
    champion: Evaluation | None


def retrain(catalog: Catalog, as_of: pd.Timestamp | None) -> RetrainResult:
    """Train a challenger, evaluate it and the champion on the challenger's holdout (the newest
    cutoffs), apply `config.gate`, and record the decision on the run and the model version.

    The whole job holds the registry lock: a second retrain waits, then judges its challenger
    against whatever the first left as champion. Neither can promote against a stale champion."""
    config, steps = catalog.config, catalog.steps
    configure_tracking()
    name = config.mlflow.registered_model
    with registry_lock():
        challenger = train(catalog, as_of, job="retrain", make_champion=False)
        current = champion_version(name)
        champion, notes = None, []
        if current is None:
            note = _no_champion(name)
        else:
            with steps.step(f"Evaluating the champion (version {current}) on the same holdout"):
                champion, notes = _evaluate_champion(catalog, challenger, name, current)
            note = "" if champion is not None else notes.pop()
        gate = decide(challenger.evaluation, champion, challenger.kept_flagged, config.gate, note)
        decision = GateDecision(gate.promote, [*gate.reasons, *notes])
        if decision.promote:
            set_champion(name, challenger.version, decision.summary(), action="promote (gate)")
        _record(challenger, decision, current, champion, name)
    return RetrainResult(challenger, decision, current, champion)


def _no_champion(name: str) -> str:
    history = champion_history(name)  # the challenger registered the model
    gone = history[-1]["version"] if history else None
    return (
        f"no champion: the last one, version {gone}, no longer exists"
        if gone
        else "no champion yet"
    )


def _evaluate_champion(
    catalog: Catalog, challenger: TrainResult, name: str, version: str
) -> tuple[Evaluation | None, list[str]]:
    """The champion on the challenger's holdout, or None and why it cannot be judged."""
    try:
        bundle = load_bundle(name, version)
    except ModelUnavailable as exc:
        return None, [
            f"the champion, version {version}, cannot be loaded ({exc}): judged without it"
        ]
    warn_of_other_libraries(
        bundle,
        f"the champion, version {version},",
        "Its figures here may differ slightly from its own run's",
        catalog.steps,
    )
    data = challenger.data
    rows = challenger.holdout.reset_index(drop=True)
    X = catalog.shape.features(data.tables, rows, bundle.feature_spec, data.activities.features)
    p = bundle.estimator.predict_proba(X)[:, 1]
    evaluation = evaluate_predictions(
        rows["label"].to_numpy(), p, rows["lead_id"], data.tables, catalog.config
    )
    notes = _split_notes(name, version, catalog)
    if challenger.as_of < bundle.as_of:
        notes.append(
            f"note: the champion was trained as of {bundle.as_of:%Y-%m-%d}, after this "
            f"challenger's {challenger.as_of:%Y-%m-%d}: it knew outcomes this holdout is judged "
            "on, so its figures are optimistic (the gate errs towards keeping it)"
        )
    return evaluation, notes


def _split_notes(name: str, version: str, catalog: Catalog) -> list[str]:
    """Holdout leads are drawn by a hash of the lead id with split.seed, so a champion trained
    with the same split settings never saw a lead of this holdout. Say so when they differ."""
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        run_id = client.get_model_version(name, version).run_id
        theirs = client.get_run(run_id).data.params if run_id else {}
    except MlflowException:
        return []
    mine = flat_params(catalog.config)
    differ = [k for k in SPLIT_KEYS if k in theirs and theirs[k] != mine.get(k)]
    if not differ:
        return []
    return [
        f"note: the champion was trained with other split settings ({', '.join(differ)}): it "
        "may have trained on leads of this holdout, so its figures may be optimistic (the gate "
        "then errs towards keeping it)"
    ]


def _record(
    challenger: TrainResult,
    decision: GateDecision,
    champion_version: str | None,
    champion: Evaluation | None,
    name: str,
) -> None:
    """The decision and its reasons on the challenger's run and on its model version."""
    tags = {
        "gate_decision": decision.verdict,
        "gate_reasons": decision.summary()[:4900],
        "gate_champion_version": champion_version or "none",
    }
    for key, value in tags.items():
        MlflowClient().set_model_version_tag(name, challenger.version, key, value)
    verdict = f"Gate ({decision.verdict}): {decision.summary()}"
    add_to_version_description(name, challenger.version, verdict)
    add_to_run_description(challenger.run_id, verdict)
    theirs = champion.logged() if champion is not None else {}
    record = {
        "decision": decision.verdict,
        "challenger_version": challenger.version,
        "champion_version": champion_version,
        "reasons": decision.reasons,
        "challenger": challenger.evaluation.metrics,
        "champion": champion.metrics if champion is not None else None,
    }
    log_decision(
        challenger.run_id,
        tags,
        {f"champion_{k}": v for k, v in theirs.items() if np.isfinite(v)},
        record,
    )
