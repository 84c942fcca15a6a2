"""`gridhive simulate`: option parsing and the physics benchmark (no server needed)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from gridhive.cli.main import app
from gridhive.cli.simulate import parse_duration, parse_form


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("45m", 2700), ("6h", 21600), ("2d", 172800), ("1.5h", 5400)],
)
def test_durations_take_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_bad_duration_is_refused() -> None:
    with pytest.raises(typer.BadParameter):
        parse_duration("soon")


def test_form_answers_are_name_value_pairs() -> None:
    assert parse_form(["account_id=ACCT-{index}", "ok=a=b"]) == {
        "account_id": "ACCT-{index}",
        "ok": "a=b",
    }
    with pytest.raises(typer.BadParameter):
        parse_form(["no-equals-sign"])


def test_bench_physics_reports_the_speed_without_a_server() -> None:
    result = CliRunner().invoke(
        app, ["simulate", "--bench-physics", "--batteries", "100", "--duration", "2h"]
    )
    assert result.exit_code == 0, result.output
    measured = json.loads(result.output)
    assert (measured["batteries"], measured["steps"]) == (100, 120)
    assert measured["speedup"] > 60


def test_a_key_is_required_and_bad_faults_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRIDHIVE_OEM_KEY", raising=False)
    runner = CliRunner()
    assert runner.invoke(app, ["simulate"]).exit_code != 0
    result = runner.invoke(app, ["simulate", "--key", "k", "--fault", "gremlins=0.1"])
    assert result.exit_code != 0
    assert "gremlins" in result.output
