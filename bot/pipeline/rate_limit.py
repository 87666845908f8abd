"""Per-channel rate limiting for outbound delivery (token bucket, with a pause for 429s)."""
from __future__ import annotations

import asyncio
import itertools
import math
import time
from typing import Dict, Optional

# A platform that allows "R messages per second" counts the requests that reach it in any one
# second. Besides the token bucket, at most floor(R) sends hold a place in a window of
# WINDOW_SECONDS (+ a small margin); a send's place counts from when it *finished* (see
# :meth:`TokenBucket.sent`), so a send that left late (a busy event loop, a slow connection)
# can never land in the same platform second as the R-th send after it.
WINDOW_SECONDS = 1.0
WINDOW_MARGIN_SECONDS = 0.005


class TokenBucket:
    """Allows ``rate`` sends per second on average, bursts up to ``burst``.

    On top of the bucket, never more than ``floor(rate)`` sends within any
    ``WINDOW_SECONDS + WINDOW_MARGIN_SECONDS`` (for ``rate >= 1``).
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = max(rate, 0.001)
        self.capacity = burst if burst is not None else max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.paused_until = 0.0
        self.per_window = int(math.floor(self.rate)) if self.rate >= 1 else 0
        self.window = WINDOW_SECONDS + WINDOW_MARGIN_SECONDS
        self._slots: Dict[int, float] = {}  # slot -> when it was taken (or its send finished)
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """The channel said "wait" (e.g. Telegram 429 ``retry_after``): send nothing until then."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)
        self.tokens = 0.0

    def sent(self, slot: Optional[int]) -> None:
        """The send that took ``slot`` has finished: its place in the window counts from now."""
        if slot in self._slots:
            self._slots[slot] = max(self._slots[slot], time.monotonic())

    def _window_wait(self, now: float) -> float:
        """Seconds until a place in the window is free (0: free now)."""
        for slot, at in list(self._slots.items()):
            if now - at >= self.window:
                del self._slots[slot]
        if len(self._slots) < self.per_window:
            return 0.0
        return max(0.001, self.window - (now - min(self._slots.values())))

    async def acquire(self) -> Optional[int]:
        """Wait until one more send is allowed; returns its slot (pass it to :meth:`sent`)."""
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self.paused_until:
                    await asyncio.sleep(self.paused_until - now)
                    self.updated = time.monotonic()
                    continue
                if self.per_window:
                    wait = self._window_wait(now)
                    if wait:
                        await asyncio.sleep(wait)
                        continue
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    if not self.per_window:
                        return None
                    slot = next(self._ids)
                    self._slots[slot] = now
                    return slot
                await asyncio.sleep((1.0 - self.tokens) / self.rate)
