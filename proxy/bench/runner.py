"""The run: open or closed loop over one or two targets, in interleaved rounds.

**Open loop** (``--rate``): a scheduler walks the Poisson arrival times
(``schedule.arrivals``), sleeps until each is due and starts the transaction as its own
task without waiting for earlier ones. Its latency is measured from the scheduled
time. When ``--max-inflight`` transactions are already under way the new one is not
sent and is counted as skipped (pgbench ``-R --latency-limit``'s skipped). When the
generator cannot keep up (CPU), transactions start late: that lateness is recorded
(``schedule lag``) and shown in the progress lines, so a saturated generator is never
mistaken for a slow server.

**Closed loop** (``--clients``): that many workers, each sending its next transaction
when the previous one completes (pgbench without ``-R``); latency is service time.

**Both targets** (``--both``): tenantgate and the databases directly take turns in
``--rounds`` segments (``http, direct, http, direct...``) as in
``benchmarks/compare.py``, so drift of a shared machine hits both alike; each draws the
same seeded sequence of (tenant, script, parameters). The warm-up runs in each target's
first segment. Segments do not overlap: one drains before the next starts.

Time is ``time.perf_counter`` throughout (uvloop's ``loop.time()`` ticks in
milliseconds).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from proxy.bench.fleet import FleetTenant
from proxy.bench.recorder import Recorder, Tick
from proxy.bench.schedule import TenantPicker, arrivals
from proxy.bench.targets import Stamp, Target
from proxy.bench.workload import Mix

__all__ = ["Lane", "RunSpec", "process_cpu_s", "run_lanes"]


@dataclass(frozen=True, slots=True)
class RunSpec:
    rate: float | None
    """Open loop: transactions/s per target. ``None``: closed loop."""
    clients: int
    duration: float | None
    """Measured seconds per target (all rounds together)."""
    transactions: int | None
    """Measured transactions per target (all rounds together)."""
    warmup: float
    max_inflight: int
    timeout: float
    rounds: int
    seed: int


def process_cpu_s(pid: int, children: bool = True) -> float:
    """utime + stime of ``pid`` (and of its live children: tenantgate's workers)."""
    tick = os.sysconf("SC_CLK_TCK")

    def one(p: int) -> float:
        stat = Path(f"/proc/{p}/stat").read_text(encoding="ascii")
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / tick

    total = one(pid)
    if children:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text(encoding="ascii")
                    if int(stat.rpartition(")")[2].split()[1]) == pid:
                        total += one(int(entry.name))
                except (OSError, ValueError):
                    continue
    return total


class Lane:
    """One target with its recorder and its own seeded random streams."""

    def __init__(
        self, target: Target, tenants: tuple[FleetTenant, ...], picker: TenantPicker, mix: Mix,
        seed: int,
    ) -> None:  # fmt: skip
        self.target = target
        self.recorder = Recorder(target.name)
        self.tenants = tenants
        self.picker = picker
        self.mix = mix
        # Seeded, so every target and every run with this seed sends the same requests.
        self.draws = random.Random(f"draws:{seed}")  # noqa: S311 - a workload, not secrets
        self.gaps = random.Random(f"arrivals:{seed}")  # noqa: S311
        self.counted = 0
        self.seq = 0
        self.tag = secrets.token_hex(3) + target.name[0]
        self.warmed = False


Progress = Callable[[Lane, Tick], None]


async def _one(
    lane: Lane, spec: RunSpec, due: float, *, measured: bool, script: str, index: int,
    op: object,
) -> None:  # fmt: skip
    stamp = Stamp()
    stamp.sent = due
    error: str | None
    try:
        async with asyncio.timeout(spec.timeout):
            error = await lane.target.run(op, lane.tenants[index], stamp)  # type: ignore[arg-type]
    except TimeoutError:
        error = "timeout"
    except Exception as exc:  # noqa: BLE001 - a transport failure is a result
        error = str(exc) if type(exc).__name__ == "HttpError" else type(exc).__name__
    if measured:
        lane.recorder.done(
            script,
            index,
            scheduled=due,
            sent=stamp.sent,
            finished=time.perf_counter(),
            error=error,
        )


def _draw(lane: Lane) -> tuple[str, int, object]:
    index = lane.picker.pick(lane.draws)
    script = lane.mix.pick(lane.draws)
    lane.seq += 1
    op = script.draw(lane.draws, lane.tenants[index], f"{lane.tag}{lane.seq}")
    return script.name, index, op


@dataclass(slots=True)
class _Window:
    """One segment's clock: when it started, when measuring starts and stops."""

    start: float
    measure_start: float
    end: float
    target_count: int | None
    last_tick: float

    def finished(self, lane: Lane) -> bool:
        return self.target_count is not None and lane.counted >= self.target_count


async def _ticker(lane: Lane, w: _Window, progress: Progress) -> None:
    """Close a one-second interval of the timeline each second of measured time, and
    charge the CPU spent meanwhile (the generator's, and tenantgate's if its pid is
    known) to this target."""
    rec = lane.recorder
    proxy_pid: int | None = getattr(lane.target, "proxy_pid", None)
    await asyncio.sleep(max(0.0, w.measure_start - time.perf_counter()))
    cpu0 = time.process_time()
    proxy0 = process_cpu_s(proxy_pid) if proxy_pid else 0.0
    try:
        while True:
            await asyncio.sleep(max(0.0, w.last_tick + 1.0 - time.perf_counter()))
            now = time.perf_counter()
            tick = rec.tick(now - w.last_tick)
            w.last_tick = now
            progress(lane, tick)
    finally:
        rec.bench_cpu_s += time.process_time() - cpu0
        if proxy_pid:
            rec.proxy_cpu_s = (rec.proxy_cpu_s or 0.0) + process_cpu_s(proxy_pid) - proxy0


async def _open_loop(lane: Lane, spec: RunSpec, w: _Window) -> None:
    assert spec.rate is not None
    rec = lane.recorder
    tasks: set[asyncio.Task[None]] = set()
    for t in arrivals(spec.rate, lane.gaps):
        due = w.start + t
        if due >= w.end or w.finished(lane):
            break
        now = time.perf_counter()
        if due > now + 0.0005:  # sooner than that: send now, a sleep would be later
            await asyncio.sleep(due - now)
            now = time.perf_counter()
        measured = due >= w.measure_start
        # Drawn even when skipped: every target sees the same sequence.
        script, index, op = _draw(lane)
        if measured:
            rec.late(max(0.0, now - due))
            rec.sent(index)
            lane.counted += 1
        if len(tasks) >= spec.max_inflight:
            if measured:
                rec.skipped(script)
            continue
        task = asyncio.create_task(
            _one(lane, spec, due, measured=measured, script=script, index=index, op=op)
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


async def _closed_loop(lane: Lane, spec: RunSpec, w: _Window) -> None:
    rec = lane.recorder

    async def client() -> None:
        while True:
            now = time.perf_counter()
            if now >= w.end or w.finished(lane):
                return
            measured = now >= w.measure_start
            script, index, op = _draw(lane)
            if measured:
                rec.sent(index)
                lane.counted += 1
            await _one(lane, spec, now, measured=measured, script=script, index=index, op=op)

    await asyncio.gather(*(client() for _ in range(spec.clients)))


async def _segment(
    lane: Lane, spec: RunSpec, seconds: float | None, limit: int | None, progress: Progress
) -> None:
    """One target's turn: warm-up (first turn only), then ``seconds`` or ``limit``
    measured transactions; returns once every transaction it started has finished."""
    warmup = 0.0 if lane.warmed else spec.warmup
    lane.warmed = True
    start = time.perf_counter()
    measure_start = start + warmup
    w = _Window(
        start=start,
        measure_start=measure_start,
        end=measure_start + seconds if seconds is not None else math.inf,
        target_count=lane.counted + limit if limit is not None else None,
        last_tick=measure_start,
    )
    tick_task = asyncio.create_task(_ticker(lane, w, progress))
    if spec.rate is not None:
        await _open_loop(lane, spec, w)
    else:
        await _closed_loop(lane, spec, w)
    tick_task.cancel()
    await asyncio.gather(tick_task, return_exceptions=True)
    stop = min(time.perf_counter(), w.end)
    if stop > w.last_tick + 0.01:
        progress(lane, lane.recorder.tick(stop - w.last_tick))


def _split(total: float, parts: int) -> list[float]:
    return [total / parts] * parts


def _split_count(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


async def run_lanes(lanes: list[Lane], spec: RunSpec, progress: Progress) -> None:
    """Every lane's segments, interleaved round by round."""
    rounds = max(1, spec.rounds if len(lanes) > 1 else 1)
    if spec.duration is not None:
        seconds: list[float | None] = list(_split(spec.duration, rounds))
        limits: list[int | None] = [None] * rounds
    else:
        assert spec.transactions is not None
        seconds = [None] * rounds
        limits = list(_split_count(spec.transactions, rounds))
    for r in range(rounds):
        for lane in lanes:
            await _segment(lane, spec, seconds[r], limits[r], progress)
