"""Bringing the fleet in: commission every home (`POST /v1/commission`) and, when asked,
enroll it in a program (`POST /v1/site/{id}/enrollments`), as an OEM's backend would.

Every POST carries an `Idempotency-Key` derived from its body, so running the simulator again
with the same seed replays the stored answers instead of creating anything twice (and a
changed body gets a new key rather than a 409 for reusing one).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gridhive.simulator.client import ApiError, GridhiveClient
from gridhive.simulator.fleet import BatterySpec

T = TypeVar("T")
MAX_ERRORS = 20
PROGRESS_EVERY = 1000


class ProvisionError(Exception):
    pass


@dataclass
class ProvisionResult:
    commissioned: int = 0
    commission_failed: int = 0
    enrolled: int = 0
    already_enrolled: int = 0
    enroll_failed: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(text)


def idempotency_key(kind: str, subject: str, body: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    return f"gridhive-sim:{kind}:{subject}:{digest}"


def commission_body(spec: BatterySpec, *, state_code: str, zip_code: str) -> dict[str, Any]:
    return {
        "site": {"id": spec.site_id, "state_code": state_code, "zip_code": zip_code},
        "devices": [
            {
                "id": spec.device_id,
                "manufacturer_name": "gridhive simulator",
                "product_name": f"SimCell {spec.capacity_wh / 1000:g}",
                "serial_number": f"SIM-{spec.device_id}",
                "type": "BATTERY",
                "install_date": "2025-01-01T00:00:00Z",
                "attributes": {
                    "battery_capacity_wh": spec.capacity_wh,
                    "battery_power_input_w": spec.power_w,
                    "battery_power_output_w": spec.power_w,
                },
                "configuration": {"reserve_percentage": spec.reserve_pct},
            }
        ],
    }


async def bounded(concurrency: int, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the jobs with at most `concurrency` in flight, results in order."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def commission_fleet(
    client: GridhiveClient,
    specs: Sequence[BatterySpec],
    *,
    state_code: str,
    zip_code: str,
    concurrency: int,
    progress: Callable[[str], None],
) -> ProvisionResult:
    """Commission every home; the first alone, so a bad key or URL fails at once and clearly."""
    result = ProvisionResult()
    done = 0

    async def one(spec: BatterySpec) -> None:
        nonlocal done
        body = commission_body(spec, state_code=state_code, zip_code=zip_code)
        try:
            await client.commission(body, idempotency_key=idempotency_key("c", spec.site_id, body))
            result.commissioned += 1
        except ApiError as exc:
            result.commission_failed += 1
            result.error(f"commission {spec.site_id}: {exc}")
        done += 1
        if done % PROGRESS_EVERY == 0:
            progress(f"commissioned {done:,} of {len(specs):,} homes")

    if specs:
        await one(specs[0])
        if result.commission_failed:
            raise ProvisionError(result.errors[0])
        await bounded(concurrency, [functools.partial(one, s) for s in specs[1:]])
    return result


def _answers(spec: BatterySpec, index: int, form: Mapping[str, str]) -> list[dict[str, str]]:
    # `{index}`, `{site_id}` and `{device_id}` in an answer make it differ per home.
    def fill(value: str) -> str:
        return (
            value.replace("{index}", str(index))
            .replace("{site_id}", spec.site_id)
            .replace("{device_id}", spec.device_id)
        )

    return [{"name": name, "value": fill(value)} for name, value in form.items()]


def enrollment_body(
    spec: BatterySpec, index: int, program: Mapping[str, Any], form: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "device_ids": [spec.device_id],
        "program_id": program["id"],
        "enroll_method": "USER_ACTION",
        "has_agreed_to_terms_and_conditions": True,
        "terms_and_conditions_version": program.get("terms_and_conditions_version"),
        "program_specific_attributes": _answers(spec, index, form),
    }


async def offered_program(
    client: GridhiveClient, site_id: str, program_id: str, form: Mapping[str, str]
) -> dict[str, Any]:
    """The program as offered to the site (with its current T&C version); checks the form."""
    programs = await client.site_programs(site_id, "BATTERY")
    program = next((p for p in programs if str(p.get("id")) == program_id), None)
    if program is None:
        offered = ", ".join(f"{p.get('id')} ({p.get('name')})" for p in programs) or "none"
        raise ProvisionError(
            f"program {program_id} is not offered to {site_id}; offered: {offered}. "
            "Check --state-code / --zip-code against the program's territory."
        )
    missing = [
        f["name"]
        for f in program.get("enrollment_form") or []
        if f.get("required", True) and f.get("name") not in form
    ]
    if missing:
        raise ProvisionError(
            f"program {program_id} asks for {', '.join(missing)}: pass "
            + " ".join(f"--form {name}=..." for name in missing)
        )
    return program


async def enroll_fleet(
    client: GridhiveClient,
    specs: Sequence[BatterySpec],
    *,
    program_id: str,
    form: Mapping[str, str],
    concurrency: int,
    progress: Callable[[str], None],
) -> ProvisionResult:
    """Enroll every home; a 409 (already enrolled, e.g. by an earlier run) counts as done."""
    result = ProvisionResult()
    if not specs:
        return result
    program = await offered_program(client, specs[0].site_id, program_id, form)
    done = 0

    async def one(index: int, spec: BatterySpec) -> None:
        nonlocal done
        body = enrollment_body(spec, index, program, form)
        key = idempotency_key("e", spec.site_id, body)
        try:
            await client.enroll(spec.site_id, body, idempotency_key=key)
            result.enrolled += 1
        except ApiError as exc:
            if exc.status_code == 409:
                result.already_enrolled += 1
            else:
                result.enroll_failed += 1
                result.error(f"enroll {spec.site_id}: {exc}")
        done += 1
        if done % PROGRESS_EVERY == 0:
            progress(f"enrolled {done:,} of {len(specs):,} homes")

    await one(0, specs[0])
    if result.enroll_failed:
        raise ProvisionError(result.errors[0])
    jobs = [functools.partial(one, i, s) for i, s in enumerate(specs) if i > 0]
    await bounded(concurrency, jobs)
    return result
