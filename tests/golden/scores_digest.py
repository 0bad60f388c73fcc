"""The digest of what `leadscore score` writes for a fixed synthetic CRM, through the real CLI:
demo data (12,000 leads, seed 0), `train` and `score` as of 2026-11-01, the scores written to a
CSV. Only the columns a run's clock does not stamp are digested (scores, probabilities, grades,
sub-scores, MQL flags, stages and the three reason columns), rows in lead order.

Usage: python tests/golden/scores_digest.py [OUT.json]

`tests/test_scores_unchanged.py` runs this with today's code and compares it to
`scores_digest.json`, which was made with the code before issue 16's speed work (commit
e2b6f3a): the work changed how fast features, reasons and the activity log are built, not what
they are. A change that alters scores on purpose regenerates the file and says so in its commit.

The CLI runs with numpy's AVX-512 kernels turned off (`NPY_DISABLE_CPU_FEATURES`). numpy picks
its kernels by the CPU, and its AVX-512 `exp` and `log` differ from the AVX2 ones in the last
bit; training carries such a bit into a slightly different model, so the digest would depend on
the machine (measured: a CPU with AVX-512 gave another digest with both the old and today's
code, and the golden one with those kernels off). The golden digest was made with AVX2 kernels.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
AS_OF = "2026-11-01"
DIGESTED = [
    "lead_id", "stage", "probability", "score", "grade", "fit_score", "engagement_score",
    "mql", "reasons", "reason_against", "reasons_json", "model_version",
]  # fmt: skip


def _cpu() -> tuple[dict[str, bool], list[str]]:
    """numpy's view of this CPU: its features, and the ones numpy has kernels for."""
    try:
        from numpy._core import _multiarray_umath as umath  # numpy 2
    except ImportError:
        from numpy.core import _multiarray_umath as umath  # numpy 1.26
    return umath.__cpu_features__, umath.__cpu_dispatch__


def without_avx512() -> str:
    """The value of NPY_DISABLE_CPU_FEATURES that turns off numpy's AVX-512 kernels here."""
    features, dispatched = _cpu()
    wider = [f for f in dispatched if features.get(f) and ("AVX512" in f or f == "X86_V4")]
    return " ".join(wider)


def has_avx2() -> bool:
    """Whether numpy runs its AVX2 kernels here (the level the golden digest was made at)."""
    return bool(_cpu()[0].get("AVX2"))


def scores_digest(leadscore: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="leadscore-golden-") as tmp:
        work = Path(tmp)
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
            "NPY_DISABLE_CPU_FEATURES": without_avx512(),
        }
        config = ["--config", str(CONFIG)]
        for args in (
            ["demo-data", "--out", "data", "--leads", "12000", "--seed", "0"],
            ["train", *config, "--data", "data", "--as-of", AS_OF],
            ["score", *config, "--data", "data", "--as-of", AS_OF, "--output", "scores.csv"],
        ):
            subprocess.run([leadscore, *args], cwd=work, env=env, check=True, capture_output=True)
        scores = pd.read_csv(work / "scores.csv", dtype=str, keep_default_na=False)
    rows = scores[DIGESTED].sort_values("lead_id", key=lambda s: s.astype(int), kind="stable")
    text = rows.to_csv(index=False)
    return {
        "rows": len(rows),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "first_row": rows.iloc[0].to_dict(),
    }


if __name__ == "__main__":
    exe = str(Path(sys.executable).with_name("leadscore"))
    result = json.dumps(scores_digest(exe), indent=2)
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(result + "\n")
    print(result)
