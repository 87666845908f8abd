"""Find and build the configured channel connectors (dotted path or entry point)."""
from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Any, Dict, Mapping, Type

from connectors.base import Connector, ConnectorError

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "webcare.connectors"


def connector_class(type_name: str) -> Type[Connector]:
    """Resolve ``type_name``: an entry point name of ``webcare.connectors``, or a dotted path."""
    for entry_point in entry_points().select(group=ENTRY_POINT_GROUP):
        if entry_point.name == type_name:
            cls = entry_point.load()  # a broken plugin fails here with its real error
            break
    else:
        module_name, _, class_name = type_name.rpartition(".")
        if not module_name:
            raise ConnectorError(
                f"unknown connector type {type_name!r}: not an entry point of "
                f"'{ENTRY_POINT_GROUP}' and not a dotted path like 'package.module.Class'"
            )
        module = importlib.import_module(module_name)  # real ImportError if broken
        try:
            cls = getattr(module, class_name)
        except AttributeError:
            raise ConnectorError(f"{module_name} has no class {class_name!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConnectorError(f"{type_name} is not a webcare Connector subclass")
    return cls


def build_connectors(channels: Mapping[str, Mapping[str, Any]]) -> Dict[str, Connector]:
    """Instantiate every configured channel: ``{name: {type: ..., <options>}}``."""
    built: Dict[str, Connector] = {}
    for name, options in channels.items():
        if not isinstance(options, Mapping) or not options.get("type"):
            raise ConnectorError(f"channels.{name}: needs a 'type' (entry point name or dotted path)")
        if options.get("enabled", True) is False:
            continue
        cls = connector_class(str(options["type"]))
        settings = {k: v for k, v in options.items() if k not in ("type", "enabled")}
        built[name] = cls.from_config(name, settings)
        logger.info("channel %s: %s", name, cls.__name__)
    return built
