"""The MLflow pyfunc flavour of the model: raw lead records in, what a batch writes out.

Input: lead records as a CRM or a web form holds them (`models.raw_records`), one per row,
with the optional `as_of` parameter (default: now). Output per lead: `lead_id`,
`probability`, `score`, `grade`, `stage`, `fit_score`, `engagement_score`, `reasons`,
`reason_against`, `model_version` (the run that made the model). With the parameter
`features=True`, already-built feature rows are taken instead, and only `probability` comes
back, as before.

Bad input raises an `MlflowException` naming the column (HTTP 400 when served). Category
values the model never saw score as unseen, as in a batch, and are counted in a log line.
"""

from __future__ import annotations

import logging
from typing import Any

import joblib
import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from leadscore.models.raw_records import BadRecords
from leadscore.models.scoring import ScoringBundle, score_records

OUTPUT = [
    "lead_id", "probability", "score", "grade", "stage", "fit_score", "engagement_score",
    "reasons", "reason_against",
]  # fmt: skip
log = logging.getLogger("leadscore.model")


class LeadScoringPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.bundle: ScoringBundle = joblib.load(context.artifacts["bundle"])

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        params = params or {}
        bundle = self.bundle
        if params.get("features") or getattr(bundle, "input_schema", None) is None:
            proba = bundle.estimator.predict_proba(model_input)[:, 1]
            return pd.DataFrame({"probability": proba}, index=model_input.index)
        try:
            as_of = _as_of(params.get("as_of"))
            scored = score_records(bundle, pd.DataFrame(model_input), as_of, bundle.rules)
        except BadRecords as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        _count_unseen(bundle, pd.DataFrame(model_input))
        return scored[OUTPUT].assign(model_version=getattr(bundle, "stamp", ""))


def _as_of(value: object) -> pd.Timestamp:
    if value in (None, ""):
        return pd.Timestamp.now(tz="UTC").floor("s")
    moment = pd.to_datetime(value, utc=True, errors="coerce")
    if pd.isna(moment):
        raise BadRecords(f"parameter 'as_of': {value!r} is not a timestamp")
    return moment


def _count_unseen(bundle: ScoringBundle, records: pd.DataFrame) -> None:
    """A log line counting category values the model never saw (they score as unseen)."""
    from leadscore.features.tables import normalise_label

    unseen: dict[str, int] = {}
    for feature, info in bundle.descriptions.items():
        column = feature if feature in records else None
        known = getattr(info, "spellings", None)
        if column is None or not known:
            continue
        values = normalise_label(records[column].dropna().astype(str))
        missing = int((~values.isin(list(known))).sum())
        if missing:
            unseen[column] = missing
    if unseen:
        log.warning("values the model never saw, scored as unseen: %s", unseen)
