"""Promote a candidate model into every Rasa replica, or roll back to the previous one.

The same code serves the console's buttons (``POST /api/models/{id}/promote``,
``POST /api/models/rollback``), ``webcare models promote|rollback``, an automatic promotion at
the end of a job and ``webcare bench days``. A promoted candidate's file moves from
``{rasa.model_dir}/candidates/`` into ``rasa.model_dir`` and becomes its newest file, so a
restarted ``webcare run`` starts on it too. Refused: a model that failed its gate, or one
already in use. Audited in both outcomes (``model.promote``, ``model.rollback``,
``model.promote_failed``).
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional

from bot.accounts import Actor
from bot.config import Config
from bot.errors import Conflict
from bot.learning import registry
from bot.retraining.replicas import SwapFailed, swap
from bot.rasa.stack import PROJECT
from bot.rasa.training import KEEP_MODELS
from bot.store.database import Store

logger = logging.getLogger(__name__)

_one_at_a_time = asyncio.Lock()  # in this process; the store's statuses guard the rest


def _files(session: Any, model_id: int, rollback: bool) -> Dict[str, Any]:
    """The names a promotion needs, read in one transaction."""
    if rollback:
        target = registry.rollback_target(session)
        if target is None:
            raise Conflict("there is no previous model to roll back to")
        current = registry.in_use(session)
    else:
        target, current = registry.promotable(session, model_id)
    return {"id": target.id, "file": target.file_name, "current": current.file_name if current else None}


def _place(config: Config, file_name: str) -> Path:
    """The model's file in ``rasa.model_dir`` (moved there from ``candidates/``), made its newest."""
    model_dir = PROJECT / config.rasa.model_dir
    target = model_dir / file_name
    waiting = model_dir / "candidates" / file_name
    if not target.exists() and waiting.exists():
        os.replace(waiting, target)
    if target.exists():
        target.touch()  # `rasa run --model {model_dir}` and `webcare run` start on the newest file
    return target


def _prune(config: Config, keep: set) -> None:
    """Keep the newest :data:`KEEP_MODELS` files of ``rasa.model_dir`` and those in ``keep``."""
    model_dir = PROJECT / config.rasa.model_dir
    files = sorted(model_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    for old in files[:-KEEP_MODELS]:
        if old.name not in keep:
            old.unlink(missing_ok=True)


async def promote(store: Store, config: Config, model_id: Optional[int], actor: Optional[Actor],
                  rollback: bool = False) -> Dict[str, Any]:
    """Swap ``model_id`` (or, with ``rollback``, the previous model) into every replica and record
    it; ``{"model": ..., "swap": ...}``. Raises :class:`Conflict` (not promotable) or
    :class:`SwapFailed` (a replica failed; the others were put back)."""
    async with _one_at_a_time:
        names = await store.run(_files, model_id or 0, rollback)
        model_dir = PROJECT / config.rasa.model_dir
        target = _place(config, names["file"])
        previous = model_dir / names["current"] if names["current"] else None
        action = "model.rollback" if rollback else "model.promote"
        try:
            report = await swap(config.rasa.urls, target, previous, config.learning.swap_timeout_seconds)
        except SwapFailed as exc:
            details = {"error": str(exc), "replicas": [vars(r) for r in exc.replicas], "rollback": rollback}
            await store.run(registry.record_swap_failure, actor, names["id"], details)
            if previous is not None and previous.exists():
                previous.touch()  # the newest file is the one the replicas serve again
            raise
        await store.run(registry.mark_promoted, actor, names["id"], report, action)
        _prune(config, {names["file"], names["current"] or ""})
        view = await store.run(registry.model, names["id"])
    logger.info("learning: %s %s in %.1f s", action, names["file"], report["seconds"])
    return {"model": view, "swap": report}

