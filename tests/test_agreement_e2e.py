"""The agreement through the real CLI: trained and scored in the past, judged later. The
agreed policy's expected wins hold on the holdout, past hand-offs are followed to what
happened next, and the marketing report renders in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess

import pandas as pd
import pytest

pytestmark = pytest.mark.e2e


def test_agreement_table_closed_loop_and_report(run_cli, demo_config, tmp_path):
    # a history that runs on past the hand-offs, so that their 90-day windows have passed
    folder = tmp_path
    end = ("--end", "2027-03-01")
    run_cli("demo-data", "--out", "demo_data", "--leads", "8000", "--seed", "3", *end)
    run_cli("train", "--as-of", "2026-11-01")
    for as_of in ("2026-11-01", "2026-11-08", "2026-11-15"):
        run_cli("score", "--as-of", as_of, "--output", "scores.parquet")
    changes = pd.read_parquet(folder / "scores.lead_score_changes.parquet")
    history = pd.read_parquet(folder / "scores.lead_score_history.parquet")
    assert set(changes["change"]) >= {"into_mql"}
    assert set(changes["batch_id"]) <= set(history["batch_id"])
    assert not history.loc[history["stage"] == "sales", "mql"].any()

    result = run_cli(
        "agreement", "--as-of", "2027-03-01", "--output", "scores.parquet",
        "--json", "agreement.json", "--report", "report.html",
    )  # fmt: skip
    figures = json.loads((folder / "agreement.json").read_text())
    table = pd.DataFrame(figures["table"])
    agreed = table[table["agreed"]].iloc[0]
    assert agreed["capacity_per_week"] == 150 and agreed["holdout_mqls"] > 0
    # the expectation holds: realized wins inside the expected 95% range for the agreed policy
    assert agreed["expected_wins_low"] <= agreed["realized_wins_per_week"]
    assert agreed["realized_wins_per_week"] <= agreed["expected_wins_high"]
    inside = (table["realized_wins_per_week"] >= table["expected_wins_low"]) & (
        table["realized_wins_per_week"] <= table["expected_wins_high"]
    )
    assert inside.mean() >= 0.8, table
    assert agreed["mqls_per_week"] <= 150 * 1.05  # the cap binds as agreed

    by_grade = pd.DataFrame(figures["by_grade"])
    assert by_grade["handed_over"].sum() == (changes["change"] == "into_mql").sum() - (
        changes[changes["change"] == "into_mql"]["lead_id"].duplicated().sum()
    )
    versus = pd.DataFrame(figures["versus"]).set_index("leads")
    assert versus.loc["handed over (MQL)", "win_rate"] > versus.loc["kept by marketing", "win_rate"]
    assert len(figures["what_closes"]) > 10
    assert "Agreement" in result.stdout and "Closed loop" in result.stdout

    html = (folder / "report.html").read_text()
    for words in (
        "The agreement",
        "What each policy would deliver",
        "What happened to past",
        "What precedes wins",
        "What the figures mean",
        "Appendix: configuration",
    ):
        assert words in html  # fmt: skip
    assert "%" in html and "0.0" not in html.split("Appendix")[0].split("<table")[0]
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on this machine (Debian package chromium) to render the report")
    shot = folder / "report.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,3000",
         f"--screenshot={shot}", (folder / "report.html").as_uri()],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot.is_file() and shot.stat().st_size > 20_000
