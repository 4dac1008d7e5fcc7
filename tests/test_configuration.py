"""Settings: a bad value stops the server at start with one line naming the
variable, and docs/configuration.md lists every setting with its default."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support import ROOT, DibsProcess

from dibs.settings import describe

DOCS = ROOT / "docs" / "configuration.md"


def shown_default(default: str) -> str:
    """Return a default as the table of docs/configuration.md writes it."""
    if default == "":
        return "*(empty)*"
    if default in ("True", "False"):
        return f"`{default.lower()}`"
    return f"`{default}`"


def table_rows() -> list[str]:
    """Return the rows of the settings table, as generated from ``describe()``."""
    rows = ["| Variable | Default | What it does |", "|---|---|---|"]
    for variable, default, doc in describe():
        cells = [f"`{variable}`", shown_default(default), doc.replace("|", "\\|")]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def test_the_docs_list_every_setting_with_its_default():
    text = DOCS.read_text()
    for variable, default, _ in describe():
        assert f"| `{variable}` | {shown_default(default)} |" in text, variable


def test_the_docs_list_no_setting_that_does_not_exist():
    known = {variable for variable, _, _ in describe()}
    section = DOCS.read_text().split("## Settings")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    listed = {row.split("`")[1] for row in rows}
    assert listed == known


BAD_VALUES = {
    "PORT": "70000",
    "DIBS_GRACE_SECONDS": "-1",
    "DIBS_LEGACY_SCOPE": "everything",
    "DIBS_ALLOW_QUERY_TOKEN": "maybe",
    "DIBS_ALLOWED_ORIGINS": "ops.example.com",
    "DIBS_LOG_FORMAT": "xml",
    "DIBS_SECRET": "too-short",
}


def start_and_fail(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``python wsgi.py`` with ``env``, expecting it to stop at start."""
    return subprocess.run(
        [sys.executable, "wsgi.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(("variable", "value"), BAD_VALUES.items(), ids=BAD_VALUES)
def test_a_bad_value_stops_the_server_with_one_line_naming_it(variable, value):
    env = {**os.environ, "PORT": "0", variable: value}
    result = start_and_fail(env)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"dibs: {variable}=")


def test_a_query_token_without_a_secret_stops_the_server():
    env = {**os.environ, "PORT": "0", "DIBS_ALLOW_QUERY_TOKEN": "true"}
    env.pop("DIBS_SECRET", None)
    result = start_and_fail(env)

    assert result.returncode == 1
    assert result.stderr.startswith("dibs: DIBS_ALLOW_QUERY_TOKEN is on")
    assert result.stderr.count("\n") == 1


def test_json_logs_are_one_object_per_line(tmp_path):
    server = DibsProcess({"DIBS_LOG_FORMAT": "json"}, log_path=tmp_path / "j.log")
    server.start()
    server.stop()

    entries = [json.loads(line) for line in server.log().splitlines()]
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert any(entry["message"].startswith("Dibs listening") for entry in entries)
    assert any(entry["level"] == "WARNING" for entry in entries)
