"""gridhive and its simulated device makers as real processes, for `gridhive demo`, the
end-to-end tests and the whole-path benchmark.

Each process is the `gridhive` command itself (`python -m gridhive.cli.main ...`), its output
in a log file of the run's directory. Readiness is polled with a deadline: `/readyz` for a
server, a line of output for the simulator. Tenants and the program are made as an operator
would: the admin key with the CLI, the rest through the Admin API.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

POLL_S = 0.1  # between two readiness checks
STOP_TIMEOUT_S = 30.0
ADMIN_TIMEOUT_S = 120.0
# The simulator prints this once its command channel is open and the batteries run.
SIMULATOR_READY = "simulating "

DEMO_PROGRAM: dict[str, Any] = {
    "name": "Evening Peak Demo",
    "description": "Discharge home batteries at the peak (gridhive demo)",
    "eligible_device_types": ["BATTERY"],
    "minimum_reserve_percentage": 20,
    "auto_approve": True,
    "earnings_for_site_upfront": 100,
    "earnings_for_site_yearly": 250,
    "terms_and_conditions_version": "2026-01-01",
    "terms_and_conditions_text": "Simulated homes accept simulated terms.",
    "state_codes": ["CA"],
}


class StackError(Exception):
    """A process did not start, answer or finish in time; the message says which and why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gridhive_argv(*args: str) -> list[str]:
    """The `gridhive` command in this interpreter (works without the script on PATH)."""
    return [sys.executable, "-m", "gridhive.cli.main", *args]


def wait_until(
    check: Callable[[], bool], *, timeout_s: float, what: str, alive: Callable[[], None]
) -> None:
    """Poll `check` until it holds; `alive` raises when the process it waits on died."""
    deadline = time.monotonic() + timeout_s
    while not check():
        alive()
        if time.monotonic() > deadline:
            raise StackError(f"{what}: not ready after {timeout_s:g} s")
        time.sleep(POLL_S)


@dataclass
class Proc:
    """One child process with its output in `log_path`."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise StackError(f"{self.name} exited with {code}:\n{self.tail()}")

    def wait_for_output(self, text: str, *, timeout_s: float) -> None:
        wait_until(
            lambda: text in self.output(),
            timeout_s=timeout_s,
            what=f"{self.name} (waiting for {text!r})\n{self.tail()}",
            alive=self.check_alive,
        )

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM (handled like Ctrl-C; a process started in the background may ignore
        SIGINT); killed if it does not finish in time."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def wait(self, timeout_s: float) -> int:
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"{self.name} still running after {timeout_s:g} s") from exc


def spawn(name: str, argv: Sequence[str], *, env: Mapping[str, str], workdir: Path) -> Proc:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(  # the log file stays open in the child
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=workdir,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us; we stop children
        )
    return Proc(name, popen, log_path)


@dataclass
class StackConfig:
    database_url: str
    workdir: Path
    separate_worker: bool = False  # `serve --no-workers` plus a `gridhive worker`
    mqtt_url: str | None = None
    port: int = 0  # 0: a free one
    env: dict[str, str] = field(default_factory=dict)
    worker_concurrency: int | None = None


@dataclass
class Tenants:
    utility_id: str
    utility_key: str
    oem_id: str
    oem_key: str
    program_id: str


class Stack:
    """gridhive's processes (server, optional worker), started and stopped together."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.port = config.port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.procs: list[Proc] = []
        self.server: Proc | None = None
        self.worker: Proc | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {
            "GRIDHIVE_DATABASE_URL": self.config.database_url,
            "GRIDHIVE_LOG_JSON": "false",
            "GRIDHIVE_LOG_LEVEL": "WARNING",
            **self.config.env,
        }
        if self.config.mqtt_url:
            env["GRIDHIVE_MQTT__URL"] = self.config.mqtt_url
        return env

    def run_cli(self, *args: str, timeout_s: float = ADMIN_TIMEOUT_S) -> Any:
        """A `gridhive ... --json` command against the stack's database; its JSON answer."""
        done = subprocess.run(
            gridhive_argv(*args, "--json"),
            env={**os.environ, **self.env},
            cwd=self.config.workdir,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise StackError(f"gridhive {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        return json.loads(done.stdout)

    def start(self, *, ready_timeout_s: float = 120.0) -> None:
        # Migrate once, before any process starts, so that none of them races another to it.
        self.run_cli("admin", "list-orgs")
        serve = ["serve", "--port", str(self.port)]
        if self.config.separate_worker:
            serve.append("--no-workers")
        env = self.env
        self.server = self._spawn("server", gridhive_argv(*serve), env)
        if self.config.separate_worker:
            worker = ["worker"]
            if self.config.worker_concurrency:
                worker += ["--concurrency", str(self.config.worker_concurrency)]
            self.worker = self._spawn("worker", gridhive_argv(*worker), env)
        wait_until(
            self._ready,
            timeout_s=ready_timeout_s,
            what=f"gridhive at {self.base_url}",
            alive=self.check_alive,
        )

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> Proc:
        proc = spawn(name, argv, env=env, workdir=self.config.workdir)
        self.procs.append(proc)
        return proc

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def check_alive(self) -> None:
        for proc in self.procs:
            proc.check_alive()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def pids(self) -> dict[str, int]:
        return {proc.name: proc.popen.pid for proc in self.procs}

    # Tenants ----------------------------------------------------------------------------------

    def admin(self) -> httpx.Client:
        """The Admin API with a fresh operator key (made with the CLI, as an operator would)."""
        admin_key = self.run_cli("admin", "create-admin-key", "--name", "stack")["key"]
        return httpx.Client(
            base_url=f"{self.base_url}/admin/v1",
            headers={"Authorization": f"Bearer {admin_key}"},
            timeout=30,
        )

    def create_tenants(self, program: Mapping[str, Any] | None = None) -> Tenants:
        """A utility, an OEM, their keys and a program, as the operator makes them."""
        with self.admin() as admin:
            utility_id, utility_key = create_org(admin, "utility", "Acme Power")
            oem_id, oem_key = create_org(admin, "oem", "Volt Batteries")
            body = {**(program or DEMO_PROGRAM), "utility_id": utility_id}
            created = _post(admin, "/programs", body)
        return Tenants(utility_id, utility_key, oem_id, oem_key, str(created["id"]))


def create_org(admin: httpx.Client, kind: str, name: str) -> tuple[str, str]:
    """A new organisation and an API key for it: (org id, key)."""
    org = _post(admin, "/orgs", {"kind": kind, "name": name})
    key = _post(admin, f"/orgs/{org['id']}/keys", {"name": name})
    return str(org["id"]), str(key["key"])


def _post(client: httpx.Client, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    if not response.is_success:
        raise StackError(f"POST {path}: {response.status_code} {response.text[:500]}")
    answer: dict[str, Any] = response.json()
    return answer


@dataclass
class FleetConfig:
    """What `gridhive simulate` is started with."""

    batteries: int = 20
    mode: str = "webhook"  # webhook | mqtt | polling
    speed: float = 60.0
    seed: int = 1
    faults: Mapping[str, float] = field(default_factory=dict)
    command_clock: str = "server"
    poll_interval_s: float = 1.0
    concurrency: int = 16
    telemetry: bool = True
    commission: bool = True
    enroll: bool = True  # in the program of the tenants
    prefix: str = "sim"
    extra: Sequence[str] = ()


def start_simulator(
    stack: Stack,
    tenants: Tenants,
    fleet: FleetConfig,
    *,
    name: str = "simulator",
    ready_timeout_s: float | None = 300.0,
) -> Proc:
    """`gridhive simulate` with the fleet enrolled in the program; returns once it runs
    (or at once with `ready_timeout_s=None`: then wait with `wait_for_output`)."""
    report = stack.config.workdir / f"{name}-report.json"
    args = [
        "simulate",
        "--url",
        stack.base_url,
        "--batteries",
        str(fleet.batteries),
        "--seed",
        str(fleet.seed),
        "--prefix",
        fleet.prefix,
        "--speed",
        str(fleet.speed),
        "--mode",
        fleet.mode,
        "--port",
        "0",
        "--command-clock",
        fleet.command_clock,
        "--poll-interval",
        str(fleet.poll_interval_s),
        "--poll-overlap",
        "5",
        "--concurrency",
        str(fleet.concurrency),
        "--summary-every",
        "2",
        "--report",
        str(report),
    ]
    if fleet.enroll:
        args += ["--program-id", tenants.program_id]
    for kind, share in fleet.faults.items():
        args += ["--fault", f"{kind}={share}"]
    if fleet.mode == "mqtt":
        args += ["--mqtt-url", stack.config.mqtt_url or ""]
    if not fleet.telemetry:
        args.append("--no-telemetry")
    if not fleet.commission:
        args.append("--no-commission")
    args += list(fleet.extra)
    env = {"GRIDHIVE_OEM_KEY": tenants.oem_key, "PYTHONUNBUFFERED": "1"}
    proc = spawn(name, gridhive_argv(*args), env=env, workdir=stack.config.workdir)
    stack.procs.append(proc)
    if ready_timeout_s is not None:
        proc.wait_for_output(SIMULATOR_READY, timeout_s=ready_timeout_s)
    return proc


def read_report(stack: Stack, name: str = "simulator") -> dict[str, Any]:
    report: dict[str, Any] = json.loads((stack.config.workdir / f"{name}-report.json").read_text())
    return report


@contextlib.contextmanager
def running(config: StackConfig) -> Iterator[Stack]:
    """A started stack, stopped (every process, simulators included) on the way out."""
    stack = Stack(config)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
