"""Import ``function_app.py`` and index its functions, as the Python worker does for the v2 model.

The worker imports the script as the module ``function_app`` with the app directory on ``sys.path``,
requires exactly one module-level ``azure.functions.FunctionRegister`` and calls ``get_functions()``
once (a second call reports every function as a duplicate). On top of that, this module checks what
the Functions host and the Durable extension would reject at start: names that collide
case-insensitively, orchestrator names starting with ``@``, and HTTP routes that collide.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func

from ._functions import (
    ACTIVITY_TRIGGER,
    ENTITY_TRIGGER,
    HTTP_TRIGGER,
    ORCHESTRATION_TRIGGER,
    IndexedFunction,
)
from ._routes import RouteTemplate, RouteTemplateError, join_route, parse_template

__all__ = [
    "SCRIPT_FILE",
    "AppLoadError",
    "LoadedApp",
    "find_function_register",
    "http_methods",
    "http_route",
    "index_function_app",
    "indexed_function",
    "load_function_app",
    "validate_functions",
]

SCRIPT_FILE = "function_app.py"
MODULE_NAME = "function_app"

# The host's own routes live under these first segments; a function route there would shadow them.
_RESERVED_ROUTE_ROOTS = ("admin", "runtime")


class AppLoadError(Exception):
    """The app cannot be imported or indexed; the host must not start.

    Attributes:
        message: What went wrong, in one paragraph.
        traceback_text: The full Python traceback when the failure was an exception in user code.
    """

    def __init__(self, message: str, *, traceback_text: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.traceback_text = traceback_text

    def __str__(self) -> str:
        if self.traceback_text:
            return f"{self.message}\n{self.traceback_text.rstrip()}"
        return self.message


@dataclass(frozen=True)
class LoadedApp:
    """An imported and indexed function app.

    Attributes:
        app_dir: The app's root directory (absolute).
        module: The imported ``function_app`` module.
        app: The module's ``FunctionRegister`` (a ``FunctionApp``, ``DFApp``, ...).
        functions: Every function, in registration order.
    """

    app_dir: Path
    module: ModuleType
    app: func.FunctionRegister
    functions: tuple[IndexedFunction, ...]


def load_function_app(app_dir: str | os.PathLike[str], *, route_prefix: str = "api") -> LoadedApp:
    """Import ``<app_dir>/function_app.py`` and index it.

    Args:
        app_dir: The function app's root directory.
        route_prefix: ``host.json``'s ``extensions.http.routePrefix``, to validate full routes.

    Raises:
        AppLoadError: The script is missing or fails to import (with its traceback), it has zero or
            several ``FunctionRegister`` instances, or indexing/validation fails.
    """
    directory = Path(app_dir).resolve()
    script = directory / SCRIPT_FILE
    if not script.is_file():
        raise AppLoadError(f"{script} not found: the Python v2 programming model needs a {SCRIPT_FILE}")
    module = _import_script(directory, script)
    app = find_function_register(module, script)
    return LoadedApp(
        app_dir=directory,
        module=module,
        app=app,
        functions=index_function_app(app, route_prefix=route_prefix),
    )


def _import_script(directory: Path, script: Path) -> ModuleType:
    # The worker puts the script root first on sys.path so the app's own packages import.
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    spec = importlib.util.spec_from_file_location(MODULE_NAME, script)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"{script} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    # Registered before running, like a normal import: the Durable JSON codec finds user classes
    # through sys.modules by their __module__ ("function_app").
    previous = sys.modules.get(MODULE_NAME)
    sys.modules[MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        if previous is None:
            sys.modules.pop(MODULE_NAME, None)
        else:
            sys.modules[MODULE_NAME] = previous
        raise AppLoadError(
            f"Failed to import {script}: {type(exc).__name__}: {exc}",
            traceback_text=traceback.format_exc(),
        ) from exc
    return module


def find_function_register(module: ModuleType, script: Path) -> func.FunctionRegister:
    # Mirrors the worker's loader: every module attribute counts, even two names for one object.
    found: list[tuple[str, func.FunctionRegister]] = []
    for name in dir(module):
        value = getattr(module, name, None)
        if isinstance(value, func.FunctionRegister):
            found.append((name, value))
    if not found:
        raise AppLoadError(
            f"Could not find top level function app instances in {script.name}: define one module-level "
            "azure.functions.FunctionApp (or azure.durable_functions.DFApp)"
        )
    if len(found) > 1:
        names = ", ".join(name for name, _ in found)
        raise AppLoadError(
            f"More than one {type(found[0][1]).__name__} or other top level function app instances are "
            f"defined in {script.name} ({names}): keep exactly one"
        )
    return found[0][1]


def index_function_app(app: func.FunctionRegister, *, route_prefix: str = "api") -> tuple[IndexedFunction, ...]:
    """Call ``app.get_functions()`` once and turn each function into an :class:`IndexedFunction`.

    Raises:
        AppLoadError: ``get_functions()`` refuses the app, a function has no or several triggers, or
            :func:`validate_functions` finds a conflict.
    """
    try:
        functions = app.get_functions()
    except Exception as exc:
        raise AppLoadError(
            f"Indexing the function app failed: {type(exc).__name__}: {exc}",
            traceback_text=traceback.format_exc(),
        ) from exc
    indexed = tuple(_index_one(function) for function in functions)
    validate_functions(indexed, route_prefix=route_prefix)
    return indexed


def _index_one(function: func.Function) -> IndexedFunction:
    name = function.get_function_name() or function.get_user_function().__name__
    return indexed_function(name, function.get_raw_bindings(), function.get_user_function())


def indexed_function(name: str, raw_bindings: Iterable[str], user_function: Callable[..., Any]) -> IndexedFunction:
    """One function from its name and raw binding JSON (what indexing reports for it).

    Raises:
        AppLoadError: A binding is not a JSON object with type and name, or the function has no or
            several triggers.
    """
    bindings = tuple(_parse_binding(raw, name) for raw in raw_bindings)
    triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
    if len(triggers) != 1:
        raise AppLoadError(f"Function '{name}' must have exactly one trigger binding, found {len(triggers)}")
    return IndexedFunction(name=name, trigger=triggers[0], bindings=bindings, user_function=user_function)


def _parse_binding(raw: str, function_name: str) -> dict[str, Any]:
    binding = json.loads(raw)
    if not isinstance(binding, dict) or "type" not in binding or "name" not in binding:
        raise AppLoadError(f"Function '{function_name}' has a binding without type or name: {raw}")
    return binding


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def validate_functions(functions: Sequence[IndexedFunction], *, route_prefix: str = "api") -> None:
    """Check what the host and the Durable extension reject when the app starts.

    Raises:
        AppLoadError: The first problem found, naming the functions involved.
    """
    _check_unique((f.name, f.name) for f in functions)
    for kind, label in (
        (ORCHESTRATION_TRIGGER, "orchestrator"),
        (ACTIVITY_TRIGGER, "activity"),
        (ENTITY_TRIGGER, "entity"),
    ):
        _check_unique(
            ((f.durable_name, f.name) for f in functions if f.trigger_type == kind),
            what=f"{label} function name",
        )
    for function in functions:
        if function.trigger_type == ORCHESTRATION_TRIGGER and function.durable_name.startswith("@"):
            raise AppLoadError(
                f"Function '{function.name}': orchestrator name '{function.durable_name}' must not start "
                "with '@' (the prefix is reserved for entities)"
            )
    _check_routes([f for f in functions if f.trigger_type == HTTP_TRIGGER], route_prefix)


def _check_unique(names: Iterable[tuple[str, str]], *, what: str = "function name") -> None:
    seen: dict[str, str] = {}
    for name, owner in names:
        key = name.lower()
        if key in seen:
            other = seen[key]
            owners = f" (functions '{other}' and '{owner}')" if other != owner and what != "function name" else ""
            raise AppLoadError(f"Duplicate {what} '{name}'{owners}: names are case-insensitive, so each must be unique")
        seen[key] = owner


def http_route(function: IndexedFunction) -> str:
    """The route a function registers (the decorator already defaults it to the function name)."""
    route = function.trigger.get("route")
    return function.name if route is None else str(route)


def http_methods(function: IndexedFunction) -> frozenset[str] | None:
    """The function's allowed methods, upper-cased; ``None`` means every method."""
    methods = function.trigger.get("methods")
    if not methods:
        return None
    return frozenset(str(m).upper() for m in methods)


def _check_routes(functions: Sequence[IndexedFunction], route_prefix: str) -> None:
    parsed: list[tuple[IndexedFunction, RouteTemplate, frozenset[str] | None]] = []
    for function in functions:
        full = join_route(route_prefix, http_route(function))
        try:
            template = parse_template(full)
        except RouteTemplateError as exc:
            raise AppLoadError(f"Function '{function.name}': invalid route '{http_route(function)}': {exc}") from None
        first = template.segments[0].literal if template.segments else None
        if first is not None and first.lower() in _RESERVED_ROUTE_ROOTS:
            raise AppLoadError(
                f"Function '{function.name}': the route '{full}' conflicts with the host's built-in "
                f"'/{first.lower()}' routes"
            )
        methods = http_methods(function)
        for other, other_template, other_methods in parsed:
            overlap = methods is None or other_methods is None or bool(methods & other_methods)
            if overlap and template.shape == other_template.shape:
                raise AppLoadError(
                    f"Functions '{other.name}' and '{function.name}' register the same route "
                    f"'{other_template.text}' / '{template.text}' for the same HTTP methods"
                )
        parsed.append((function, template, methods))
