"""The SHAP summary draws a bounded number of points, ranked and coloured over the whole holdout."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore.models.evaluation_plots import shap_summary


def _holdout(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"visits": rng.integers(0, 50, n), "source": rng.choice(["web", "ad"], n)})
    contributions = pd.DataFrame(
        {"visits": X["visits"] / 10 - 2.5, "source": rng.normal(0, 0.1, n), "bias": -2.0}
    )
    return contributions, X


def _points(figure) -> list[np.ndarray]:
    [ax] = figure.axes
    return [collection.get_offsets() for collection in ax.collections]


def test_a_large_holdout_is_drawn_from_a_sample_of_its_leads():
    contributions, X = _holdout(5_000)
    figure = shap_summary(contributions, X, most_points=2_000)
    assert [len(points) for points in _points(figure)] == [2_000, 2_000]  # source, visits
    assert "2,000 of 5,000 holdout leads" in figure.axes[0].get_title()
    # colours are ranks over the whole holdout: the sample's highest visits are red (near 1)
    visits = figure.axes[0].collections[1]
    drawn = visits.get_offsets()[:, 0]
    colours = visits.get_array()
    assert colours[np.argmax(drawn)] > 0.95 and colours[np.argmin(drawn)] < 0.05
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["source", "visits"]


def test_a_small_holdout_is_drawn_whole():
    contributions, X = _holdout(500)
    figure = shap_summary(contributions, X, most_points=2_000)
    assert [len(points) for points in _points(figure)] == [500, 500]
    assert figure.axes[0].get_title().startswith("SHAP summary (holdout;")
