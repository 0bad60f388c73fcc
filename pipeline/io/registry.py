"""MLflow: where runs are tracked, how the model is logged and registered, and the champion."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.locks import exclusive
from leadscore.pipeline.io.tracking import configure_tracking
from leadscore.pipeline.io.tracking_uri import CHAMPION, lock_folder
from leadscore.pipeline.progress import Steps
from leadscore.pipeline.redaction import redact

if TYPE_CHECKING:  # the model's code (LightGBM, scikit-learn) loads only where a model is used
    from mlflow.models.model import ModelInfo

    from leadscore.models.raw_records import InputSchema
    from leadscore.models.scoring import ScoringBundle

HISTORY_TAG = "champion_history"  # a registered-model tag: JSON list of alias moves
HISTORY_KEPT = 40  # moves kept in the tag (MLflow caps tag values)


def filter_value(text: str) -> str:
    """`text` as a quoted literal of MLflow's search filter syntax, which has no escaping: a
    value holding a quote or a backslash is refused (config names are checked at load too)."""
    if "'" in text or "\\" in text:
        raise InputError(f"{text!r} may not hold ' or \\ (it goes into an MLflow search filter)")
    return "'" + text + "'"


def versions_of(registered_model: str) -> list[ModelVersion]:
    """Every version of a registered model."""
    return list(MlflowClient().search_model_versions("name=" + filter_value(registered_model)))


PINNED = ("lightgbm", "scikit-learn", "pandas", "numpy", "pyarrow", "joblib", "mlflow", "numba")


def installed_versions() -> dict[str, str]:
    """The installed version of each library the model's code imports."""
    from importlib.metadata import version

    return {name: version(name) for name in PINNED}


def pinned_requirements() -> list[str]:
    """What the model's code imports, pinned to the versions it was trained with (the
    leadscore code itself travels in the model, through `code_paths`)."""
    return [f"{name}=={found}" for name, found in installed_versions().items()]


def version_mismatches(bundle: ScoringBundle) -> list[str]:
    """The libraries whose installed version differs from the one the model was trained with,
    as "name trained with A, installed B" (none for bundles that did not record them).

    MLflow's own check at load time maps every installed package to its modules first (half a
    second per load); the bundle's record of the same pins answers in milliseconds."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name, trained in getattr(bundle, "libraries", {}).items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "none"
        if installed != trained:
            found.append(f"{name} trained with {trained}, installed {installed}")
    return found


def warn_of_other_libraries(bundle: ScoringBundle, model: str, so: str, steps: Steps) -> None:
    """Say so when `model` (e.g. "version 3") was trained with other library versions than
    these, and what follows (`so`)."""
    mismatches = version_mismatches(bundle)
    if mismatches:
        steps.warn(
            f"{model} was trained with other libraries than this environment's: "
            + "; ".join(mismatches)
            + f". {so}"
        )


def signature_for(schema: InputSchema) -> ModelSignature:
    """Raw lead records in (lead_id and created_at required, the rest optional), what a batch
    writes out; the parameters `as_of` and `features`."""
    from mlflow.types.schema import Array, Object, ParamSchema, ParamSpec, Property

    kinds = {"number": "double", "text": "string", "time": "string"}
    specs = []
    for name, kind in schema.columns().items():
        required = name in ("lead_id", "created_at")
        if kind == "activities":
            item = Object([Property("occurred_at", "string"), Property("activity_type", "string")])
            specs.append(ColSpec(Array(item), name, required=False))
        elif name == "lead_id" and kind == "number":
            specs.append(ColSpec("long", name, required=True))
        else:
            specs.append(ColSpec(kinds[kind], name, required=required))
    outputs = Schema(
        [
            ColSpec("string" if schema.lead_id_kind == "text" else "long", "lead_id"),
            ColSpec("double", "probability"),
            ColSpec("long", "score"),
            ColSpec("string", "grade"),
            ColSpec("string", "stage"),
            ColSpec("long", "fit_score"),
            ColSpec("long", "engagement_score"),
            ColSpec("string", "reasons"),
            ColSpec("string", "reason_against"),
            ColSpec("string", "model_version"),
        ]
    )
    params = ParamSchema(
        [ParamSpec("as_of", "string", ""), ParamSpec("features", "boolean", False)]
    )
    return ModelSignature(inputs=Schema(specs), outputs=outputs, params=params)


def feature_signature(X: pd.DataFrame) -> ModelSignature:
    """For a model without raw-record input (shape flat): feature rows in, probability out."""
    from mlflow.types.schema import ParamSchema, ParamSpec

    inputs = Schema(
        [
            ColSpec(
                "double" if pd.api.types.is_numeric_dtype(X[c]) else "string", c, required=False
            )
            for c in X.columns
        ]
    )
    params = ParamSchema([ParamSpec("features", "boolean", True)])
    outputs = Schema([ColSpec("double", "probability")])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def _feature_example(X: pd.DataFrame) -> pd.DataFrame:
    sample = X.reset_index(drop=True)
    for column in sample.columns:
        if not pd.api.types.is_numeric_dtype(sample[column]):
            sample[column] = sample[column].astype(object).where(sample[column].notna(), None)
    return sample


def _code_folder(folder: Path) -> Path:
    """The leadscore package (pipeline, features, models) copied into `folder/leadscore`, for
    the model to carry: it then loads without leadscore installed."""
    import shutil

    import leadscore.features
    import leadscore.models
    import leadscore.pipeline

    target = folder / "leadscore"
    target.mkdir()
    (target / "__init__.py").write_text("")
    for package in (leadscore.pipeline, leadscore.features, leadscore.models):
        source = Path(package.__file__).parent
        shutil.copytree(
            source,
            target / package.__name__.split(".")[-1],
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"),
        )
    return target


def log_model(bundle: ScoringBundle, example: pd.DataFrame) -> ModelInfo:
    """Log the pyfunc model in the active run (not yet a registered version: `register`)."""
    from dataclasses import replace

    import joblib

    active = mlflow.active_run()
    if active is not None:  # the model knows the run that made it (not its registry version)
        bundle = replace(bundle, stamp=f"run {active.info.run_id}")
    bundle = replace(bundle, libraries=installed_versions())
    with tempfile.TemporaryDirectory() as tmp:
        bundle_path = Path(tmp) / "bundle.joblib"
        joblib.dump(bundle, bundle_path)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
            artifacts={"bundle": str(bundle_path)},
            signature=signature_for(bundle.input_schema)
            if bundle.input_schema is not None
            else feature_signature(example),
            input_example=(example, {"as_of": bundle.as_of.isoformat()})
            if bundle.input_schema is not None
            else (_feature_example(example), {"features": True}),
            pip_requirements=pinned_requirements(),
            code_paths=[str(_code_folder(Path(tmp)))],
        )


def register(
    info: ModelInfo,
    as_of: pd.Timestamp,
    registered_model: str,
    make_champion: bool | None = None,
) -> tuple[str, bool]:
    """Register a logged model as a new version. `make_champion` None: the first version
    becomes champion (later ones wait for a gate or a person); True or False: as said.

    Returns the registered version and whether it was made champion.
    """
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
        tags={"as_of": as_of.isoformat()},
    ).version
    if make_champion is None:  # the first version becomes champion, decided under the lock
        with registry_lock():
            make_champion = champion_version(registered_model) is None
            if make_champion:
                set_champion(registered_model, version, "the first version of the model")
    elif make_champion:
        set_champion(registered_model, version, "made champion when registered")
    return version, make_champion


def describe_model(registered_model: str, version: str, version_text: str, model_text: str) -> None:
    """The descriptions MLflow's UI shows for the registered model and one of its versions."""
    client = MlflowClient()
    client.update_registered_model(registered_model, description=redact(model_text))
    client.update_model_version(registered_model, version, description=redact(version_text))


def add_to_version_description(registered_model: str, version: str, text: str) -> None:
    """Append a line (a gate's verdict) to a version's description."""
    client = MlflowClient()
    found = client.get_model_version(registered_model, version)
    joined = "\n".join(t for t in (found.description, redact(text)) if t)
    client.update_model_version(registered_model, version, description=joined)


def champion_version(registered_model: str) -> str | None:
    """The version the `champion` alias points at, or None (no champion, or no such model)."""
    try:
        return str(MlflowClient().get_model_version_by_alias(registered_model, CHAMPION).version)
    except MlflowException:
        return None


def _history(client: MlflowClient, registered_model: str) -> list[dict[str, str]]:
    tags = client.get_registered_model(registered_model).tags or {}
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def champion_history(registered_model: str) -> list[dict[str, str]]:
    """Every move of the champion alias, oldest first: version, when, why (promote, rollback)."""
    return _history(MlflowClient(), registered_model)


def set_champion(registered_model: str, version: str, reason: str, action: str = "promote") -> None:
    """Point `champion` at `version` and append the move to the model's history tag."""
    client = MlflowClient()
    previous = champion_version(registered_model)
    client.set_registered_model_alias(registered_model, CHAMPION, version)
    history = _history(client, registered_model)
    history.append(
        {
            "version": str(version),
            "previous": previous or "",
            "action": action,
            "reason": reason[:300],
            "at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        }
    )
    client.set_registered_model_tag(
        registered_model, HISTORY_TAG, json.dumps(history[-HISTORY_KEPT:])
    )


def rollback_target(registered_model: str) -> tuple[str, str]:
    """The version a rollback returns to, and the current champion.

    The history is replayed as a stack: a promotion pushes its version, a rollback pops back
    to the version it returned to.
    The target is the newest version under the current one that still exists, so rolling back
    twice after two promotions returns to the first champion, not back and forth."""
    client = MlflowClient()
    current = champion_version(registered_model)
    if current is None:
        raise InputError(f"'{registered_model}' has no champion to roll back")
    stack: list[str] = []
    for entry in _history(client, registered_model):
        if entry["action"] == "rollback":  # back down to the version it returned to
            while stack and stack[-1] != entry["version"]:
                stack.pop()
            if not stack:
                stack.append(entry["version"])
        else:
            stack.append(entry["version"])
    while stack and stack[-1] == current:
        stack.pop()
    while stack:
        candidate = stack.pop()
        if candidate != current and _exists(client, registered_model, candidate):
            return candidate, current
    raise InputError(
        f"no earlier champion of '{registered_model}' to roll back to (its history tag "
        f"{HISTORY_TAG} records none that still exists); use `leadscore promote --version N`"
    )


def _exists(client: MlflowClient, registered_model: str, version: str) -> bool:
    try:
        client.get_model_version(registered_model, version)
        return True
    except MlflowException:
        return False


def promote_by_hand(registered_model: str, version: str, reason: str) -> tuple[str | None, str]:
    """Make `version` the champion; the champion before, and the version as MLflow names it
    (it accepts "02" for version 2: the history records "2")."""
    with registry_lock():
        try:
            version = str(
                MlflowClient().get_model_version(registered_model, version.strip()).version
            )
        except MlflowException:
            raise InputError(
                f"no version {version} of '{registered_model}' in the registry"
            ) from None
        before = champion_version(registered_model)
        set_champion(registered_model, version, reason, action="promote (by hand)")
    return before, version


def roll_back(registered_model: str) -> tuple[str, str]:
    """Move the champion back to the one before it; the version it left and the one it took."""
    with registry_lock():
        target, current = rollback_target(registered_model)
        set_champion(
            registered_model, target, f"rollback from version {current}", action="rollback"
        )
    return current, target


@contextmanager
def registry_lock(timeout_s: float = 3600.0) -> Iterator[None]:
    """An exclusive lock for jobs that read and move the champion (retrain, promote, rollback),
    so two of them never decide against the same champion or write the store at once.

    The lock is a file beside the SQLite tracking store (or in the working folder for other
    stores): it serialises jobs on one machine, not across machines sharing a remote server.
    Held longer than `timeout_s` by another job: JobBusy (exit 5)."""
    path = lock_folder(mlflow.get_tracking_uri()) / ".leadscore-registry.lock"
    with exclusive(path, timeout_s, "the model registry"):
        yield


def _version_as_of(version: ModelVersion) -> pd.Timestamp | None:
    text = (version.tags or {}).get("as_of")
    return pd.Timestamp(text) if text else None


def choose_version(
    registered_model: str, as_of: pd.Timestamp, version: str | None = None
) -> tuple[str, str]:
    """The model version to score at `as_of`, and a note on why it was chosen.

    An explicit `version` is used as given. Otherwise the champion, unless it was trained as of
    a time after `as_of` (it has seen outcomes a model at `as_of` could not know); then the
    newest version trained as of `as_of` or earlier.
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
        if trained is not None and trained > as_of:
            return version, (
                f"version {version} was trained as of {trained:%Y-%m-%d}, after {as_of:%Y-%m-%d}: "
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
    if trained is None or trained <= as_of:
        return str(champion.version), f"the champion, version {champion.version}"
    candidates = [
        (trained_at, int(v.version))
        for v in versions_of(registered_model)
        if (trained_at := _version_as_of(v)) is not None and trained_at <= as_of
    ]
    if not candidates:
        raise InputError(
            f"the champion (version {champion.version}) was trained as of {trained:%Y-%m-%d}, "
            f"after --as-of {as_of:%Y-%m-%d}, and no version was trained as of that time or "
            f"earlier: run `leadscore train --as-of {as_of:%Y-%m-%d}` first"
        )
    trained_at, number = max(candidates)
    return str(number), (
        f"version {number} (trained as of {trained_at:%Y-%m-%d}): the champion, version "
        f"{champion.version}, was trained as of {trained:%Y-%m-%d}, after {as_of:%Y-%m-%d}"
    )


def chosen_bundle(
    registered_model: str, as_of: pd.Timestamp, model_version: str | None, steps: Steps
) -> tuple[str, ScoringBundle]:
    """The version to score at `as_of` (`choose_version`) and its bundle, said out loud."""
    configure_tracking()
    version, why = choose_version(registered_model, as_of, model_version)
    with steps.step(f"Loading {registered_model}: {why}"):
        bundle = load_bundle(registered_model, version)
    warn_of_other_libraries(
        bundle,
        f"version {version}",
        "Its scores may differ slightly from the ones it was evaluated with",
        steps,
    )
    return version, bundle


class ModelUnavailable(InputError):
    """A registered version whose files cannot be loaded (deleted, truncated or not ours)."""


def load_bundle(registered_model: str, version: str) -> ScoringBundle:
    """The scoring bundle of one registered version, loaded through its pyfunc flavour.

    Raises ModelUnavailable naming the version and where its files are when they are missing,
    truncated or garbage (a bundle, its MLmodel file, its environment files)."""
    from leadscore.models.scoring import ScoringBundle

    uri = f"models:/{registered_model}/{version}"
    try:
        # the libraries are compared with the bundle's record instead (`version_mismatches`)
        model = mlflow.pyfunc.load_model(uri, suppress_warnings=True)
        bundle = model.unwrap_python_model().bundle
    except Exception as exc:  # joblib, YAML, MLflow and OS errors all mean the same here
        where = _artifact_location(registered_model, version)
        raise ModelUnavailable(
            f"version {version} of '{registered_model}' cannot be loaded from {where}: "
            f"{type(exc).__name__}: {redact(str(exc))[:300]}. Its files are damaged or missing: "
            "promote another version (`leadscore promote --version N`) or train again"
        ) from None
    if not isinstance(bundle, ScoringBundle):
        raise ModelUnavailable(
            f"version {version} of '{registered_model}' is not a leadscore model "
            f"(it holds a {type(bundle).__name__})"
        )
    return bundle


def _artifact_location(registered_model: str, version: str) -> str:
    try:
        return redact(MlflowClient().get_model_version_download_uri(registered_model, version))
    except MlflowException:
        return f"models:/{registered_model}/{version}"
