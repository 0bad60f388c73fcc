"""The MLflow pyfunc flavour of the model: a feature frame in, calibrated probabilities out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import joblib
import mlflow.pyfunc
import numpy as np
import pandas as pd

from leadscore.features.build import FeatureSpec
from leadscore.models.drift import DriftReference
from leadscore.models.lead_model import LeadScoringModel


@dataclass
class ScoringBundle:
    """What scoring needs besides the estimator: how its features were built, and its evidence."""

    estimator: LeadScoringModel
    feature_spec: FeatureSpec
    as_of: pd.Timestamp
    holdout: pd.DataFrame  # label, probability: the holdout predictions, for grade win rates
    subscore_reference: dict[str, np.ndarray]  # holdout quantiles of each family's log-odds
    # the training population binned, for `leadscore monitor` (None in bundles made before it)
    drift_reference: DriftReference | None = None


class LeadScoringPyfunc(mlflow.pyfunc.PythonModel):
    """Returns a frame with one column, `probability`: the calibrated chance the lead is won."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.bundle: ScoringBundle = joblib.load(context.artifacts["bundle"])

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        proba = self.bundle.estimator.predict_proba(model_input)[:, 1]
        return pd.DataFrame({"probability": proba}, index=model_input.index)
