"""Find and build the configured CRM adapter (entry point name or dotted path)."""
from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Dict, Mapping, Type

from bot.crm.base import CrmAdapter, CrmError

if TYPE_CHECKING:
    from bot.store.database import Store

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "webcare.crm"

# The built-in adapters, also registered as entry points in pyproject.toml; listed here too
# so that a checkout whose package metadata predates them still finds them.
BUILT_IN: Dict[str, str] = {
    "sql": "bot.crm.sql:SqlCrm",
    "http": "bot.crm.http:HttpCrm",
}


def crm_class(adapter: str) -> Type[CrmAdapter]:
    """Resolve ``adapter``: an entry point of ``webcare.crm`` (``sql``, ``http``, ...) or a
    dotted path ``package.module:Class`` / ``package.module.Class``."""
    name = str(adapter or "").strip()
    if not name:
        raise CrmError("crm.adapter is empty: use sql, http or a dotted path like 'package.module:Class'")
    for entry_point in entry_points().select(group=ENTRY_POINT_GROUP):
        if entry_point.name == name:
            cls = entry_point.load()  # a broken plugin fails here with its real error
            break
    else:
        target = BUILT_IN.get(name, name)
        if ":" in target:
            module_name, _, class_name = target.partition(":")
        else:
            module_name, _, class_name = target.rpartition(".")
        if not module_name or not class_name:
            raise CrmError(
                f"unknown CRM adapter {name!r}: not an entry point of '{ENTRY_POINT_GROUP}' "
                f"(built in: {', '.join(sorted(BUILT_IN))}) and not a dotted path like "
                "'package.module:Class'"
            )
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                raise CrmError(f"unknown CRM adapter {name!r}: no module {module_name!r}") from None
            raise  # the module exists but is broken: show its real error
        try:
            cls = getattr(module, class_name)
        except AttributeError:
            raise CrmError(f"unknown CRM adapter {name!r}: {module_name} has no class {class_name!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, CrmAdapter)):
        raise CrmError(f"CRM adapter {name!r} is not a webcare CrmAdapter subclass")
    return cls


def load_crm(config_section: Mapping[str, Any], store: "Store") -> CrmAdapter:
    """Build the adapter of the ``crm`` section (call :meth:`CrmAdapter.start` before use)."""
    cls = crm_class(str(config_section.get("adapter") or ""))
    adapter = cls.from_config(config_section, store)
    logger.info("CRM adapter: %s", cls.__name__)
    return adapter
