"""Recent training runs side by side, with the champion marked: `leadscore runs`."""

from __future__ import annotations

import pandas as pd
from mlflow.tracking import MlflowClient

from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.registry import champion_version, filter_value, versions_of

SHOWN = ("roc_auc", "pr_auc", "ece", "lift_at_10", "capture_at_20")
JOBS = ("train", "retrain")


def recent_runs(experiment: str, registered_model: str, limit: int = 10) -> pd.DataFrame:
    """The newest `limit` finished train and retrain runs, newest first: name, when, as-of,
    registered version, whether it is the champion, the gate's verdict, and each metric with
    its interval."""
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise InputError(f"no MLflow experiment {experiment!r} here: run `leadscore train` first")
    runs = [  # filtered on the server: monitor and tune runs can be many
        run
        for job in JOBS
        for run in client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.job = {filter_value(job)} AND attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=limit,
        )
    ]
    runs = sorted(runs, key=lambda r: r.info.start_time, reverse=True)[:limit]
    versions = {v.run_id: str(v.version) for v in versions_of(registered_model)}
    champion = champion_version(registered_model)
    rows = []
    for run in runs:
        m, tags = run.data.metrics, run.data.tags
        version = versions.get(run.info.run_id, "")
        row: dict[str, object] = {
            "run": run.info.run_name,
            "started": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC").floor("s"),
            "as_of": tags.get("as_of", "")[:10],
            "version": version,
            "champion": bool(version) and version == champion,
            "gate": tags.get("gate_decision", ""),
            "n_holdout": int(m.get("n_holdout", m.get("n", 0))),
            "config": tags.get("config_hash", "")[:8],
            "data": tags.get("data_fingerprint", "")[:8],
        }
        for name in SHOWN:
            row[name] = m.get(name, float("nan"))
            row[f"{name}_ci"] = (
                m.get(f"{name}_ci_low", float("nan")),
                m.get(f"{name}_ci_high", float("nan")),
            )
        rows.append(row)
    return pd.DataFrame(rows)
