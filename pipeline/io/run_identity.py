"""What makes runs comparable in MLflow: a hash of the config, the code's commit, stable names."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pandas as pd

from leadscore.pipeline.config import Config, config_as_dict

REPO = Path(__file__).resolve().parents[2]


def config_fingerprint(config: Config) -> str:
    """The first 12 hex digits of a SHA-256 over the resolved config (keys sorted)."""
    text = json.dumps(config_as_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def git_commit() -> str:
    """The commit of the leadscore code that ran, `-dirty` with local changes; "unknown" when
    it is not a git checkout (an installed wheel)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def run_name(job: str, as_of: pd.Timestamp, config_hash: str) -> str:
    """`<job>-<as-of date>-<config hash>`: runs of the same job on the same data and config
    share a name, so a different name means a different setting."""
    return f"{job}-{as_of:%Y%m%d}-{config_hash[:8]}"
