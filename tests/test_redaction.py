"""Secrets never leave the process: URL passwords and expanded ${ENV} values are hidden in every
text leadscore prints, logs or writes."""

import pytest

from leadscore.pipeline.config import config_as_dict, load_config
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.writeback import resolve_target
from leadscore.pipeline.redaction import MissingVariable, expand_env, redact_text, redacted


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("postgresql+psycopg://scorer:s3cr3t-pw@db:5432/crm", "s3cr3t-pw"),
        ("error at mysql://u:hunter2@h/db: refused", "hunter2"),
        ("mssql+pyodbc://u:p%40ss%3Aw0rd@dsn", "p%40ss%3Aw0rd"),
        ("postgresql://db/crm?user=u&password=tok3n-value&sslmode=require", "tok3n-value"),
        ("https://api.example.com/x?api_key=abcd1234", "abcd1234"),
    ],
)
def test_url_passwords_are_hidden_wherever_they_appear(text, secret):
    shown = redact_text(text)
    assert secret not in shown
    assert "***" in shown


def test_urls_without_passwords_are_left_alone():
    for text in ("postgresql://db:5432/crm", "sqlite:////tmp/scores.db", "scores.parquet"):
        assert redact_text(text) == text


def test_expanded_values_are_remembered_and_hidden(monkeypatch):
    monkeypatch.setenv("LS_TEST_SECRET", "value-from-the-env-7781")
    url = expand_env("postgresql://u:${LS_TEST_SECRET}@db/crm")
    assert "value-from-the-env-7781" in url
    # anywhere it shows up later, even outside a URL (a driver's message, say)
    assert "value-from-the-env-7781" not in redact_text("auth failed: value-from-the-env-7781")
    with pytest.raises(MissingVariable):
        expand_env("${LS_TEST_NOT_SET_ANYWHERE}")


def test_output_target_expands_env_and_names_a_missing_variable(monkeypatch):
    monkeypatch.setenv("LS_TEST_PG_PASSWORD", "pw-for-output-5521")
    resolved = resolve_target("postgresql+psycopg://u:${LS_TEST_PG_PASSWORD}@db/crm")
    assert resolved == "postgresql+psycopg://u:pw-for-output-5521@db/crm"
    monkeypatch.delenv("LS_TEST_PG_PASSWORD")
    with pytest.raises(InputError, match=r"needs \$\{LS_TEST_PG_PASSWORD\}"):
        resolve_target("postgresql+psycopg://u:${LS_TEST_PG_PASSWORD}@db/crm")


def test_config_as_logged_hides_literal_passwords_and_keeps_env_references():
    config = load_config(
        None,
        (
            "scoring.output=postgresql://u:literal-pw-991@db/crm",
            "data.leads={url: 'postgresql://u:${PG_PW}@db/crm', table: leads}",
        ),
    )
    text = str(config_as_dict(config))
    assert "literal-pw-991" not in text
    assert "${PG_PW}" in text  # a reference, not a secret: it tells the reader where it comes from


def test_redacted_walks_plain_data():
    data = {"a": ["x", "postgresql://u:pw-1234@h/d"], "b": ("mysql://u:pw-5678@h/d", 3)}
    shown = str(redacted(data))
    assert "pw-1234" not in shown and "pw-5678" not in shown and "3" in shown


def test_a_config_error_never_echoes_a_password():
    with pytest.raises(InputError) as error:
        load_config(None, ("data.leads={url: 'postgresql://u:echoed-pw-3131@db/crm'}",))
    assert "echoed-pw-3131" not in str(error.value)
    assert "table or query" in str(error.value)
