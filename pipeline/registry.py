"""MLflow: where runs are tracked, how the model is logged and registered, and the champion."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from pipeline.errors import InputError
from pipeline.pyfunc_model import LeadScoringPyfunc, ScoringBundle

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
CHAMPION = "champion"
REQUIREMENTS = ["lightgbm", "scikit-learn", "pandas", "numpy", "joblib", "mlflow"]


def configure_tracking() -> str:
    """Use $MLFLOW_TRACKING_URI if set, else a SQLite store `mlflow.db` in the working folder."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    mlflow.set_tracking_uri(uri)
    return uri


def _example_frame(X: pd.DataFrame) -> pd.DataFrame:
    """A small feature sample with categories as plain strings (None when missing)."""
    sample = X.head(5).reset_index(drop=True)
    for column in sample.columns:
        if not pd.api.types.is_numeric_dtype(sample[column]):
            sample[column] = sample[column].astype(object).where(sample[column].notna(), None)
    return sample


def log_and_register(
    bundle: ScoringBundle, X_example: pd.DataFrame, registered_model: str
) -> tuple[str, bool]:
    """Log the pyfunc model in the active run and register it; the first version becomes champion.

    Returns the registered version and whether it was made champion.
    """
    example = _example_frame(X_example)
    output = pd.DataFrame({"probability": bundle.estimator.predict_proba(example)[:, 1]})
    signature = infer_signature(example, output)
    with tempfile.TemporaryDirectory() as tmp:
        bundle_path = Path(tmp) / "bundle.joblib"
        joblib.dump(bundle, bundle_path)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=LeadScoringPyfunc(),
            artifacts={"bundle": str(bundle_path)},
            signature=signature,
            input_example=example,
            pip_requirements=REQUIREMENTS,
            registered_model_name=registered_model,
        )
    version = str(info.registered_model_version)
    client = MlflowClient()
    try:
        client.get_model_version_by_alias(registered_model, CHAMPION)
        return version, False
    except MlflowException:
        client.set_registered_model_alias(registered_model, CHAMPION, version)
        return version, True


def load_champion(registered_model: str) -> tuple[ScoringBundle, str]:
    """The champion's scoring bundle and its version number."""
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(registered_model, CHAMPION).version
    except MlflowException as exc:
        raise InputError(
            f"no model '{registered_model}@{CHAMPION}' in the registry at "
            f"{mlflow.get_tracking_uri()}; run `leadscore train` first"
        ) from exc
    model = mlflow.pyfunc.load_model(f"models:/{registered_model}@{CHAMPION}")
    python_model = model.unwrap_python_model()
    return python_model.bundle, str(version)
