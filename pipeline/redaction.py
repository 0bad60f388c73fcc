"""Keeping secrets out of everything leadscore prints, logs or writes.

Two kinds of secret reach leadscore: a password written into a URL (`postgresql://u:pw@db/crm`,
or `?password=pw`), and the value of an environment variable expanded into one
(`${PG_PASSWORD}`). Every text that leaves the process (terminal lines, error messages,
MLflow params, tags and artifacts, reports, written configs) goes through `redact_text`,
which hides both: URL passwords by their place in the URL, expanded values by remembering them
when they are expanded (`expand_env`).
"""

from __future__ import annotations

import os
import re
from typing import Any

ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
HIDDEN = "***"
# scheme://user:password@  (the password may be empty; it never holds '@', '/' or spaces)
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*:)(?P<password>[^@/\s'\"]*)@"
)
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&](?:password|passwd|pwd|token|secret|api_key|apikey|access_token)=)"
    r"(?P<value>[^&\s'\"]*)",
    re.IGNORECASE,
)
_MIN_SECRET = 4  # shorter expanded values are not hidden verbatim: they would redact letters


class _Secrets:
    """Values of environment variables expanded into URLs during this run."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def remember(self, value: str) -> None:
        if len(value) >= _MIN_SECRET:
            self.values.add(value)


_SECRETS = _Secrets()


class MissingVariable(KeyError):
    """A `${NAME}` whose variable is not set."""


def expand_env(text: str) -> str:
    """Replace each `${NAME}` with the environment's value, remembering the value as a secret.

    Raises MissingVariable (with the name) when a variable is not set."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise MissingVariable(name)
        _SECRETS.remember(os.environ[name])
        return os.environ[name]

    return ENV_VAR.sub(value, text)


def redact_text(text: str) -> str:
    """`text` with URL passwords, secret query parameters and expanded values hidden."""
    if not text:
        return text
    out = _URL_PASSWORD.sub(_hide_password, text)
    out = _QUERY_SECRET.sub(lambda m: f"{m['head']}{HIDDEN}", out)
    for secret in sorted(_SECRETS.values, key=len, reverse=True):
        out = out.replace(secret, HIDDEN)
    return out


def _hide_password(match: re.Match[str]) -> str:
    """A `${NAME}` reference is where the secret comes from, not the secret: it stays."""
    password = match["password"]
    shown = password if ENV_VAR.fullmatch(password) else HIDDEN
    return f"{match['head']}{shown}@"


def redact(target: str) -> str:
    """A URL or path for printing and logging, with any password hidden."""
    return redact_text(target)


def redacted(value: Any) -> Any:
    """A copy of plain data (dicts, lists, strings) with every string redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redacted(v) for v in value)
    return value
