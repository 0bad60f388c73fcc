"""The HTML model report logged with each run: self-contained, and it renders with its plots in
a real headless browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.e2e
PLOTS = (
    "roc",
    "precision_recall",
    "reliability",
    "gains_lift",
    "score_distribution",
    "feature_importance",
    "shap_summary",
)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture
def report(trained_copy, tmp_path):
    workdir, _ = trained_copy(6000, 3, "2026-10-01")
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    client = MlflowClient()
    run_id = client.get_model_version("lead-scoring", "1").run_id
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"report.html", "plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert plots == {f"plots/{name}.png" for name in PLOTS}
    return client.download_artifacts(run_id, "report.html", str(tmp_path))


def test_the_report_is_one_file_with_every_plot_and_table(report):
    html = Path(report).read_text(encoding="utf-8")
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', html)
    assert images == [name.replace("_", " ") for name in PLOTS]
    assert not re.search(r'(src|href)="(http|//)', html)  # nothing fetched: it opens offline
    for section in ("Metrics", "Grades", "Segments", "Leakage audit", "Data", "Config"):
        assert f"<h2>{section}</h2>" in html
    assert re.search(r"roc_auc</td>\s*<td>0\.9\d+</td>\s*<td>0\.\d+ to 0\.\d+</td>", html)
    assert "account_industry" in html  # a default segment the demo data has


def test_the_report_renders_its_plots_in_headless_chromium(report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on this machine (Debian package chromium) to render the report")
    shot = tmp_path / "report.png"
    common = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run(
        [*common, "--window-size=1200,3000", f"--screenshot={shot}", f"file://{report}"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    dom = subprocess.run(
        [*common, "--dump-dom", f"file://{report}"],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert dom.count("data:image/png;base64,") == len(PLOTS)
    pixels = matplotlib.image.imread(shot)[..., :3]
    green = np.abs(pixels - np.array([0x1B, 0x7F, 0x3B]) / 255).max(axis=-1) < 0.08
    assert green.sum() > 2000  # the plots' curves and bars are drawn, not broken images


def test_the_mlflow_ui_serves_the_runs_metrics_and_plots(trained_copy):
    """The real MLflow UI server on the store `train` wrote: the run with its intervals, and
    a plot as an artifact (what a data scientist clicks through)."""
    import json
    import socket
    import sys
    import time
    import urllib.request

    workdir, _ = trained_copy(6000, 3, "2026-10-01")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    exe = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen(
        [str(exe), "ui", "--backend-store-uri", "sqlite:///mlflow.db", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        query = json.dumps(
            {"experiment_ids": ["1"], "filter": "tags.job = 'train'", "max_results": 5}
        ).encode()
        request = urllib.request.Request(
            f"{base}/api/2.0/mlflow/runs/search",
            data=query,
            headers={"Content-Type": "application/json"},
        )
        [run] = json.load(urllib.request.urlopen(request, timeout=30))["runs"]
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert metrics["roc_auc_ci_low"] <= metrics["roc_auc"] <= metrics["roc_auc_ci_high"]
        plot = urllib.request.urlopen(
            f"{base}/get-artifact?path=plots/roc.png&run_uuid={run['info']['run_id']}", timeout=30
        ).read()
        assert plot[:8] == b"\x89PNG\r\n\x1a\n" and len(plot) > 5000
    finally:
        server.terminate()
        server.wait(timeout=30)
