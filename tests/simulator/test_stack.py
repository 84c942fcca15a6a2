"""The process harness of `gridhive demo`, the end-to-end tests and the benchmark: readiness
with deadlines, clear errors when a process dies, and the plan read as acknowledgements."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gridhive.simulator.stack import StackError, spawn, wait_until
from gridhive.simulator.utility import Timeout, acks_from_plan, discharge_actions, poll


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


class TestProcesses:
    def test_a_process_that_dies_while_awaited_is_named_with_its_output(
        self, tmp_path: Path
    ) -> None:
        proc = spawn(
            "server",
            python("print('port in use'); raise SystemExit(3)"),
            env={},
            workdir=tmp_path,
        )
        with pytest.raises(StackError, match=r"server exited with 3:\nport in use"):
            wait_until(lambda: False, timeout_s=60, what="server", alive=proc.check_alive)

    def test_a_line_of_output_is_awaited_and_stop_ends_the_process(self, tmp_path: Path) -> None:
        code = "import time; print('simulating 5 batteries', flush=True); time.sleep(60)"
        proc = spawn("simulator", python(code), env={}, workdir=tmp_path)
        proc.wait_for_output("simulating ", timeout_s=60)
        assert proc.stop(timeout_s=10) != 0  # ended by the signal, not finished
        assert proc.popen.poll() is not None

    def test_readiness_has_a_deadline(self) -> None:
        with pytest.raises(StackError, match=r"not ready after 0\.2 s"):
            wait_until(lambda: False, timeout_s=0.2, what="gridhive", alive=lambda: None)


def plan_of(*rows: tuple[str, str, str]) -> dict[str, object]:
    return {
        "devices": [
            {
                "device_id": device,
                "commands": [
                    {"status": status, "device_status": device_status},
                ],
            }
            for device, status, device_status in rows
        ]
    }


class TestAcks:
    def test_the_plan_counts_answers_and_names_the_failed_devices(self) -> None:
        acks = acks_from_plan(
            plan_of(
                ("a", "OK", "OK"),
                ("b", "OK", "FAILED_OFFLINE"),
                ("c", "OPT_OUT", "PENDING"),
            )
        )
        assert (acks.commands, acks.answered) == (3, 2)
        assert acks.by_status == {"OK": 2, "OPT_OUT": 1}
        assert acks.failed_devices == {"b": "FAILED_OFFLINE"}

    def test_polling_gives_up_at_its_deadline_with_the_last_reading(self) -> None:
        with pytest.raises(Timeout, match="last: 7"):
            poll(lambda: 7, lambda value: value > 7, timeout_s=0.1, what="more than 7")


def test_a_discharge_starts_on_a_whole_second_in_the_future() -> None:
    [action] = discharge_actions(lead_s=15, duration_s=30, setpoint_w=3000)
    assert action["starts_at"].endswith("Z")
    assert "." not in action["starts_at"]
    assert (action["mode"], action["setpoint_w"], action["duration_s"]) == ("DISCHARGE", 3000, 30)
    [standby] = discharge_actions(lead_s=15, duration_s=30, setpoint_w=3000, mode="STANDBY")
    assert "setpoint_w" not in standby
