"""Scores, reasons and everything else `leadscore score` writes are the same, digit for digit,
as before issue 16's speed work (see `tests/golden/scores_digest.py`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from golden.scores_digest import has_avx2, scores_digest

GOLDEN = Path(__file__).parent / "golden" / "scores_digest.json"


@pytest.mark.e2e
@pytest.mark.skipif(
    not has_avx2(),
    reason="the golden digest was made with numpy's AVX2 kernels; this CPU has none, and "
    "numpy's other kernels round exp and log differently in the last bit",
)
def test_the_cli_writes_the_same_scores_and_reasons_as_before_the_speed_work() -> None:
    expected = json.loads(GOLDEN.read_text())
    found = scores_digest(str(Path(sys.executable).with_name("leadscore")))
    assert found["rows"] == expected["rows"]
    assert found["first_row"] == expected["first_row"]
    assert found["sha256"] == expected["sha256"]
