"""The scheduling docs call commands and options the CLI really has."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from leadscore.pipeline.cli import cli

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _calls() -> list[tuple[str, list[str]]]:
    text = (DOCS / "scheduling.md").read_text()
    dag = (DOCS / "airflow_dag.py").read_text()
    ast.parse(dag)  # the DAG is valid Python
    calls = []
    for line in text.splitlines() + dag.splitlines():
        for part in re.split(r"leadscore |\{CLI\} ", line)[1:]:
            command = re.match(r"\w[\w-]*", part)
            if command is not None:
                calls.append((command.group(), re.findall(r"--[\w-]+", part)))
    return calls


def test_the_docs_name_commands_and_options_the_cli_has():
    calls = _calls()
    assert {c for c, _ in calls} >= {"score", "retrain", "monitor", "promote", "rollback"}
    runner = CliRunner()
    for command, options in calls:
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0, f"leadscore {command} is not a command"
        for option in options:
            assert option in result.output, f"leadscore {command} has no {option}"


@pytest.mark.parametrize("code", ["1", "2", "3", "4", "5"])
def test_every_failure_exit_code_says_what_it_asks_of_a_person(code):
    text = (DOCS / "scheduling.md").read_text()
    assert f"- **{code}**" in text


def test_the_configuration_reference_is_generated_from_the_current_config():
    from leadscore.pipeline.config_reference import reference

    written = (DOCS / "configuration.md").read_text()
    assert written == reference(), "docs/configuration.md is stale: run `make docs`"


def test_every_config_key_has_a_description():
    from leadscore.pipeline.config import Config, _model_in

    missing = []

    def walk(model, prefix=""):
        for name, field in model.model_fields.items():
            section = _model_in(field.annotation)
            if section is not None and section is not model:
                walk(section, f"{prefix}{name}.")
            elif not field.description:
                missing.append(f"{prefix}{name}")

    walk(Config)
    assert missing == []
