"""Telemetry out: interval items posted to `POST /v1/telemetry/BATTERY` in batches of up to
1,000, several batches in flight, per-item answers counted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gridhive.simulator.client import ApiError, EndpointMissing, GridhiveClient

BATCH_SIZE = 1000
MAX_SAMPLES = 20


@dataclass
class TelemetryStats:
    items_sent: int = 0
    items_ok: int = 0
    items_failed: int = 0  # answered FAILED
    batches_failed: int = 0  # the request itself failed after retries
    unavailable: bool = False  # the server has no telemetry endpoint (404)
    failure_samples: list[str] = field(default_factory=list)

    def sample(self, text: str) -> None:
        if len(self.failure_samples) < MAX_SAMPLES:
            self.failure_samples.append(text)


class TelemetrySender:
    def __init__(
        self,
        client: GridhiveClient,
        *,
        warn: Callable[[str], None],
        concurrency: int = 8,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.client = client
        self.warn = warn
        self.batch_size = batch_size
        self.stats = TelemetryStats()
        # Bounded: when the server falls behind, the physics loop waits here instead of
        # piling up batches in memory (the summary line then shows the simulation lagging).
        self.queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue(maxsize=2 * concurrency)

    async def submit(self, items: list[dict[str, Any]]) -> None:
        if self.stats.unavailable:
            return
        for start in range(0, len(items), self.batch_size):
            await self.queue.put(items[start : start + self.batch_size])

    async def send(self, batch: list[dict[str, Any]]) -> None:
        if self.stats.unavailable:
            return
        try:
            answers = await self.client.post_telemetry(batch)
        except EndpointMissing:
            self.stats.unavailable = True
            self.warn(
                "telemetry: this gridhive has no POST /v1/telemetry/BATTERY (404); "
                "the simulation goes on without sending telemetry"
            )
            return
        except ApiError as exc:
            self.stats.batches_failed += 1
            self.stats.sample(str(exc))
            return
        self._count(batch, answers)

    def _count(self, batch: list[dict[str, Any]], answers: list[dict[str, Any]]) -> None:
        self.stats.items_sent += len(batch)
        for item, answer in zip(batch, answers, strict=False):
            if isinstance(answer, dict) and answer.get("status") == "OK":
                self.stats.items_ok += 1
            else:
                self.stats.items_failed += 1
                self.stats.sample(f"{item['device_id']} {item['start_time']}: {answer}")
        # An answer list shorter than the batch leaves the rest unanswered: count them failed.
        missing = len(batch) - len(answers)
        if missing > 0:
            self.stats.items_failed += missing

    async def worker(self) -> None:
        while True:
            batch = await self.queue.get()
            try:
                await self.send(batch)
            finally:
                self.queue.task_done()
