"""Which functions the host can serve, and the "function is in error" report for the others.

The Functions host builds each function on its own. A function naming a binding type that no installed
extension registers fails alone (``FunctionDescriptorProvider.VerifyResolvedBindings`` in
Azure/azure-functions-host, src/WebJobs.Script/Description/FunctionDescriptorProvider.cs); once started,
the host logs one error line per such function, ``The '<name>' function is in error: <message>``
(``ScriptHost.LogHostFunctionErrors``, text in src/WebJobs.Script/Diagnostics/Extensions/
ScriptHostLoggerExtension.cs, event 402), and serves every other function. The failed function gets no
trigger listener and no HTTP route (a request gets 404), the Durable extension does not know it, and
``func start`` leaves it out of its "Functions:" listing (Azure/azure-functions-core-tools,
src/Cli/func/Common/DisplayFunctionsInfoUtilities.cs lists only the functions the host built).

This local host "registers" exactly the binding types listed here; any other type puts its function in
error with the host's message, instead of stopping the whole app.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ._functions import (
    ACTIVITY_TRIGGER,
    BLOB,
    BLOB_TRIGGER,
    DURABLE_CLIENT,
    ENTITY_TRIGGER,
    HTTP_OUTPUT,
    HTTP_TRIGGER,
    ORCHESTRATION_TRIGGER,
    QUEUE_OUTPUT,
    QUEUE_TRIGGER,
    TIMER_TRIGGER,
    IndexedFunction,
)

__all__ = [
    "SUPPORTED_INPUTS",
    "SUPPORTED_OUTPUTS",
    "SUPPORTED_TRIGGERS",
    "FunctionError",
    "FunctionPartition",
    "binding_error_message",
    "partition_functions",
    "unservable_binding_types",
]

SUPPORTED_TRIGGERS = frozenset(
    {HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER, BLOB_TRIGGER, ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER, ENTITY_TRIGGER}
)
# The invoker's input readers must cover these, the Durable client aside.
SUPPORTED_INPUTS = frozenset({DURABLE_CLIENT, BLOB})
# The invoker's output writers must cover these (HTTP responses go back to the caller instead).
SUPPORTED_OUTPUTS = frozenset({HTTP_OUTPUT, QUEUE_OUTPUT, BLOB})


def _is_servable(binding_type: str, direction: str) -> bool:
    if direction == "OUT":
        return binding_type in SUPPORTED_OUTPUTS
    if binding_type.endswith("Trigger"):
        return binding_type in SUPPORTED_TRIGGERS
    return binding_type in SUPPORTED_INPUTS


def unservable_binding_types(function: IndexedFunction) -> tuple[str, ...]:
    """The binding types of ``function`` this host cannot serve, each once.

    Input bindings (the trigger among them) come before output bindings, as the host lists them.
    """
    inputs: list[str] = []
    outputs: list[str] = []
    for binding in function.bindings:
        kind = str(binding["type"])
        direction = str(binding.get("direction", "IN")).upper()
        if not _is_servable(kind, direction):
            (outputs if direction == "OUT" else inputs).append(kind)
    return tuple(dict.fromkeys(inputs + outputs))


def binding_error_message(binding_types: Iterable[str]) -> str:
    """The host's text for binding types no extension registers.

    The host words it differently when ``host.json`` configures an extension bundle ("were not found in
    the configured extension bundle"); this host loads no bundle and lacks the extension itself, so it
    always uses the no-bundle wording.
    """
    return (
        f"The binding type(s) '{', '.join(binding_types)}' are not registered. "
        "Please ensure the type is correct and the binding extension is installed."
    )


@dataclass(frozen=True)
class FunctionError:
    """A function the host put in error: it is indexed but not served.

    Attributes:
        function: The function.
        binding_types: The binding types the host cannot serve.
    """

    function: IndexedFunction
    binding_types: tuple[str, ...]

    @property
    def message(self) -> str:
        return binding_error_message(self.binding_types)

    def log_line(self) -> str:
        """The one line the host logs at start (error level)."""
        return f"The '{self.function.name}' function is in error: {self.message}"


@dataclass(frozen=True)
class FunctionPartition:
    """The app's functions split into the ones the host serves and the ones in error.

    Attributes:
        servable: Functions whose every binding the host serves, in registration order.
        in_error: The others, in registration order.
    """

    servable: tuple[IndexedFunction, ...]
    in_error: tuple[FunctionError, ...]


def partition_functions(functions: Iterable[IndexedFunction]) -> FunctionPartition:
    """Split ``functions`` into servable ones and ones in error (see the module docstring)."""
    servable: list[IndexedFunction] = []
    in_error: list[FunctionError] = []
    for function in functions:
        unservable = unservable_binding_types(function)
        if unservable:
            in_error.append(FunctionError(function, unservable))
        else:
            servable.append(function)
    return FunctionPartition(tuple(servable), tuple(in_error))
