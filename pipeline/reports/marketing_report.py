"""The marketing report: the agreement, its figures and what closes, in words a marketing
manager reads. One self-contained HTML file; every figure a percentage or a count, every
column explained, the configuration in an appendix."""

from __future__ import annotations

import html
import math

import pandas as pd

from leadscore.pipeline.jobs.agreement import AgreementReport
from leadscore.pipeline.reports.model_report import STYLE

EXTRA_STYLE = """
.agreed td { background: #eef6ee; font-weight: 600; }
.terms td:first-child { font-weight: 600; } .words td { text-align: left; }
dl dt { font-weight: 600; margin-top: .5em; }
"""

GLOSSARY = {
    "MQLs a week": "How many leads marketing would hand to sales each week under this policy.",
    "Expected win rate": "The share of handed-over leads the model expects to be won within "
    "the window, from its calibrated probabilities (a 30 means about 30%).",
    "Realized win rate": "The share that really was won, on past leads the model never saw "
    "(the holdout): the check on the expectation.",
    "Expected wins a week": "Wins the hand-offs should bring each week, with a 95% range.",
    "Realized wins a week": "Wins the hand-offs did bring on the holdout; inside the range "
    "means the expectation held.",
    "Share of all wins captured": "Of all the wins among marketing's leads, the share that "
    "came from leads handed over.",
    "Wins left with marketing": "Wins a week from leads not handed over: nurture them, or "
    "widen the definition.",
    "Accepted within the SLA": "Hand-offs sales accepted (made an opportunity) within the "
    "agreed number of days.",
    "Lift": "How many times more often leads like these are won than marketing's leads on "
    "average (1.0 = average).",
    "Model's average contribution": "What the model adds to a lead's odds for this trait once "
    "everything else about the lead is known (positive: it raises the score).",
}


def _pct(value: object, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value) * 100:.{digits}f}%"


def _num(value: object, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value):,.{digits}f}"


def _rates(frame: pd.DataFrame) -> list[str]:
    """Each row's win rate with its 95% range, in percent."""
    return [
        f"{_pct(r)} ({_pct(lo)} to {_pct(hi)})"
        for r, lo, hi in zip(
            frame["win_rate"], frame["win_rate_low"], frame["win_rate_high"], strict=True
        )
    ]


def _html_table(frame: pd.DataFrame, agreed: pd.Series | None = None, css: str = "") -> str:
    e = html.escape
    head = "".join(f"<th>{e(str(c))}</th>" for c in frame.columns)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        css = ' class="agreed"' if agreed is not None and bool(agreed.iloc[i]) else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>")
    table_class = f' class="{css}"' if css else ""
    return f"<table{table_class}><tr>{head}</tr>{''.join(body)}</table>"


def agreement_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The agreement table in the report's words and units."""
    return pd.DataFrame(
        {
            "Policy": table["policy"],
            "MQLs a week": table["mqls_per_week"].map(_num),
            "Expected win rate": table["expected_win_rate"].map(_pct),
            "Realized win rate": table["realized_win_rate"].map(_pct),
            "Expected wins a week (95% range)": [
                f"{_num(m, 1)} ({_num(lo, 1)} to {_num(hi, 1)})"
                for m, lo, hi in zip(
                    table["expected_wins_per_week"],
                    table["expected_wins_low"],
                    table["expected_wins_high"],
                    strict=True,
                )
            ],
            "Realized wins a week": table["realized_wins_per_week"].map(lambda v: _num(v, 1)),
            "Share of all wins captured": table["realized_share_of_wins"].map(_pct),
            "Wins left with marketing a week": table["wins_left_with_marketing_per_week"].map(
                lambda v: _num(v, 1)
            ),
        }
    )


def _outcomes(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    out = frame.reset_index().rename(columns={frame.index.name or "index": by})
    shown = pd.DataFrame({by.capitalize(): out.iloc[:, 0].astype(str).str.slice(0, 10)})
    shown["Handed over"] = out["handed_over"].map(_num)
    for column in out.columns:
        if column not in (out.columns[0], "handed_over", "win_rate_low", "win_rate_high"):
            label = column.replace("_", " ").capitalize().replace("sla", "SLA")
            shown[label] = out[column].map(_pct)
    shown["Won (95% range)"] = _rates(out)
    return shown.drop(columns=["Win rate"], errors="ignore")


def render_marketing_report(report: AgreementReport, config_yaml: str) -> str:
    e = html.escape
    terms = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in report.terms.items())
    parts = [
        f"<h1>Lead hand-off report: {e(report.name)}</h1>",
        f"<p>Model version {e(report.version)}, as of {report.as_of:%Y-%m-%d}. This is the "
        "agreement between sales and marketing on which leads to hand over, what it is "
        "expected to deliver, and what really happened.</p>",
        f'<h2>The agreement</h2><table class="terms words">{terms}</table>',
    ]
    if len(report.grade_thresholds):
        g = report.grade_thresholds
        shown = pd.DataFrame(
            {
                "Grade": g["grade"],
                "Leads marketing holds": g["leads"].map(_num),
                "Share": g["share"].map(_pct),
                "Lowest score in the grade": g["lowest_score"].map(_num),
                "MQLs now": g["mqls"].map(_num),
            }
        )
        parts.append(
            "<h2>Grades today</h2><p>The grades of the leads marketing holds now, and the lowest "
            "score that makes each grade.</p>" + _html_table(shown)
        )
    if report.table is not None:
        parts.append(
            "<h2>What each policy would deliver</h2><p>Measured on past leads the model never "
            "saw. The agreed policy is highlighted; the others are the alternatives to weigh "
            "it against.</p>" + _html_table(agreement_frame(report.table), report.table["agreed"])
        )
    if report.by_grade is not None and report.by_week is not None:
        parts.append(
            "<h2>What happened to past hand-offs</h2><p>Every lead handed over, followed in the "
            "CRM: accepted by sales, won, lost, still open, or not accepted within the SLA.</p>"
            + _html_table(_outcomes(report.by_grade, "grade"))
            + "<h3>By week of hand-off</h3>"
            + _html_table(_outcomes(report.by_week, "week"))
        )
    if report.versus is not None:
        v = report.versus.reset_index()
        shown = pd.DataFrame(
            {
                "Leads": v["leads"],
                "How many": v["n"].map(_num),
                "Won within the window": v["won"].map(_num),
                "Win rate (95% range)": _rates(v),
                "Lift": v["lift"].map(lambda x: _num(x, 1)),
            }
        )
        parts.append(
            "<h2>Handed over against kept</h2><p>Leads handed over compared with the leads "
            "marketing held in the same batches and did not hand over.</p>" + _html_table(shown)
        )
    if report.learnings is not None and len(report.learnings):
        top = report.learnings[report.learnings["lift"] >= 1].head(15)
        low = report.learnings[report.learnings["lift"] < 1].tail(8)
        for title, frame in (("What precedes wins", top), ("What rarely closes", low)):
            shown = pd.DataFrame(
                {
                    "Lead trait or activity": frame["in_words"],
                    "Leads": frame["leads"].map(_num),
                    "Win rate (95% range)": _rates(frame),
                    "Lift": frame["lift"].map(lambda x: _num(x, 1)),
                    "Model's average contribution": frame["model_contribution"].map(
                        lambda x: "-" if x != x else f"{x:+.2f}"
                    ),
                }
            )
            parts.append(f"<h2>{title}</h2>" + _html_table(shown))
        parts.append(
            "<p>Use it: put budget behind the sources and campaigns with a lift well above 1 "
            "whose range stays above the average; steer content towards the activities that "
            "precede wins (a demo request, a meeting); a trait with a high lift but a small "
            "model contribution wins because of what comes with it, not by itself.</p>"
        )
    if len(report.examples):
        x = report.examples
        shown = pd.DataFrame(
            {
                "Lead": x["lead_id"].astype(str),
                "Score": x["score"].map(_num),
                "Grade": x["grade"],
                "Why": x["reasons"],
                "What holds it back": x["reason_against"].fillna(""),
            }
        )
        parts.append("<h2>Example leads to hand over now</h2>" + _html_table(shown, css="words"))
    notes = "".join(f"<li>{e(n)}</li>" for n in report.notes)
    if notes:
        parts.append(f"<h2>Notes</h2><ul>{notes}</ul>")
    glossary = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in GLOSSARY.items())
    parts.append(f"<h2>What the figures mean</h2><dl>{glossary}</dl>")
    parts.append(f"<h2>Appendix: configuration</h2><pre>{e(config_yaml)}</pre>")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Lead hand-off report: {e(report.name)}</title>"
        f"<style>{STYLE}{EXTRA_STYLE}</style></head><body>" + "".join(parts) + "</body></html>\n"
    )
