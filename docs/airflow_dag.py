"""An Airflow DAG for leadscore: nightly incremental scoring, a weekly full rescore and retrain,
and daily monitoring. Copy it into your DAGs folder and set LEADSCORE_HOME to the folder that
holds the virtualenv, configs/ and the MLflow store (or set MLFLOW_TRACKING_URI).

Exit codes (see docs/scheduling.md): score and retrain fail the task on 1 (failure) or 2 (bad
input); retrain exits 0 whether it promoted or kept the champion. monitor exits 4 on an alert,
which fails its task without retries so that the alert reaches a person. Exit 5 (another job
held the target or the registry too long) is worth the default retry. max_active_runs=1 keeps
a slow run from overlapping the next one of the same DAG.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

HOME = os.environ.get("LEADSCORE_HOME", "/srv/leadscore")


def page_the_owner(context: dict) -> None:
    """Replace with your alerting (Slack, PagerDuty, e-mail): a failed monitor task means drift
    or a backtest miss (exit 4), or monitor itself failed (1, 2); its log says which."""
    task = context["task_instance"]
    print(f"ALERT: {task.dag_id}.{task.task_id} failed for {context['ds']}: see {task.log_url}")


CLI = f"cd {HOME} && .venv/bin/leadscore"
CONFIG = "--config configs/prod.yaml"
DEFAULTS = {"owner": "data", "retries": 1, "retry_delay": timedelta(minutes=10)}

with DAG(
    "leadscore_nightly",
    start_date=datetime(2026, 1, 1),
    schedule="15 2 * * *",
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
    tags=["leadscore"],
) as nightly:
    BashOperator(task_id="score_changed", bash_command=f"{CLI} score {CONFIG} --changed-since last")

with DAG(
    "leadscore_weekly",
    start_date=datetime(2026, 1, 1),
    schedule="0 3 * * 0",
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
    tags=["leadscore"],
) as weekly:
    full = BashOperator(task_id="score_full", bash_command=f"{CLI} score {CONFIG}")
    retrain = BashOperator(
        task_id="retrain",
        bash_command=f"{CLI} retrain {CONFIG}",  # 0 promoted or kept; reasons in MLflow
        retries=0,  # a retrain that failed should be looked at, not repeated
    )
    rescore = BashOperator(
        task_id="score_with_new_champion",
        bash_command=f"{CLI} score {CONFIG}",  # a promoted model rescores every lead
    )
    full >> retrain >> rescore

with DAG(
    "leadscore_monitor",
    start_date=datetime(2026, 1, 1),
    schedule="0 7 * * *",
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULTS, "retries": 0},
    tags=["leadscore"],
) as monitoring:
    BashOperator(
        task_id="monitor",
        bash_command=f"{CLI} monitor {CONFIG} --report reports/monitor-{{{{ ds }}}}.json",
        on_failure_callback=page_the_owner,  # exit 4 = drift or a backtest miss
    )
