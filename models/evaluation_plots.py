"""The evaluation plots of a run, drawn as matplotlib Figures (no pyplot, no screen, no global
backend): whoever saves them picks the file. matplotlib is imported when a figure is drawn, not
with this module: training draws its figures in a child process (`work_aside`), so the parent
never pays for the import (about half a second)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from leadscore.models.scores import to_score

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WON, LOST = "#1b7f3b", "#b0b0b0"


def _subplots(width: float, height: float) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.subplots()


def _figure(title: str) -> tuple[Figure, Axes]:
    fig, ax = _subplots(6, 4.2)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig, ax


def roc(y: np.ndarray, p: np.ndarray, auc: float) -> Figure:
    fpr, tpr, _ = roc_curve(y, p)
    fig, ax = _figure(f"ROC (holdout AUC {auc:.3f})")
    ax.plot(fpr, tpr, color=WON)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate")
    return fig


def precision_recall(y: np.ndarray, p: np.ndarray, pr_auc: float) -> Figure:
    precision, recall, _ = precision_recall_curve(y, p)
    fig, ax = _figure(f"Precision-recall (holdout AP {pr_auc:.3f})")
    ax.plot(recall, precision, color=WON)
    ax.axhline(np.mean(y), ls="--", color="grey", lw=1, label="win rate")
    ax.set(xlabel="recall (share of wins found)", ylabel="precision", ylim=(0, 1.02))
    ax.legend()
    return fig


def reliability(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> Figure:
    """Predicted against actual win rate per probability decile (equal counts), with counts."""
    order = np.argsort(p, kind="stable")
    bins = np.array_split(order, n_bins)
    predicted = np.array([p[b].mean() for b in bins if len(b)])
    actual = np.array([y[b].mean() for b in bins if len(b)])
    fig, ax = _figure("Reliability: predicted vs actual win rate (deciles)")
    top = max(predicted.max(), actual.max()) * 1.05
    ax.plot([0, top], [0, top], ls="--", color="grey", lw=1, label="perfect calibration")
    ax.plot(predicted, actual, "o-", color=WON, label="holdout")
    ax.set(xlabel="mean predicted probability", ylabel="actual win rate")
    ax.legend()
    return fig


def gains_and_lift(y: np.ndarray, p: np.ndarray) -> Figure:
    order = np.argsort(-p, kind="stable")
    share = np.arange(1, len(y) + 1) / len(y)
    captured = np.cumsum(y[order]) / max(y.sum(), 1)
    fig, ax = _figure("Cumulative gains and lift")
    ax.plot(share, captured, color=WON, label="share of wins found")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="random")
    ax.set(xlabel="share of leads, best scores first", ylabel="share of all wins")
    lift_ax = ax.twinx()
    lift_ax.plot(share, captured / share, color="#c0392b", lw=1, label="lift")
    lift_ax.set_ylabel("lift")
    lines = ax.get_legend_handles_labels()
    more = lift_ax.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower right")
    return fig


def score_distribution(y: np.ndarray, p: np.ndarray) -> Figure:
    scores = to_score(p)
    fig, ax = _figure("Scores by outcome (holdout)")
    bins = np.arange(0, 101, 5)
    ax.hist(scores[y == 0], bins=bins, color=LOST, label="not won", density=True)
    ax.hist(scores[y == 1], bins=bins, color=WON, alpha=0.7, label="won", density=True)
    ax.set(xlabel="score (1-99)", ylabel="density")
    ax.legend()
    return fig


def importance(gain: pd.Series, top: int = 20) -> Figure:
    shown = gain.sort_values(ascending=False).head(top)[::-1]
    fig, ax = _subplots(6, 0.28 * len(shown) + 1)
    ax.barh(shown.index.astype(str), shown.to_numpy(), color=WON)
    ax.set(title="Feature importance (total gain)", xlabel="gain")
    fig.tight_layout()
    return fig


def shap_summary(
    contributions: pd.DataFrame, X: pd.DataFrame, top: int = 15, most_points: int = 2_000
) -> Figure:
    """Each feature's contribution per lead (log-odds), coloured by the feature's value rank
    (numbers; categories grey): the SHAP beeswarm, drawn as jittered points. The features are
    ranked, and values coloured, over the whole holdout; the points drawn are `most_points`
    leads of it at most, picked at random (drawing grows with the points: 15 features of a
    250,000-lead holdout would take about 20 s)."""
    features_only = contributions[[c for c in contributions.columns if c in X.columns]]
    strength = features_only.abs().mean().sort_values(ascending=False).head(top)
    features = list(strength.index[::-1])
    fig, ax = _subplots(7, 0.32 * len(features) + 1.2)
    rng = np.random.default_rng(0)
    n = len(contributions)
    shown = np.sort(rng.choice(n, most_points, replace=False)) if n > most_points else np.arange(n)
    # points without an outline, as large as outlined ones of size 3: the outline doubled the
    # drawing time
    dots = {"s": 7, "linewidths": 0}
    for row, name in enumerate(features):
        values = contributions[name].to_numpy()[shown]
        raw = X[name]
        jitter = row + rng.uniform(-0.3, 0.3, len(values))
        if pd.api.types.is_numeric_dtype(raw):
            colour = raw.rank(pct=True).fillna(0.5).to_numpy()[shown]
            ax.scatter(values, jitter, c=colour, cmap="coolwarm", vmin=0, vmax=1, **dots)
        else:
            ax.scatter(values, jitter, c="grey", **dots)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(features)), features)
    leads = f"{len(shown):,} of {n:,} holdout leads" if len(shown) < n else "holdout"
    ax.set(
        title=f"SHAP summary ({leads}; red: high value, blue: low)",
        xlabel="contribution to the log-odds",
    )
    fig.tight_layout()
    return fig


def plots(
    y: np.ndarray,
    p: np.ndarray,
    metrics: dict[str, float],
    gain: pd.Series,
    contributions: pd.DataFrame,
    X: pd.DataFrame,
) -> dict[str, Callable[[], Figure]]:
    """Every plot of a run, by name in report order, each drawn when called (so a writer can
    save and close one before drawing the next)."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    return {
        "roc": lambda: roc(y, p, metrics["roc_auc"]),
        "precision_recall": lambda: precision_recall(y, p, metrics["pr_auc"]),
        "reliability": lambda: reliability(y, p),
        "gains_lift": lambda: gains_and_lift(y, p),
        "score_distribution": lambda: score_distribution(y, p),
        "feature_importance": lambda: importance(gain),
        "shap_summary": lambda: shap_summary(contributions, X),
    }
