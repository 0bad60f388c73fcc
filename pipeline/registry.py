"""MLflow: where runs are tracked, how the model is logged and registered, and the champion."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from pipeline.errors import InputError
from pipeline.pyfunc_model import ScoringBundle

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
CHAMPION = "champion"
REQUIREMENTS = ["lightgbm", "scikit-learn", "pandas", "numpy", "joblib", "mlflow"]


def configure_tracking() -> str:
    """Use $MLFLOW_TRACKING_URI if set, else a SQLite store `mlflow.db` in the working folder."""
    for name in ("mlflow", "alembic"):  # they narrate migrations and registrations; we print ours
        logging.getLogger(name).setLevel(logging.ERROR)
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


def signature_for(X: pd.DataFrame) -> ModelSignature:
    """Every feature may be missing when scoring, so every input column is optional."""
    inputs = Schema(
        [
            ColSpec(
                "double" if pd.api.types.is_numeric_dtype(X[c]) else "string", c, required=False
            )
            for c in X.columns
        ]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double", "probability")]))


def log_and_register(
    bundle: ScoringBundle, X_example: pd.DataFrame, registered_model: str
) -> tuple[str, bool]:
    """Log the pyfunc model in the active run and register it; the first version becomes champion.

    Returns the registered version and whether it was made champion.
    """
    example = _example_frame(X_example)
    with tempfile.TemporaryDirectory() as tmp:
        bundle_path = Path(tmp) / "bundle.joblib"
        joblib.dump(bundle, bundle_path)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
            artifacts={"bundle": str(bundle_path)},
            signature=signature_for(X_example),
            input_example=example,
            pip_requirements=REQUIREMENTS,
        )
    client = MlflowClient()
    try:
        client.create_registered_model(registered_model)
    except MlflowException as exc:
        if "already exists" not in str(exc).lower():
            raise
    version = client.create_model_version(
        registered_model,
        source=info.model_uri,
        run_id=info.run_id,
        model_id=info.model_id,
        tags={"as_of": bundle.as_of.isoformat()},
    ).version
    try:
        client.get_model_version_by_alias(registered_model, CHAMPION)
        return version, False
    except MlflowException:
        client.set_registered_model_alias(registered_model, CHAMPION, version)
        return version, True


def _version_as_of(version: ModelVersion) -> pd.Timestamp | None:
    text = (version.tags or {}).get("as_of")
    return pd.Timestamp(text) if text else None


def choose_version(
    registered_model: str, moment: pd.Timestamp, version: str | None = None
) -> tuple[str, str]:
    """The model version to score at `moment`, and a note on why it was chosen.

    An explicit `version` is used as given. Otherwise the champion, unless it was trained as of
    a time after `moment` (it has seen outcomes a model at `moment` could not know); then the
    newest version trained as of `moment` or earlier.
    """
    client = MlflowClient()
    if version is not None:
        try:
            chosen = client.get_model_version(registered_model, version)
        except MlflowException as exc:
            raise InputError(
                f"no version {version} of '{registered_model}' in the registry"
            ) from exc
        trained = _version_as_of(chosen)
        if trained is not None and trained > moment:
            return version, (
                f"version {version} was trained as of {trained:%Y-%m-%d}, after {moment:%Y-%m-%d}: "
                "its scores are not what could have been known then"
            )
        return version, f"version {version}, as asked"
    try:
        champion = client.get_model_version_by_alias(registered_model, CHAMPION)
    except MlflowException as exc:
        raise InputError(
            f"no model '{registered_model}@{CHAMPION}' in the registry at "
            f"{mlflow.get_tracking_uri()}; run `leadscore train` first"
        ) from exc
    trained = _version_as_of(champion)
    if trained is None or trained <= moment:
        return str(champion.version), f"the champion, version {champion.version}"
    candidates = [
        (as_of, int(v.version))
        for v in client.search_model_versions(f"name='{registered_model}'")
        if (as_of := _version_as_of(v)) is not None and as_of <= moment
    ]
    if not candidates:
        raise InputError(
            f"the champion (version {champion.version}) was trained as of {trained:%Y-%m-%d}, "
            f"after --as-of {moment:%Y-%m-%d}, and no version was trained as of that time or "
            f"earlier: run `leadscore train --as-of {moment:%Y-%m-%d}` first"
        )
    as_of, number = max(candidates)
    return str(number), (
        f"version {number} (trained as of {as_of:%Y-%m-%d}): the champion, version "
        f"{champion.version}, was trained as of {trained:%Y-%m-%d}, after {moment:%Y-%m-%d}"
    )


def load_bundle(registered_model: str, version: str) -> ScoringBundle:
    """The scoring bundle of one registered version, loaded through its pyfunc flavour."""
    model = mlflow.pyfunc.load_model(f"models:/{registered_model}/{version}")
    return model.unwrap_python_model().bundle
