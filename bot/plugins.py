"""Resolving plugin classes by entry point name or dotted path (CRM adapters, report sinks)."""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Mapping, Type, TypeVar

T = TypeVar("T")


def plugin_class(name: str, *, group: str, base: Type[T], built_in: Mapping[str, str], kind: str,
                 error: Type[Exception]) -> Type[T]:
    """The class named ``name``: an entry point of ``group``, a built-in name, or a dotted path
    ``package.module:Class`` / ``package.module.Class``; it must subclass ``base``.

    Unknown names, missing modules or classes raise ``error`` saying so; a module that exists
    but fails to import raises its real error.
    """
    for entry_point in entry_points().select(group=group):
        if entry_point.name == name:
            cls = entry_point.load()  # a broken plugin fails here with its real error
            break
    else:
        target = built_in.get(name, name)
        module_name, _, class_name = target.partition(":") if ":" in target else target.rpartition(".")
        if not module_name or not class_name:
            raise error(
                f"unknown {kind} {name!r}: not an entry point of '{group}' "
                f"(built in: {', '.join(sorted(built_in))}) and not a dotted path like 'package.module:Class'")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                raise error(f"unknown {kind} {name!r}: no module {module_name!r}") from None
            raise  # the module exists but is broken: show its real error
        try:
            cls = getattr(module, class_name)
        except AttributeError:
            raise error(f"unknown {kind} {name!r}: {module_name} has no class {class_name!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise error(f"{kind} {name!r} is not a webcare {base.__name__} subclass")
    return cls
