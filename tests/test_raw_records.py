"""The registered model as a client meets it: raw lead records through `mlflow.pyfunc`, the
same rows as the batch job, and bad records refused naming the column."""

from __future__ import annotations

import os

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import _run_in, copy_trained
from mlflow.exceptions import MlflowException

from leadscore.features.account_history import account_history_features
from leadscore.features.tables import CrmTables, clean, crm_as_of
from leadscore.models.raw_records import example_records

pytestmark = pytest.mark.e2e
AS_OF = "2026-10-01"
COMPARED = ["probability", "score", "stage", "fit_score", "engagement_score", "reasons",
            "reason_against"]  # fmt: skip


@pytest.fixture(scope="module")
def scored(_trained_once, tmp_path_factory):
    """A trained model, the batch scores as of AS_OF, and the model loaded as a client would."""
    folder, _ = _trained_once(6000, 3, AS_OF)
    work = copy_trained(folder, tmp_path_factory.mktemp("raw"))

    _run_in(work, "score", "--as-of", AS_OF, "--output", "scores.parquet")
    batch = pd.read_parquet(work / "scores.parquet").set_index("lead_id")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/lead-scoring@champion")
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    data = work / "demo_data"
    tables = CrmTables(
        *(
            pd.read_parquet(data / f"{n}.parquet")
            for n in ("accounts", "leads", "activities", "deals")
        )
    )
    return model, batch, tables


def _records(tables: CrmTables, ids: list[int]) -> pd.DataFrame:
    """The leads as a CRM would send them: their columns, account, activities, deal state and
    the account's rollups (computed from the whole CRM, as the CRM would)."""
    moment = pd.Timestamp(AS_OF, tz="UTC")
    view = clean(crm_as_of(tables, moment))
    chosen = CrmTables(
        view.accounts, view.leads[view.leads["lead_id"].isin(ids)], view.activities, view.deals
    )
    records = example_records(chosen, moment, n=len(ids))
    records["activities"] = [
        [
            {"occurred_at": t.isoformat(), "activity_type": a}
            for t, a in zip(g["occurred_at"], g["activity_type"], strict=True)
        ]
        for g in (view.activities[view.activities["lead_id"] == i] for i in records["lead_id"])
    ]
    spine = pd.DataFrame({"lead_id": records["lead_id"], "cutoff": moment})
    rollups = account_history_features(view, spine).reset_index(drop=True)
    for column in ("account_won_deals", "account_lost_deals", "account_other_leads"):
        records[column] = rollups[column].to_numpy()
    return records


def test_raw_records_give_the_batch_rows(scored):
    model, batch, tables = scored
    rng = np.random.default_rng(0)
    ids = sorted(rng.choice(batch.index.to_numpy(), 150, replace=False).tolist())
    stage_sales = batch.index[batch["stage"] == "sales"][:10].tolist()
    records = _records(tables, sorted(set(ids) | set(stage_sales)))
    out = model.predict(records, params={"as_of": AS_OF}).set_index("lead_id")
    expected = batch.loc[out.index, COMPARED]
    assert (out["stage"] == "sales").sum() >= 1  # the opportunity model answered too
    np.testing.assert_allclose(out["probability"], expected["probability"], atol=1e-9)
    pd.testing.assert_frame_equal(
        out[COMPARED[1:]].astype(str), expected[COMPARED[1:]].astype(str), check_dtype=False
    )
    assert out["model_version"].str.startswith("run ").all()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda r: r.drop(columns="created_at"), "created_at"),
        (lambda r: r.assign(created_at="the day before yesterday"), "created_at"),
        (lambda r: r.assign(account_employees="many"), "account_employees"),
        (lambda r: r.assign(activities=[[{"when": "x"}]] * len(r)), "activities"),
    ],
)
def test_bad_records_are_refused_naming_the_column(scored, change, named):
    model, _, tables = scored
    records = _records(tables, tables.leads["lead_id"].head(3).tolist())
    with pytest.raises(MlflowException, match=named):
        model.predict(change(records), params={"as_of": AS_OF})


def test_raw_spellings_score_like_the_normalised_ones(scored):
    model, _, tables = scored
    records = _records(tables, tables.leads["lead_id"].head(20).tolist())
    shouted = records.assign(job_title=records["job_title"].str.upper())
    a = model.predict(records, params={"as_of": AS_OF})
    b = model.predict(shouted, params={"as_of": AS_OF})
    np.testing.assert_allclose(a["probability"], b["probability"], atol=1e-12)


def test_a_served_model_answers_one_lead_a_batch_and_refuses_bad_input(scored, tmp_path):
    """`mlflow models serve` on the registered champion (env manager local): what a `curl`
    gets back, for one lead and for 1,000; bad input is an HTTP 400 naming the column."""
    import json
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import requests

    _, batch, tables = scored
    records = _records(tables, batch.index[:1000].tolist())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
    server = subprocess.Popen(
        [str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/lead-scoring@champion",
         "--env-manager", "local", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/invocations"
    try:
        for _ in range(240):
            try:
                requests.get(f"http://127.0.0.1:{port}/ping", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.5)

        def post(frame: pd.DataFrame) -> requests.Response:
            body = {"dataframe_records": json.loads(frame.to_json(orient="records")),
                    "params": {"as_of": AS_OF}}  # fmt: skip
            return requests.post(url, json=body, timeout=300)

        one = post(records.head(1))
        assert one.status_code == 200, one.text
        answer = one.json()["predictions"][0]
        assert {"probability", "score", "grade", "stage", "reasons", "model_version"} <= set(answer)
        assert answer["probability"] == pytest.approx(batch.loc[answer["lead_id"], "probability"])
        assert answer["reasons"] == batch.loc[answer["lead_id"], "reasons"]
        many = post(records)
        assert many.status_code == 200 and len(many.json()["predictions"]) == len(records)
        bad = post(records.head(1).assign(created_at="not a time"))
        assert bad.status_code == 400 and "created_at" in bad.json()["message"]
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.slow
def test_a_model_rebuilt_from_the_registry_alone_gives_the_same_numbers(scored, tmp_path):
    """`mlflow models predict --env-manager uv`: a new environment from the model's pinned
    requirements and its own copy of the leadscore code, nothing of this one."""
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    bin_dir = Path(sys.executable).parent
    if shutil.which("uv", path=str(bin_dir)) is None:
        pytest.skip("uv is not installed (dev extra): MLflow's uv env manager needs it")
    model, batch, tables = scored
    records = _records(tables, batch.index[:5].tolist())
    request = tmp_path / "input.json"
    request.write_text(
        json.dumps(
            {
                "dataframe_records": json.loads(records.to_json(orient="records")),
                "params": {"as_of": AS_OF},
            }
        )
    )
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
    env["MLFLOW_ENV_ROOT"] = str(tmp_path / "envs")
    done = subprocess.run(
        [str(bin_dir / "mlflow"), "models", "predict", "-m", "models:/lead-scoring@champion",
         "--env-manager", "uv", "-i", str(request), "-t", "json", "-o", str(tmp_path / "out.json")],
        env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    if done.returncode != 0 and "Failed to fetch" in done.stderr + done.stdout:
        pytest.skip("no package index reachable to build the model's environment")
    assert done.returncode == 0, done.stderr[-3000:]
    rebuilt = pd.DataFrame(json.loads((tmp_path / "out.json").read_text())["predictions"])
    here = model.predict(records, params={"as_of": AS_OF})
    np.testing.assert_allclose(rebuilt["probability"], here["probability"], atol=1e-9)
    assert rebuilt["reasons"].tolist() == here["reasons"].tolist()


def test_values_never_seen_score_as_unseen_and_are_counted(scored, caplog):
    model, _, tables = scored
    records = _records(tables, tables.leads["lead_id"].head(4).tolist())
    with caplog.at_level("WARNING", logger="leadscore.model"):
        out = model.predict(records.assign(country="Narnia"), params={"as_of": AS_OF})
    assert len(out) == 4 and out["probability"].between(0, 1).all()
    assert "'country': 4" in caplog.text
