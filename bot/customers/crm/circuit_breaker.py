"""A circuit breaker: stop calling a failing service for a while, then try it again.

closed --(``failure_threshold`` consecutive failures)--> open --(``reset_seconds``)--> half-open;
in half-open one trial call is let through: success closes the circuit, failure opens it again.
While open (and while the trial call runs) :meth:`CircuitBreaker.allow` says no, so callers
fail fast instead of waiting for timeouts.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

logger = logging.getLogger(__name__)

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure circuit breaker (thread-safe; the clock is injectable for tests)."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_seconds: float = 30.0,
        *,
        name: str = "circuit",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_seconds <= 0:
            raise ValueError("reset_seconds must be positive")
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` (open turns half-open once the cool-down passed)."""
        with self._lock:
            return self._current_state()

    def _current_state(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self.reset_seconds:
            self._state = HALF_OPEN
            self._trial_running = False
        return self._state

    def allow(self) -> bool:
        """May a call go ahead now? In half-open, only one trial call at a time."""
        with self._lock:
            state = self._current_state()
            if state == CLOSED:
                return True
            if state == HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def retry_in(self) -> float:
        """Seconds until the circuit lets a trial call through (0 when not open)."""
        with self._lock:
            if self._current_state() != OPEN:
                return 0.0
            return max(0.0, self.reset_seconds - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        with self._lock:
            if self._state != CLOSED:
                logger.info("%s: closed again", self.name)
            self._state = CLOSED
            self._failures = 0
            self._trial_running = False

    def record_failure(self) -> None:
        with self._lock:
            state = self._current_state()
            self._failures += 1
            self._trial_running = False
            if state == HALF_OPEN or (state == CLOSED and self._failures >= self.failure_threshold):
                self._state = OPEN
                self._opened_at = self._clock()
                logger.warning("%s: open after %d consecutive failure(s); retrying in %.0f s",
                               self.name, self._failures, self.reset_seconds)
