"""The MLflow pyfunc flavour of the model: a feature frame in, calibrated probabilities out."""

from __future__ import annotations

from typing import Any

import joblib
import mlflow.pyfunc
import pandas as pd

from leadscore.models.scoring import ScoringBundle


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
