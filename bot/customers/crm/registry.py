"""Find and build the configured CRM adapter (entry point name or dotted path)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Dict, Mapping, Type, Union

from bot.config import CrmConfig
from bot.customers.crm.base import CrmAdapter, CrmError
from bot.plugins import plugin_class

if TYPE_CHECKING:
    from bot.store.database import Store

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "webcare.crm"

# The built-in adapters, also registered as entry points in pyproject.toml; listed here too
# so that a checkout whose package metadata predates them still finds them.
BUILT_IN: Dict[str, str] = {
    "sql": "bot.customers.crm.sql:SqlCrm",
    "http": "bot.customers.crm.http:HttpCrm",
}


def crm_class(adapter: str) -> Type[CrmAdapter]:
    """Resolve ``adapter``: an entry point of ``webcare.crm`` (``sql``, ``http``, ...) or a
    dotted path ``package.module:Class`` / ``package.module.Class``."""
    name = str(adapter or "").strip()
    if not name:
        raise CrmError("crm.adapter is empty: use sql, http or a dotted path like 'package.module:Class'")
    return plugin_class(name, group=ENTRY_POINT_GROUP, base=CrmAdapter, built_in=BUILT_IN,
                        kind="CRM adapter", error=CrmError)


def load_crm(config: Union[CrmConfig, Mapping[str, Any]], store: "Store") -> CrmAdapter:
    """Build the adapter of the ``crm`` section (call :meth:`CrmAdapter.start` before use);
    adapters receive the section as a mapping (:meth:`bot.config.CrmConfig.as_mapping`)."""
    config_section = config.as_mapping() if isinstance(config, CrmConfig) else config
    cls = crm_class(str(config_section.get("adapter") or ""))
    adapter = cls.from_config(config_section, store)
    logger.info("CRM adapter: %s", cls.__name__)
    return adapter
