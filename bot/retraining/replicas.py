"""Load a model into every running Rasa replica, one after the other, through Rasa's HTTP API.

``PUT {replica}/model {"model_file": path}`` makes a Rasa server (started with
``--enable-api``) load the file and then switch its agent over in one assignment: webcare's
channel (:mod:`bot.rasa.channel`) parses and handles a message with the agent it started with,
so a message being answered finishes on the old model, the next one gets the new model, and
nothing is dropped. (Rasa 3.6 opens a new tracker store and event broker connection for the
new agent and does not close the old ones: a few idle connections per swap.)
While a replica loads (a few seconds, its event loop busy) the service's worker waits for it
or, past ``worker.rasa_timeout_seconds``, asks another replica; a message is still answered
once, because every reply goes out under its idempotency key (the outbox). Replicas swap one
at a time, so the others keep answering. ``GET /status`` confirms the model each one serves.

The path must be the same for the service and every replica: ``rasa.model_dir`` on one machine,
or a volume shared by the containers (docker-compose.yml mounts ``models``). When a replica
fails to load, the ones already switched are put back on the previous model and
:class:`SwapFailed` says what happened; nothing is left half-swapped when the previous model
can be loaded.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import aiohttp

from bot.errors import Unavailable

logger = logging.getLogger(__name__)


@dataclass
class ReplicaSwap:
    """One replica's part of a swap."""

    url: str
    ok: bool
    seconds: float
    model_file: Optional[str] = None  # what its /status says it serves afterwards
    error: Optional[str] = None


class SwapFailed(Unavailable):
    """A replica did not load the model; the ones already switched were put back."""

    def __init__(self, message: str, replicas: List[ReplicaSwap]) -> None:
        super().__init__(message)
        self.replicas = replicas


def report(replicas: Sequence[ReplicaSwap], started: float) -> Dict[str, Any]:
    """The JSON form of a swap, kept in the audit log."""
    return {"replicas": [asdict(r) for r in replicas], "seconds": round(time.monotonic() - started, 2)}


STATUS_TIMEOUT = aiohttp.ClientTimeout(total=15)


async def serving(http: aiohttp.ClientSession, url: str) -> Optional[str]:
    """The file name of the model a replica serves (``GET /status``), None when it serves none."""
    async with http.get(f"{url}/status", timeout=STATUS_TIMEOUT) as response:
        if response.status != 200:
            raise Unavailable(f"{url}/status answered {response.status}")
        body = await response.json()
    name = body.get("model_file")
    return Path(name).name if name else None


async def load(http: aiohttp.ClientSession, url: str, model: Path, timeout: float) -> ReplicaSwap:
    """One replica loads ``model``; checks with ``/status`` that it serves it."""
    started = time.monotonic()
    try:
        async with http.put(f"{url}/model", json={"model_file": str(model)},
                            timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            if response.status != 204:
                detail = (await response.text())[:300]
                return ReplicaSwap(url, False, round(time.monotonic() - started, 2),
                                   error=f"PUT /model answered {response.status}: {detail}")
        now_serving = await serving(http, url)
    except (aiohttp.ClientError, asyncio.TimeoutError, Unavailable) as exc:
        return ReplicaSwap(url, False, round(time.monotonic() - started, 2),
                           error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    seconds = round(time.monotonic() - started, 2)
    if now_serving != model.name:
        return ReplicaSwap(url, False, seconds, now_serving, f"serves {now_serving!r} after loading {model.name!r}")
    return ReplicaSwap(url, True, seconds, now_serving)


async def _put_back(http: aiohttp.ClientSession, attempted: Sequence[ReplicaSwap], previous: Optional[Path],
                    timeout: float) -> None:
    """Every replica a swap reached loads ``previous`` again (one whose load timed out may still
    have switched); each one's ``model_file`` says what it serves afterwards."""
    for replica in attempted:
        if previous is not None:
            again = await load(http, replica.url, previous, timeout)
            if not again.ok:
                replica.error = f"{replica.error or 'switched'}; could not be put back: {again.error}"
        try:
            replica.model_file = await serving(http, replica.url)
        except (aiohttp.ClientError, asyncio.TimeoutError, Unavailable) as exc:
            replica.model_file = None
            replica.error = f"{replica.error or ''}; /status: {type(exc).__name__}".lstrip("; ")


async def swap(urls: Sequence[str], model: Path, previous: Optional[Path], timeout: float) -> Dict[str, Any]:
    """Every replica in ``urls`` loads ``model``, one at a time; the swap's report.

    Raises :class:`SwapFailed` if one of them fails, after putting every replica it reached
    back on ``previous`` (when given). Interrupted (cancelled, SIGTERM), it puts them back too."""
    if not model.is_file():
        raise Unavailable(f"the model file {model} is missing (rasa.model_dir must be shared with the replicas)")
    started = time.monotonic()
    done: List[ReplicaSwap] = []
    async with aiohttp.ClientSession() as http:
        try:
            for url in urls:
                done.append(ReplicaSwap(url, False, 0.0, error="interrupted"))
                result = await load(http, url, model, timeout)
                done[-1] = result
                if result.ok:
                    logger.info("learning: %s serves %s (%.1f s)", url, model.name, result.seconds)
                    continue
                logger.error("learning: %s did not load %s: %s", url, model.name, result.error)
                await _put_back(http, done, previous, timeout)
                raise SwapFailed(f"{url} did not load {model.name} ({result.error}); {len(done)} replica(s) "
                                 f"put back on {previous.name if previous else 'nothing'}", done)
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            logger.error("learning: swap of %s interrupted; putting the replicas back", model.name)
            await asyncio.shield(_put_back(http, done, previous, timeout))
            raise
    return report(done, started)
