"""`leadscore` makes no network call its user did not configure: MLflow 3's usage telemetry
(which fetches its settings from the internet and sends usage records from every process that
imports MLflow) is off unless the user turns it on with MLFLOW_DISABLE_TELEMETRY=false."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

# the variables by which MLflow decides it runs in CI or a test, and stays quiet by itself
CI_VARIABLES = {
    "PYTEST_CURRENT_TEST", "GITHUB_ACTIONS", "CI", "CIRCLECI", "GITLAB_CI", "JENKINS_URL",
    "TRAVIS", "TF_BUILD", "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ARN", "BUILDKITE",
    "TEAMCITY_VERSION", "CLOUD_RUN_EXECUTION", "RUNBOT_HOST_URL", "RUNBOT_BUILD_NAME",
    "RUNBOT_WORKER_ID", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "MLFLOW_TRACKING_URI",
}  # fmt: skip

# every name lookup of the process is written down (connections all start with one)
WATCH = """
import os, socket
_lookup = socket.getaddrinfo
def getaddrinfo(host, *args, **kwargs):
    if host not in (None, "localhost", "127.0.0.1", "::1"):
        with open(os.environ["LEADSCORE_LOOKUPS"], "a") as log:
            log.write(f"{host}\\n")
    return _lookup(host, *args, **kwargs)
socket.getaddrinfo = getaddrinfo
"""


def _lookups(folder: Path, tmp_path: Path, **settings: str) -> list[str]:
    (tmp_path / "watch").mkdir(exist_ok=True)
    (tmp_path / "watch" / "sitecustomize.py").write_text(WATCH)
    log = tmp_path / f"lookups-{len(settings)}.txt"
    env = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES}
    env |= {"PYTHONPATH": str(tmp_path / "watch"), "LEADSCORE_LOOKUPS": str(log), **settings}
    exe = Path(sys.executable).with_name("leadscore")
    result = subprocess.run(
        [str(exe), "score", "--as-of", "2026-10-01", "--output", f"scores-{len(settings)}.db"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return log.read_text().split() if log.exists() else []


def test_a_score_run_looks_up_no_host(trained_copy, tmp_path):
    folder, _ = trained_copy(6000, 3, "2026-10-01")
    # the watch works: with MLflow's telemetry turned on by the user, its lookups are seen
    assert _lookups(folder, tmp_path, MLFLOW_DISABLE_TELEMETRY="false")
    assert _lookups(folder, tmp_path) == []
