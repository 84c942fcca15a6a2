"""Orchestration: provision the fleet, open the command channel, then run the physics, the
acks, the telemetry and the summary side by side until the duration is reached or Ctrl-C.

Everything runs on one asyncio loop. The physics steps one simulated minute at a time and
yields between steps, so deliveries and acks interleave with it.
"""

from __future__ import annotations

import asyncio
import math
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from gridhive.simulator.client import ApiError, EndpointMissing, GridhiveClient
from gridhive.simulator.faults import DeliveryFaults, assign_device_faults
from gridhive.simulator.fleet import Fleet, ScheduledCommand, Setting, make_specs
from gridhive.simulator.inbox import CommandInbox
from gridhive.simulator.provision import (
    ProvisionError,
    ProvisionResult,
    commission_fleet,
    enroll_fleet,
)
from gridhive.simulator.receiver import WEBHOOK_PATH, WebhookReceiver
from gridhive.simulator.report import Snapshot, build_report, summary_line, write_report
from gridhive.simulator.sources import MqttSubscriber, Poller, SourceError, WebhookServer
from gridhive.simulator.telemetry import TelemetrySender

STEP_S = 60.0  # physics resolution: one simulated minute
TELEMETRY_S = 300  # one telemetry interval: five simulated minutes
STEPS_PER_INTERVAL = int(TELEMETRY_S // STEP_S)
FLUSH_TIMEOUT_S = 15.0


class SimulatorError(Exception):
    """Set-up failed in a way the user can fix; the message says how."""


@dataclass(frozen=True)
class SimConfig:
    api_key: str
    base_url: str = "http://127.0.0.1:8000"
    batteries: int = 100
    seed: int = 1
    prefix: str = "sim"
    speed: float = 60.0  # simulated seconds per real second
    duration_s: float | None = None  # simulated; None: until Ctrl-C
    mode: str = "polling"  # webhook | polling | mqtt
    host: str = "127.0.0.1"
    port: int = 8765
    public_url: str | None = None  # the receiver's URL as gridhive should call it
    poll_interval_s: float = 60.0  # real seconds
    poll_overlap_s: float = 60.0  # > the server's longest transaction (a large dispatch)
    mqtt_url: str | None = None
    org_id: str | None = None
    program_id: str | None = None
    form: Mapping[str, str] = field(default_factory=dict)
    concurrency: int = 16
    faults: Mapping[str, float] = field(default_factory=dict)
    late_ack_s: float = 600.0  # simulated delay of a late-ack device's answer
    report_path: str | None = None
    state_code: str = "CA"
    zip_code: str = "94110"
    timezone: str = "America/Los_Angeles"
    set_delivery_mode: bool = True
    commission: bool = True
    keep_endpoint: bool = False
    summary_every_s: float = 5.0
    telemetry: bool = True
    # How telemetry intervals are stamped. "sim": on the simulated clock (exact, but a server
    # on real time refuses points more than 5 minutes ahead, so only for --speed 1). "real":
    # on the wall clock, each interval compressed to 300/speed seconds with its energy scaled
    # alike (powers unchanged), so any server accepts them. "auto": sim at speed <= 1.
    telemetry_clock: str = "auto"
    # How command windows are read. "sim": on the simulated clock, so an event an hour ahead
    # comes after a minute at 60x. "server": on the server's (wall) clock, each window
    # stretched by --speed onto the simulated clock, so the batteries act exactly while the
    # server's event runs and, with telemetry on the wall clock, the server measures them.
    command_clock: str = "sim"

    @property
    def telemetry_on_sim_clock(self) -> bool:
        if self.telemetry_clock == "auto":
            return self.speed <= 1 and self.command_clock == "sim"
        return self.telemetry_clock == "sim"

    def public(self) -> dict[str, Any]:
        """The settings for the report, without the key."""
        data = asdict(self)
        data.pop("api_key")
        return data


class SimClock:
    """Simulated time: starts at real now and runs `speed` times faster."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.start_s = time.time()
        self._t0 = time.monotonic()

    def now_s(self) -> float:
        return self.start_s + (time.monotonic() - self._t0) * self.speed

    def from_wall(self, wall_s: float) -> float:
        """The simulated moment that a wall-clock moment maps to (infinities stay put)."""
        return self.start_s + (wall_s - self.start_s) * self.speed


class Simulation:
    def __init__(
        self,
        config: SimConfig,
        *,
        echo: Callable[[str], None],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.echo = echo
        specs = make_specs(config.batteries, seed=config.seed, prefix=config.prefix)
        ids = [s.device_id for s in specs]
        self.faults = assign_device_faults(ids, config.faults, seed=config.seed)
        self.fleet = Fleet(
            specs,
            online=[self.faults.get(d) != "offline" for d in ids],
            obeys=[self.faults.get(d) not in ("offline", "fault") for d in ids],
            seed=config.seed,
            timezone=config.timezone,
        )
        self.client = GridhiveClient(
            config.base_url,
            config.api_key,
            transport=transport,
            max_connections=2 * config.concurrency + 4,
        )
        self.clock = SimClock(config.speed)
        self.inbox = self._new_inbox()
        self._settings_tasks: set[asyncio.Task[None]] = set()
        self.telemetry = TelemetrySender(
            self.client, warn=echo, concurrency=max(1, config.concurrency // 2)
        )
        self.provisioning: dict[str, Any] = {}
        self.receiver: WebhookReceiver | None = None
        self.server: WebhookServer | None = None
        self.poller: Poller | None = None
        self.mqtt: MqttSubscriber | None = None
        self.endpoint_id: str | None = None
        self.sim_reached_s = self.clock.start_s
        self.stop = asyncio.Event()
        self.started_at = datetime.now(UTC)
        self._loops: list[asyncio.Task[Any]] = []  # stopped first
        self._poll_task: asyncio.Task[None] | None = None  # ends by itself once `stop` is set
        self._workers: list[asyncio.Task[Any]] = []  # ack and telemetry senders: flushed first

    def _new_inbox(self) -> CommandInbox:
        late_real_s = self.config.late_ack_s / self.config.speed
        on_server_clock = self.config.command_clock == "server"
        return CommandInbox(
            self.fleet,
            self.faults,
            start_s=self.clock.start_s,
            late_ack_real_s=late_real_s,
            window_to_sim=self.clock.from_wall if on_server_clock else None,
        )

    # The run ----------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        try:
            await self.provision()
            # The simulated clock starts now, not before commissioning thousands of homes.
            self.clock = SimClock(self.config.speed)
            self.sim_reached_s = self.clock.start_s
            self.inbox = self._new_inbox()
            await self.open_channel()
            self._start_tasks()
            self._catch_signals()
            self.echo(f"simulating {len(self.fleet):,} batteries at {self.config.speed:g}x")
            await self.stop.wait()
        finally:
            await self.shutdown()
        report = self.report()
        if self.config.report_path:
            write_report(self.config.report_path, report)
            self.echo(f"report written to {self.config.report_path}")
        return report

    async def provision(self) -> None:
        cfg, specs = self.config, self.fleet.specs
        try:
            if cfg.commission:
                result = await commission_fleet(
                    self.client,
                    specs,
                    state_code=cfg.state_code,
                    zip_code=cfg.zip_code,
                    concurrency=cfg.concurrency,
                    progress=self.echo,
                )
                self._note("commission", result)
            if cfg.program_id:
                result = await enroll_fleet(
                    self.client,
                    specs,
                    program_id=cfg.program_id,
                    form=cfg.form,
                    concurrency=cfg.concurrency,
                    progress=self.echo,
                )
                self._note("enrollment", result)
        except (ApiError, ProvisionError) as exc:
            raise SimulatorError(str(exc)) from exc

    def _note(self, what: str, result: ProvisionResult) -> None:
        counts = {k: v for k, v in asdict(result).items() if k != "errors" and v}
        self.provisioning[what] = {**counts, "errors": result.errors}
        self.echo(
            f"{what}: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in counts.items())
        )
        for error in result.errors[:5]:
            self.echo(f"  {error}")

    # Channels ---------------------------------------------------------------------------------

    def on_envelope(self, envelope: dict[str, Any], message_id: str) -> None:
        event_object = envelope.get("event_object")
        if not isinstance(event_object, dict):
            return
        event_type = str(envelope.get("event_type", ""))
        if event_object.get("object_type") == "command" or event_type.startswith("command."):
            self.inbox.receive(event_object, via=self.config.mode)
        elif event_type == "settings.apply":
            task = asyncio.create_task(self.apply_settings(event_object))
            self._settings_tasks.add(task)
            task.add_done_callback(self._settings_tasks.discard)

    async def apply_settings(self, request: Mapping[str, Any]) -> None:
        """Set the battery's reserve as the homeowner asked, then report the outcome."""
        request_id, device_id = str(request.get("id")), str(request.get("device_id"))
        reserve = request.get("backup_reserve_percentage")
        failure = self.fleet.apply_settings(
            device_id, float(reserve) if isinstance(reserve, int | float) else None
        )
        try:
            await self.client.report_settings(
                request_id, "FAILED" if failure else "APPLIED", failure
            )
        except ApiError as exc:
            self.echo(f"settings {request_id}: could not report the outcome: {exc}")

    async def open_channel(self) -> None:
        opener: Mapping[str, Callable[[], Awaitable[None]]] = {
            "webhook": self._open_webhook,
            "polling": self._open_polling,
            "mqtt": self._open_mqtt,
        }
        if self.config.mode not in opener:
            raise SimulatorError(f"unknown mode {self.config.mode!r}: webhook, polling or mqtt")
        try:
            await opener[self.config.mode]()
        except SourceError as exc:
            raise SimulatorError(str(exc)) from exc

    async def _set_delivery_mode(self, mode: str) -> None:
        if not self.config.set_delivery_mode:
            return
        try:
            await self.client.set_delivery_mode(mode)
        except EndpointMissing:
            self.echo("note: this gridhive has no /v1/delivery-settings; delivery mode unchanged")
            return
        except ApiError as exc:
            raise SimulatorError(f"cannot switch delivery to {mode}: {exc}") from exc
        self.echo(f"delivery mode set to {mode}")

    async def _open_webhook(self) -> None:
        shares = self.config.faults
        self.receiver = WebhookReceiver(
            self.on_envelope, faults=DeliveryFaults(shares, self.config.seed)
        )
        self.server = WebhookServer(self.receiver.app, self.config.host, self.config.port)
        port = await self.server.start()
        url = self.config.public_url or f"http://{self.config.host}:{port}{WEBHOOK_PATH}"
        await self._register_endpoint(url)
        await self._set_delivery_mode("webhook")
        self.echo(f"receiving webhooks on {url}")

    async def _register_endpoint(self, url: str) -> None:
        assert self.receiver is not None
        try:
            for old in await self.client.webhook_endpoints():
                if old.get("url") == url:  # left behind by an earlier run that was killed
                    await self.client.delete_webhook_endpoint(str(old["id"]))
            endpoint = await self.client.create_webhook_endpoint(url)
        except EndpointMissing as exc:
            raise SimulatorError(
                "this gridhive has no POST /v1/webhook-endpoints (404), so webhooks cannot be "
                "registered; use --mode polling (or mqtt)"
            ) from exc
        except ApiError as exc:
            raise SimulatorError(
                f"registering the webhook endpoint {url} failed: {exc}. A server that refuses "
                "private addresses needs --public-url (or GRIDHIVE_WEBHOOK_ALLOW_PRIVATE=true)"
            ) from exc
        self.endpoint_id = str(endpoint["id"])
        self.receiver.set_secret(endpoint["secret"])

    async def _open_polling(self) -> None:
        await self._set_delivery_mode("polling")
        self.poller = Poller(self.client, self.inbox, overlap_s=self.config.poll_overlap_s)

    async def _open_mqtt(self) -> None:
        if not self.config.mqtt_url:
            raise SimulatorError("--mode mqtt needs --mqtt-url mqtt://host:port")
        topic = await self._mqtt_topic()
        self.mqtt = MqttSubscriber(self.config.mqtt_url, topic, self.on_envelope)
        self._loops.append(asyncio.create_task(self.mqtt.run(self.echo)))
        try:
            await asyncio.wait_for(self.mqtt.subscribed.wait(), timeout=15)
        except TimeoutError as exc:
            raise SimulatorError(f"could not subscribe at {self.config.mqtt_url}") from exc
        await self._set_delivery_mode("mqtt")
        self.echo(f"subscribed to {topic}")

    async def _mqtt_topic(self) -> str:
        if self.config.org_id:
            return f"gridhive/{self.config.org_id}/command/#"
        try:
            prefix = (await self.client.delivery_settings())["mqtt_topic_prefix"]
        except (ApiError, KeyError) as exc:
            raise SimulatorError("cannot learn the MQTT topic; pass --org-id") from exc
        return f"{prefix}command/#"

    # Loops ------------------------------------------------------------------------------------

    def _start_tasks(self) -> None:
        loop, work = self._loops.append, self._workers.append
        loop(asyncio.create_task(self._physics()))
        loop(asyncio.create_task(self._summaries()))
        if self.poller is not None:
            run_poller = self.poller.run(self.config.poll_interval_s, self.echo, self.stop)
            self._poll_task = asyncio.create_task(run_poller)
        for _ in range(self.config.concurrency):
            work(asyncio.create_task(self.inbox.worker(self.client)))
        for _ in range(max(1, self.config.concurrency // 2)):
            work(asyncio.create_task(self.telemetry.worker()))

    async def _physics(self) -> None:
        clock, fleet = self.clock, self.fleet
        end_s = clock.start_s + (self.config.duration_s or math.inf)
        t, steps = clock.start_s, 0
        while True:
            target = min(clock.now_s(), end_s)
            while t + STEP_S <= target:
                fleet.step(t, STEP_S)
                t += STEP_S
                steps += 1
                self.sim_reached_s = t
                if steps % STEPS_PER_INTERVAL == 0 and self.config.telemetry:
                    await self.telemetry.submit(self._telemetry_items(t - TELEMETRY_S))
                await asyncio.sleep(0)  # let deliveries and acks through between steps
            if t + STEP_S > end_s:
                self.stop.set()
                return
            await asyncio.sleep(min(1.0, max(0.005, (t + STEP_S - clock.now_s()) / clock.speed)))

    def _telemetry_items(self, sim_start_s: float) -> list[dict[str, Any]]:
        if self.config.telemetry_on_sim_clock:
            return self.fleet.telemetry(sim_start_s, TELEMETRY_S)
        speed, start_s = self.clock.speed, self.clock.start_s
        wall_start_s = start_s + (sim_start_s - start_s) / speed
        duration_s = round(TELEMETRY_S / speed, 3)
        return self.fleet.telemetry(wall_start_s, duration_s, energy_scale=1 / speed)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            sim_now_s=self.sim_reached_s,
            lag_s=max(0.0, self.clock.now_s() - self.sim_reached_s),
            fleet=self.fleet,
            inbox=self.inbox,
            telemetry=self.telemetry.stats,
            webhooks=self.receiver.stats if self.receiver is not None else None,
        )

    async def _summaries(self) -> None:
        while True:
            await asyncio.sleep(self.config.summary_every_s)
            self.echo(summary_line(self.snapshot()))

    def _catch_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
                return

    # The end ----------------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop the loops, send what is queued (briefly), unregister, close."""
        self._release_signals()
        self.stop.set()
        await _cancel(self._loops)
        if self._poll_task is not None:
            try:
                await asyncio.wait_for(self._poll_task, timeout=FLUSH_TIMEOUT_S)
            except TimeoutError:
                self.echo("stopping in the middle of a poll")
        if self._workers:
            await self._flush()
        await _cancel(self._workers)
        if self.server is not None:
            await self.server.stop()
        await self._unregister()
        await self.client.aclose()

    async def _flush(self) -> None:
        try:
            async with asyncio.timeout(FLUSH_TIMEOUT_S):
                await self.inbox.queue.join()
                await self.telemetry.queue.join()
        except TimeoutError:
            self.echo("stopping with acks or telemetry still queued")

    async def _unregister(self) -> None:
        if self.endpoint_id is None or self.config.keep_endpoint:
            return
        try:
            await self.client.delete_webhook_endpoint(self.endpoint_id)
        except ApiError as exc:
            self.echo(f"could not remove webhook endpoint {self.endpoint_id}: {exc}")

    def _release_signals(self) -> None:
        try:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        except (NotImplementedError, RuntimeError):
            pass

    def report(self) -> dict[str, Any]:
        channel: dict[str, Any] = {"mode": self.config.mode}
        if self.poller is not None:
            poller = self.poller
            channel.update(
                polls=poller.polls,
                poll_errors=poller.errors,
                rows_read=poller.rows_read,
                walk_s=round(poller.walk_s, 2),
            )
        if self.mqtt is not None:
            channel.update(asdict(self.mqtt.stats))
        return build_report(
            self.snapshot(),
            started_at=self.started_at,
            sim_start_s=self.clock.start_s,
            settings=self.config.public(),
            provisioning=self.provisioning,
            faults=self.faults,
            channel=channel,
        )


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    tasks.clear()


async def run(
    config: SimConfig,
    *,
    echo: Callable[[str], None],
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, Any]:
    """Run a simulation to its end (duration or Ctrl-C) and return the report."""
    return await Simulation(config, echo=echo, transport=transport).run()


def measure_physics(
    batteries: int, *, seed: int = 1, sim_seconds: float = 86400
) -> dict[str, float]:
    """Time the physics alone (steps and telemetry items, no I/O) for a fleet, half of it
    under a one-hour discharge command, as `gridhive simulate --bench-physics` reports it."""
    fleet = Fleet(make_specs(batteries, seed=seed), seed=seed)
    start = time.time()
    discharge = Setting("DISCHARGE", "SETPOINT", 4000, 20, False)
    for spec in fleet.specs[::2]:
        command = ScheduledCommand(f"bench-{spec.device_id}", start + 3600, start + 7200, discharge)
        fleet.schedule(spec.device_id, command)
    steps = int(sim_seconds // STEP_S)
    began = time.perf_counter()
    for n in range(1, steps + 1):
        fleet.step(start + (n - 1) * STEP_S, STEP_S)
        if n % STEPS_PER_INTERVAL == 0:
            fleet.telemetry(start + n * STEP_S - TELEMETRY_S, TELEMETRY_S)
    elapsed = time.perf_counter() - began
    return {
        "batteries": batteries,
        "steps": steps,
        "seconds": round(elapsed, 3),
        "ms_per_step": round(1000 * elapsed / max(steps, 1), 2),
        "speedup": round(steps * STEP_S / elapsed, 1) if elapsed else math.inf,
    }
