"""Running a claim while another replica's transaction holds a row lock (PostgreSQL tests)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bot.store.database import Store


def claim_beside_a_lock(store: Store, held: Any, claim: Any, *args: Any) -> Any:
    """Run ``claim`` in another thread while ``held`` (a transaction holding a row lock) is open;
    a claim that waited for the lock instead of skipping it fails after 10 s."""
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(store.transaction, claim, *args).result(timeout=10)
    finally:
        held.rollback()
        pool.shutdown()
