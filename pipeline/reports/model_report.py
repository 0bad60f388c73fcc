"""The model report: one self-contained HTML file (plots embedded) that opens offline."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

import pandas as pd

from leadscore.models.evaluation import HIGHER_IS_BETTER, METRICS

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots figure { margin: 0; } .plots img { max-width: 520px; border: 1px solid #eee; }
.warn { color: #a04000; } pre { background: #f7f7f7; padding: 1em; overflow: auto; }
"""


@dataclass(frozen=True)
class ReportInputs:
    title: str
    run_id: str
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    grades: pd.DataFrame  # per grade: leads, win_rate, predicted, share_of_wins
    segments: pd.DataFrame  # segment_metrics
    audit: list[dict[str, str]]  # leakage audit records
    summary: dict[str, object]  # data and split facts
    notes: list[str]  # warnings from loading and training
    config_yaml: str
    plots: dict[str, bytes]  # PNG images by name, in report order


def _table(frame: pd.DataFrame, floats: str = "{:.3f}") -> str:
    return frame.to_html(index=False, border=0, na_rep="-", float_format=lambda v: floats.format(v))


def _metrics_table(metrics: dict[str, float], intervals: dict[str, tuple[float, float]]) -> str:
    rows = [
        {
            "metric": name,
            "holdout": metrics.get(name, float("nan")),
            "95% interval": "{:.3f} to {:.3f}".format(*intervals.get(name, (float("nan"),) * 2)),
            "better": "higher" if name in HIGHER_IS_BETTER else "lower",
        }
        for name in METRICS
    ]
    return _table(pd.DataFrame(rows), "{:.4f}")


def _image(stem: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    name = html.escape(stem.replace("_", " "))
    return (
        f'<figure><img alt="{name}" src="data:image/png;base64,{data}">'
        f"<figcaption>{name}</figcaption></figure>"
    )


def render(inputs: ReportInputs) -> str:
    """The report as one HTML document (no external files, scripts or fonts)."""
    e = html.escape
    summary = pd.DataFrame(
        {"": list(inputs.summary), "value": [str(v) for v in inputs.summary.values()]}
    )
    audit = pd.DataFrame(inputs.audit) if inputs.audit else pd.DataFrame({"finding": ["none"]})
    notes = "".join(f'<li class="warn">{e(n)}</li>' for n in inputs.notes) or "<li>none</li>"
    plots = "".join(_image(stem, png) for stem, png in inputs.plots.items())
    grades = inputs.grades.reset_index()
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(inputs.title)}</title>
<style>{STYLE}</style></head><body>
<h1>{e(inputs.title)}</h1>
<p>MLflow run <code>{e(inputs.run_id)}</code>. Every figure below is measured on the holdout,
which the model never saw while training or calibrating; intervals are 95% bootstrap intervals
that resample whole leads.</p>
<h2>Metrics</h2>{_metrics_table(inputs.metrics, inputs.intervals)}
<h2>Grades</h2><p>Per grade: holdout leads, how often they were actually won, what the model
predicted, and their share of all wins.</p>{_table(grades)}
<h2>Plots</h2><div class="plots">{plots}</div>
<h2>Segments</h2><p>Metrics per segment value (AUC only where a segment has both outcomes
and enough rows).</p>{_table(inputs.segments)}
<h2>Leakage audit</h2>{_table(audit)}
<h2>Data</h2>{_table(summary)}
<h2>Warnings</h2><ul>{notes}</ul>
<h2>Config</h2><pre>{e(inputs.config_yaml)}</pre>
</body></html>
"""
