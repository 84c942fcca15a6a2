"""`gridhive demo` as a newcomer runs it: one command, plain words, nothing left behind.

The demo always uses a temporary SQLite database, so these run with the SQLite suite only.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gridhive.db.engine import is_sqlite, normalise_url

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not is_sqlite(normalise_url(os.environ.get("GRIDHIVE_TEST_DATABASE_URL", "sqlite://"))),
        reason="the demo runs on its own SQLite database: covered by the SQLite run",
    ),
]

DEMO = [sys.executable, "-m", "gridhive.cli.main", "demo"]
EVENT_PAGE = re.compile(
    r"The event's page: (http://127\.0\.0\.1:\d+)/dashboard/events/[0-9a-f-]{36}"
)


def demo_env(tmp_path: Path) -> dict[str, str]:
    # Temporary files go here, so the test can see that none are left.
    return {**os.environ, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}


def test_the_demo_tells_what_happened_and_cleans_up(tmp_path: Path) -> None:
    done = subprocess.run(
        [*DEMO, "--batteries", "20", "--lead", "65", "--duration", "10", "--port", "0"],
        env=demo_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "plan: 20 of 20 devices targeted get commands" in out
    assert "Pre-charge before action 1" in out
    # 20 homes, a pre-charge and a discharge each; one offline and one faulty by default.
    assert "40 of 40 commands acknowledged (36 OK, 4 failed)" in out
    assert "FAILED_OFFLINE device offline (simulated)" in out
    assert "FAILED_FAULT device fault (simulated)" in out
    assert re.search(r"requested 60\.0 kW, expected 60\.0 kW, delivered \d", out)
    page = EVENT_PAGE.search(out)
    assert page is not None, out
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{page.group(1)}/healthz")


def _ctrl_c_as_in_a_terminal() -> None:
    # A suite started in the background (`cmd &` without job control) ignores SIGINT, and so
    # would the demo it starts; a demo run from a terminal has Ctrl-C's default action.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_everything_and_removes_the_temporary_files(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        DEMO,
        env=demo_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )
    assert demo.stdout is not None
    lines = []
    for line in demo.stdout:  # ends when the demo does: the timeout below is a backstop
        lines.append(line)
        if "gridhive is up at" in line:
            break
    base_url = re.search(r"http://127\.0\.0\.1:\d+", lines[-1])
    assert base_url is not None, "".join(lines)
    assert httpx.get(f"{base_url.group(0)}/healthz").status_code == 200
    demo.send_signal(signal.SIGINT)
    rest, _ = demo.communicate(timeout=60)
    assert demo.returncode == 130, "".join(lines) + rest
    assert "temporary files removed" in rest
    assert list(tmp_path.iterdir()) == []
    deadline = time.monotonic() + 30
    while True:  # the server may take a moment to close its socket
        try:
            httpx.get(f"{base_url.group(0)}/healthz", timeout=1)
        except httpx.TransportError:
            break
        assert time.monotonic() < deadline, "the server is still up after Ctrl-C"
        time.sleep(0.2)
