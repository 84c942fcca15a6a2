"""The operator's CLI, run as a real process: each command prints JSON the next one can use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cli


def gridhive(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GRIDHIVE_DATABASE_URL": db}
    return subprocess.run(
        [sys.executable, "-m", "gridhive.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def run_json(*args: str, db: str) -> object:
    result = gridhive(*args, "--json", db=db)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_operator_sets_up_tenants_and_a_program(tmp_path: Path, db: str) -> None:
    utility = run_json("admin", "create-org", "--kind", "utility", "--name", "Acme Power", db=db)
    assert isinstance(utility, dict)
    assert utility["kind"] == "utility"
    key = run_json("admin", "create-key", "--org", utility["id"], db=db)
    assert isinstance(key, dict)
    assert key["key"].startswith("ghk_")
    program_file = tmp_path / "program.json"
    program_file.write_text(
        json.dumps(
            {
                "name": "Summer Peak",
                "description": "Discharge at peak",
                "participation_months": [6, 7, 8],
                "minimum_reserve_percentage": 25,
                "state_codes": ["ca"],
                "dispatch_rules": {"max_event_duration_s": 14400},
            }
        )
    )
    program = run_json(
        "admin", "create-program", "--utility", utility["id"], "--file", str(program_file), db=db
    )
    assert isinstance(program, dict)
    assert program["participation_months"] == [6, 7, 8]
    assert program["state_codes"] == ["CA"]
    assert program["dispatch_rules"]["max_event_duration_s"] == 14400
    assert program["dispatch_rules"]["allow_grid_charging"] is True
    orgs = run_json("admin", "list-orgs", db=db)
    assert [o["id"] for o in orgs] == [utility["id"]]  # type: ignore[union-attr,index]
    revoked = run_json("admin", "revoke-key", key["id"], db=db)
    assert isinstance(revoked, dict)
    assert revoked["revoked_at"] is not None


def test_invalid_program_file_names_the_field(tmp_path: Path, db: str) -> None:
    utility = run_json("admin", "create-org", "--kind", "utility", "--name", "Acme", db=db)
    assert isinstance(utility, dict)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "X", "minimum_reserve_percentage": 150}))
    result = gridhive(
        "admin", "create-program", "--utility", utility["id"], "--file", str(bad), db=db
    )
    assert result.returncode == 1
    assert "minimum_reserve_percentage" in result.stderr


def test_program_for_an_oem_is_refused(tmp_path: Path, db: str) -> None:
    oem = run_json("admin", "create-org", "--kind", "oem", "--name", "Volt", db=db)
    assert isinstance(oem, dict)
    file = tmp_path / "p.json"
    file.write_text(json.dumps({"name": "X"}))
    result = gridhive("admin", "create-program", "--utility", oem["id"], "--file", str(file), db=db)
    assert result.returncode == 1
    assert "No utility" in result.stderr
