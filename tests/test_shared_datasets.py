"""The example configs on the real public CRM data, through the real CLI."""

import json
from pathlib import Path

import mlflow
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.shared_data,
    pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared datasets not found at {SHARED}"),
]

CASES = {
    # the columns the audit must drop (and no other), the model's registered name
    "maven_crm": (
        {
            "close_value",
            "account_id",  # the account is filled in only for closed opportunities
            "account_sector",
            "account_year_established",
            "account_revenue",
            "account_employees",
            "account_office_location",
        },
        "lead-scoring-maven-crm",
    ),
    "x_education": (
        {"Tags", "Lead Quality", "Last Activity", "Last Notable Activity"},
        "lead-scoring-x-education",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_config_audits_and_trains_without_the_leaks(name, run_cli, tmp_path):
    leaks, model_name = CASES[name]
    config = str(REPO / "configs" / "examples" / f"{name}.yaml")
    data = str(SHARED / name)

    audit = run_cli("audit", "--config", config, "--data", data, "--json")
    document = json.loads(audit.stdout)
    findings = document["findings"]
    flagged = {f["column"] for f in findings if f["verdict"] == "dropped"}
    assert flagged == leaks, findings  # every known leak, and no honest column
    evidence = {c["column"]: c for c in document["columns"]}
    priced = [f for f in findings if f["verdict"] == "dropped" and f["column"] in evidence]
    assert priced and all(f["price"].startswith("AUC ") for f in priced)  # keys have none
    assert all("auc_alone" in c for c in evidence.values())
    assert {c for c, e in evidence.items() if e["verdict"] == "clean"}.isdisjoint(flagged)
    assert json.loads((tmp_path / "leakage_audit.json").read_text()) == document

    train = run_cli("train", "--config", config, "--data", data)
    assert "roc_auc" in train.stdout
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(f"models:/{model_name}@champion")
    used = set(model.unwrap_python_model().bundle.estimator.feature_names_in_)
    assert not used & flagged
    run = mlflow.get_run(model.metadata.run_id)
    assert set(run.data.tags["leakage_dropped"].split(", ")) >= leaks - {"account_id"}
    if name == "x_education":
        assert "NO TIMESTAMPS" in train.stderr
        lines = train.stderr.splitlines()
        assert not [line for line in lines if "not a feature:" in line]  # once 44 lines
        (summary,) = [line for line in lines if "not features:" in line]
        assert "constant in the training rows" in summary
        assert run.data.tags["split_method"] == "stratified random"
        assert run.data.tags["point_in_time"] == "false"
    else:
        assert run.data.tags["split_method"] == "time-forward"
