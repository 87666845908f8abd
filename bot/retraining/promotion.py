"""Promote a candidate model into every Rasa replica, or roll back to the previous one.

The same code serves the console's buttons (``POST /api/models/{id}/promote``,
``POST /api/models/rollback``, used by ``webcare bench days`` too), ``webcare models
promote|rollback`` and an automatic promotion at the end of a job. One swap at a time across
every process (a claim in the store, :func:`bot.learning.registry.claim_swap`). Refused: a model
that failed its gate, the one in use, a candidate compared with another model than the one in use
now, and any decision taken on a page that no longer shows the model in use
(``expected_in_use``). A promoted candidate's file moves from ``{rasa.model_dir}/candidates/``
into ``rasa.model_dir`` as its newest file once every replica serves it, so a restarted
``webcare run`` starts on it too. Audited in both outcomes (``model.promote``,
``model.rollback``, ``model.promote_failed``).
"""
from __future__ import annotations

import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any, Dict, Optional

from bot.accounts import Actor
from bot.config import Config
from bot.learning import registry
from bot.rasa.stack import PROJECT
from bot.rasa.training import KEEP_MODELS
from bot.retraining.replicas import SwapFailed, swap
from bot.store.database import Store

logger = logging.getLogger(__name__)

CANDIDATES = "candidates"  # below rasa.model_dir: never picked by `rasa run --model {model_dir}`


def model_path(config: Config, file_name: str) -> Path:
    """Where a registered model's file is: ``rasa.model_dir``, or its ``candidates/`` folder."""
    model_dir = PROJECT / config.rasa.model_dir
    for folder in (model_dir, model_dir / CANDIDATES):
        if (folder / file_name).is_file():
            return folder / file_name
    return model_dir / file_name


def _files(session: Any, model_id: Optional[int], rollback: bool, expected_in_use: Optional[int]) -> Dict[str, Any]:
    """The names a promotion needs, read (and checked) in one transaction."""
    if rollback:
        target, current = registry.rollback_pair(session, expected_in_use)
    else:
        target, current = registry.promotable(session, int(model_id or 0), expected_in_use)
    return {"id": target.id, "file": target.file_name, "current": current.file_name if current else None,
            "current_id": current.id if current else None}


def _place(source: Path, model_dir: Path) -> Path:
    """The served model's file in ``rasa.model_dir`` (moved there from ``candidates/``), its newest."""
    target = model_dir / source.name
    if source != target and source.exists():
        os.replace(source, target)
    if target.exists():
        target.touch()  # `rasa run --model {model_dir}` and `webcare run` start on the newest file
    return target


def _prune(model_dir: Path, keep: set) -> None:
    """Keep the newest :data:`KEEP_MODELS` files of ``rasa.model_dir`` and those in ``keep``."""
    files = sorted(model_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    for old in files[:-KEEP_MODELS]:
        if old.name not in keep:
            old.unlink(missing_ok=True)


async def promote(store: Store, config: Config, model_id: Optional[int], actor: Optional[Actor],
                  rollback: bool = False, expected_in_use: Optional[int] = None) -> Dict[str, Any]:
    """Swap ``model_id`` (or, with ``rollback``, the model the one in use replaced) into every
    replica and record it; ``{"model": ..., "swap": ...}``. Raises :class:`bot.errors.Conflict`
    (not promotable, or another swap runs), :class:`SwapFailed` (a replica failed; every replica
    reached was put back) or :class:`bot.errors.Unavailable` (the file is missing)."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    urls = config.rasa.urls
    timeout = config.learning.swap_timeout_seconds
    await store.run(registry.claim_swap, holder, timeout * (2 * len(urls) + 1) + 60)
    try:
        names = await store.run(_files, model_id, rollback, expected_in_use)
        source = model_path(config, names["file"])
        previous = model_path(config, names["current"]) if names["current"] else None
        try:
            report = await swap(urls, source, previous, timeout)
        except BaseException as exc:  # a failed replica, a missing file, an interruption: audited
            replicas = [vars(r) for r in exc.replicas] if isinstance(exc, SwapFailed) else []
            await store.run(registry.record_swap_failure, actor, names["id"],
                            {"error": str(exc) or type(exc).__name__, "replicas": replicas, "rollback": rollback})
            raise
        model_dir = PROJECT / config.rasa.model_dir
        _place(source, model_dir)
        await store.run(registry.mark_promoted, actor, names["id"], report, rollback)
        rollback_file = await store.run(lambda s: (lambda m: m.file_name if m else "")(registry.rollback_target(s)))
        _prune(model_dir, {names["file"], rollback_file})
        view = await store.run(registry.model, names["id"])
    finally:
        await store.run(registry.release_swap, holder)
    logger.info("learning: %s %s in %.1f s", "rolled back to" if rollback else "promoted", names["file"],
                report["seconds"])
    return {"model": view, "swap": report}
