"""Progress of ``tenantgate seed``: a tqdm bar on a terminal, plain lines otherwise.

A log or a CI console gets a line every ``interval`` seconds and a last one at the
end::

    seeded 250/1000 tenants (25%), 41.2 tenants/s, eta 18 s

The rate counts the tenants built by this run only (tenants found complete from an
earlier run are in the count, not in the rate), so a resumed run's eta is honest.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["Progress"]


class Progress:
    def __init__(
        self,
        total: int,
        done: int,
        *,
        stream: TextIO | None = None,
        interval: float = 5.0,
        bar: bool | None = None,
    ) -> None:
        self.total = total
        self.done = done
        self._stream = stream or sys.stderr
        self._interval = interval
        self._started = time.monotonic()
        self._built = 0
        self._last_line = self._started
        use_bar = self._stream.isatty() if bar is None else bar
        self._bar: tqdm[Any] | None = (
            tqdm(
                total=total,
                initial=done,
                unit="tenant",
                desc="seeding",
                file=self._stream,
                dynamic_ncols=True,
                smoothing=0.1,
            )
            if use_bar
            else None
        )

    def update(self, count: int) -> None:
        self.done += count
        self._built += count
        if self._bar is not None:
            self._bar.update(count)
            return
        now = time.monotonic()
        if now - self._last_line >= self._interval:
            self._last_line = now
            self._line(now)

    def rate(self) -> float:
        """Tenants built a second by this run."""
        elapsed = time.monotonic() - self._started
        return self._built / elapsed if elapsed > 0 else 0.0

    def _line(self, now: float) -> None:
        rate = self.rate()
        left = self.total - self.done
        eta = f"{left / rate:.0f} s" if rate > 0 else "?"
        pct = 100 * self.done / self.total if self.total else 100.0
        print(
            f"seeded {self.done}/{self.total} tenants ({pct:.0f}%), "
            f"{rate:.1f} tenants/s, eta {eta}",
            file=self._stream,
            flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        else:
            self._line(time.monotonic())
