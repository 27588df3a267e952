"""A caller's ``response_schema`` is data: checked against explicit bounds, never a reason to fetch or stall.

Two entry points:

- ``check_response_schema`` runs at the edge (HTTP, queue, schedule) and again in the entity (an
  orchestration hands its schema straight to the entity). It refuses, with a message naming the bound:
  non-local references (anything but ``#...`` into the schema itself), ``$id``, a ``$schema`` other
  than 2020-12 at the root, schemas over ``MAX_SCHEMA_BYTES`` / ``MAX_SCHEMA_DEPTH`` /
  ``MAX_SCHEMA_OBJECTS``, references that do not resolve, chains of subschemas applied to the same
  value that loop (``{"$ref": "#"}``) or run longer than ``MAX_SAME_VALUE_CHAIN``, and regular
  expressions that ``regex`` cannot compile or that would be costly to compile. Every walk is iterative,
  so a hostile nesting cannot exhaust the Python stack.
- ``checked_structured_value`` parses the model's answer (at most ``MAX_ANSWER_BYTES``, nested at most
  ``MAX_ANSWER_DEPTH``) and validates it with a Draft 2020-12 validator whose every keyword is counted:
  ``MAX_KEYWORD_EVALUATIONS`` evaluations, nested at most ``MAX_EVALUATION_DEPTH``; regular expressions
  run in ``regex`` with ``REGEX_MATCH_SECONDS`` per match and ``REGEX_TOTAL_SECONDS`` per answer (the GIL
  is released while they run, so other requests go on). References resolve through a registry that
  refuses to retrieve anything. Any bound hit is ``AnswerRejected``: the run fails with
  ``invalid_structured_output`` and a message saying which bound it was.
"""

from __future__ import annotations

import contextvars
import json
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._bodies import json_depth

if TYPE_CHECKING:
    from agent_framework import AgentResponse

# Bounds on the schema (request time) -----------------------------------------------------------------

MAX_SCHEMA_BYTES = 32_768
"""Largest ``response_schema``, serialized as compact JSON (UTF-8 bytes)."""
MAX_SCHEMA_DEPTH = 64
"""Deepest JSON nesting (objects and arrays) in a schema: about 30 levels of nested subschemas."""
MAX_SCHEMA_OBJECTS = 2_000
"""Most JSON objects (subschemas and keyword maps) in a schema."""
MAX_SAME_VALUE_CHAIN = 32
"""Longest chain of subschemas applied to one value (``$ref``, ``allOf``/``anyOf``/``oneOf``, ``not``,
``if``/``then``/``else``, ``dependentSchemas``) before a keyword moves on to a property or an item."""
MAX_PATTERN_LENGTH = 1_000
"""Longest regular expression (``pattern`` or a ``patternProperties`` key), in characters."""
MAX_PATTERN_EXPANSION = 100_000
"""Most atoms the schema's regular expressions may expand to once counted repeats (``{n,m}``) are
multiplied out, all patterns together: compiling ``(a{1000}){1000}`` alone takes half a second."""

# Bounds on validating the model's answer ---------------------------------------------------------------

MAX_ANSWER_BYTES = 524_288
"""Largest structured answer (UTF-8 bytes of the model's text)."""
MAX_ANSWER_DEPTH = 64
"""Deepest JSON nesting in a structured answer."""
MAX_KEYWORD_EVALUATIONS = 50_000
"""Most keyword evaluations one answer's validation may take (``enum`` counts one per listed value,
``uniqueItems`` one per item, each annotation step of ``unevaluated*`` one): a few thousand array
items of a typical object schema, well under a second."""
MAX_VALIDATION_SECONDS = 2.0
"""Backstop on one answer's validation time, should an evaluation cost more than the count assumes."""
MAX_EVALUATION_DEPTH = 128
"""Most keyword evaluations nested inside each other (keeps validation far from Python's recursion limit)."""
REGEX_MATCH_SECONDS = 0.05
"""Longest one regular expression may run on one string."""
REGEX_TOTAL_SECONDS = 0.25
"""Longest all regular expressions together may run on one answer."""

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")

# Keywords whose subschemas apply to the same value (a loop through only these never ends) ...
_SAME_VALUE_ONE = ("not", "if", "then", "else")
_SAME_VALUE_LIST = ("allOf", "anyOf", "oneOf")
_SAME_VALUE_MAP = ("dependentSchemas",)
# ... and those whose subschemas apply to a property, an item or a property name (a smaller value).
_INNER_VALUE_ONE = (
    "additionalProperties",
    "propertyNames",
    "unevaluatedProperties",
    "items",
    "contains",
    "unevaluatedItems",
)
_INNER_VALUE_LIST = ("prefixItems",)
_INNER_VALUE_MAP = ("properties", "patternProperties", "$defs")  # $defs: reached through references only


class ResponseSchemaError(ValueError):
    """A ``response_schema`` is refused; the message says which rule or bound it broke."""


class AnswerRejected(ValueError):
    """The model's answer is not JSON matching the schema, or checking it hit a bound (the message says)."""


# Request time ------------------------------------------------------------------------------------------


@dataclass
class SchemaAnalysis:
    """What checking a schema learned, reused when an answer is validated against it."""

    root: Mapping[str, Any]
    anchors: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)
    # id(subschema) -> the subschemas applied to the same value (kept alive by ``root``).
    same_value: dict[int, list[Mapping[str, Any]]] = field(default_factory=dict)

    def resolve(self, ref: str) -> Any:
        """The subschema a local reference (``#``, ``#/json/pointer`` or ``#anchor``) points at."""
        if not ref.startswith("#"):
            raise ResponseSchemaError(
                f"'{_short(ref)}' is not a reference into the schema itself (it must start with '#')."
            )
        fragment = urllib.parse.unquote(ref[1:])
        if fragment and not fragment.startswith("/"):
            found = self.anchors.get(fragment)
            if not found:
                raise ResponseSchemaError(f"The reference '{_short(ref)}' names no anchor in the schema.")
            return found[0]
        target: Any = self.root
        for token in fragment.split("/")[1:]:
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and token in target:
                target = target[token]
            elif isinstance(target, list) and token.isascii() and token.isdigit() and int(token) < len(target):
                target = target[int(token)]
            else:
                raise ResponseSchemaError(f"The reference '{_short(ref)}' points at nothing in the schema.")
        if not isinstance(target, Mapping | bool):
            raise ResponseSchemaError(f"The reference '{_short(ref)}' points at something that is not a schema.")
        return target


def check_response_schema(schema: Any) -> SchemaAnalysis:
    """Check a caller's ``response_schema`` against every bound; returns what validation needs.

    Raises:
        ResponseSchemaError: With a message naming the rule or bound that was broken.
    """
    if not isinstance(schema, Mapping):
        raise ResponseSchemaError("response_schema must be a JSON object.")
    patterns = _check_shape(schema)
    try:
        size = len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    except (TypeError, ValueError):
        raise ResponseSchemaError("response_schema must be plain JSON.") from None
    if size > MAX_SCHEMA_BYTES:
        raise ResponseSchemaError(f"response_schema is larger than {MAX_SCHEMA_BYTES} bytes ({size}).")
    _check_patterns(patterns)
    _check_against_meta_schema(schema)
    # Without $schema: jsonschema would pick its own validator class for it, one whose keywords are not counted.
    analysis = SchemaAnalysis(root={key: value for key, value in schema.items() if key != "$schema"})
    _map_subschemas(analysis)
    _check_same_value_chains(analysis)
    return analysis


def _check_shape(schema: Mapping[str, Any]) -> list[str]:
    """Depth, object count and the keywords that could name a document elsewhere; returns the patterns.

    Looks at every object in the schema, not only at subschema positions, so nothing hides a remote
    reference in a keyword this walk does not know.
    """
    patterns: list[str] = []
    objects = 0
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            objects += 1
            if objects > MAX_SCHEMA_OBJECTS:
                raise ResponseSchemaError(f"response_schema has more than {MAX_SCHEMA_OBJECTS} objects.")
            for key, value in node.items():
                if not isinstance(key, str):
                    raise ResponseSchemaError("response_schema must be plain JSON.")
                _check_keyword(key, value, at_root=node is schema)
                if key == "pattern" and isinstance(value, str):
                    patterns.append(value)
                elif key == "patternProperties" and isinstance(value, Mapping):
                    patterns.extend(str(p) for p in value)
        elif not isinstance(node, list | str | int | float | bool) and node is not None:
            raise ResponseSchemaError("response_schema must be plain JSON.")
        if isinstance(node, Mapping | list):
            if depth > MAX_SCHEMA_DEPTH:
                raise ResponseSchemaError(f"response_schema nests deeper than {MAX_SCHEMA_DEPTH} levels.")
            children = node.values() if isinstance(node, Mapping) else node
            stack.extend((child, depth + 1) for child in children if isinstance(child, Mapping | list))
    return patterns


def _check_keyword(key: str, value: Any, *, at_root: bool) -> None:
    if key in _REF_KEYWORDS and not (isinstance(value, str) and value.startswith("#")):
        raise ResponseSchemaError(
            f"'{key}' may only point into the schema itself ('#', '#/$defs/...' or '#anchor'); "
            "response_schema is data and nothing is ever fetched for it."
        )
    if key == "$id":
        raise ResponseSchemaError("response_schema may not use '$id': it is data, not a document with an address.")
    if key == "$schema" and not (at_root and isinstance(value, str) and value.rstrip("#") == DRAFT_2020_12):
        raise ResponseSchemaError(
            f"response_schema is JSON Schema 2020-12: '$schema' may only be '{DRAFT_2020_12}', at the top."
        )


def _check_patterns(patterns: list[str]) -> None:
    import regex  # only runs with a schema pay for importing it

    expansion = 0
    for pattern in patterns:
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise ResponseSchemaError(f"A pattern in response_schema is longer than {MAX_PATTERN_LENGTH} characters.")
        expansion += _expansion(pattern)
        if expansion > MAX_PATTERN_EXPANSION:
            raise ResponseSchemaError(
                f"The patterns in response_schema repeat too much (over {MAX_PATTERN_EXPANSION} atoms once "
                "counted repeats like '{n,m}' are multiplied out)."
            )
        try:
            regex.compile(pattern)
        except Exception:  # regex.error, or a parser giving up on a hostile nesting: all mean "cannot use it"
            raise ResponseSchemaError(f"The pattern '{_short(pattern)}' is not a regular expression.") from None


def _expansion(pattern: str) -> int:
    """How many atoms ``pattern`` expands to when counted repeats are multiplied out (an upper estimate).

    Compiling a pattern costs about this much: ``regex`` unrolls ``{n,m}``, nested ones multiply.
    """
    totals = [0]  # per open group, the expansion of what it holds so far
    last = 1  # expansion of the atom a quantifier would apply to
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            i += 2
            last = 1
        elif char == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":
                i += 1
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
            i += 1
            last = 1
        elif char == "(":
            totals.append(0)
            i += 1
            continue
        elif char == ")":
            last = max(totals.pop(), 1) if len(totals) > 1 else 1
            i += 1
        elif char == "{":
            end = pattern.find("}", i)
            low, _, high = pattern[i + 1 : end].partition(",") if end > i else ("", "", "")
            if (low or high) and all(not part or (part.isascii() and part.isdigit()) for part in (low, high)):
                count = int(high or low)
                totals[-1] += last * max(count - 1, 0)  # the atom itself is counted already
                last *= max(count, 1)
                i = end + 1
                continue
            i += 1
            last = 1
        else:
            i += 1
            last = 1
        totals[-1] += last
    return sum(totals)


def _check_against_meta_schema(schema: Mapping[str, Any]) -> None:
    import jsonschema  # only runs with a schema pay for importing it

    try:
        # No format checker: it would compile every pattern with ``re``; patterns are checked with
        # ``regex`` above, the engine that also runs them on answers.
        jsonschema.Draft202012Validator.check_schema(schema, format_checker=None)
    except jsonschema.SchemaError as exc:
        raise ResponseSchemaError(f"response_schema is not a valid JSON Schema: {_short(exc.message, 300)}") from None
    except RecursionError:  # cannot happen within MAX_SCHEMA_DEPTH; kept as a bound, not a 500
        raise ResponseSchemaError(f"response_schema nests deeper than {MAX_SCHEMA_DEPTH} levels.") from None


def _map_subschemas(analysis: SchemaAnalysis) -> None:
    """Find every subschema reachable from the root or a reference, its anchors, and same-value edges."""
    seen: set[int] = set()
    refs: list[tuple[Mapping[str, Any], str, str]] = []
    stack: list[Any] = [analysis.root]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping) and id(node) not in seen:
            seen.add(id(node))
            for keyword in ("$anchor", "$dynamicAnchor"):
                if isinstance(node.get(keyword), str):
                    analysis.anchors.setdefault(node[keyword], []).append(node)
            same: list[Mapping[str, Any]] = []
            for child, same_value in _subschemas(node):
                stack.append(child)
                if same_value and isinstance(child, Mapping):
                    same.append(child)
            analysis.same_value[id(node)] = same
            refs.extend((node, k, node[k]) for k in _REF_KEYWORDS if isinstance(node.get(k), str))
        if stack:
            continue
        # Pointer targets may hold more subschemas (and anchors): follow them before naming anchors.
        pointers = [r for r in refs if not _is_anchor(r[2])]
        refs = [r for r in refs if _is_anchor(r[2])]
        for owner, _, ref in pointers:
            target = analysis.resolve(ref)
            if isinstance(target, Mapping):
                analysis.same_value[id(owner)].append(target)
                stack.append(target)
        if stack:
            continue
        for owner, keyword, ref in refs:
            target = analysis.resolve(ref)
            if isinstance(target, Mapping):
                analysis.same_value[id(owner)].append(target)
            if keyword == "$dynamicRef":
                # The dynamic scope may pick any anchor of that name: count them all as targets.
                analysis.same_value[id(owner)].extend(analysis.anchors.get(ref[1:], []))
        refs = []


def _is_anchor(ref: str) -> bool:
    return ref not in ("", "#") and not ref.startswith("#/") and not ref.startswith("#%2F")


def _subschemas(node: Mapping[str, Any]) -> Iterator[tuple[Any, bool]]:
    """The subschemas of one schema object, each with whether it applies to the same value."""
    keywords: tuple[str, ...]
    for keywords, same_value in ((_SAME_VALUE_ONE, True), (_INNER_VALUE_ONE, False)):
        for keyword in keywords:
            if keyword in node:
                yield node[keyword], same_value
    for keywords, same_value in ((_SAME_VALUE_LIST, True), (_INNER_VALUE_LIST, False)):
        for keyword in keywords:
            if isinstance(node.get(keyword), list):
                for child in node[keyword]:
                    yield child, same_value
    for keywords, same_value in ((_SAME_VALUE_MAP, True), (_INNER_VALUE_MAP, False)):
        for keyword in keywords:
            if isinstance(node.get(keyword), Mapping):
                for child in node[keyword].values():
                    yield child, same_value


def _check_same_value_chains(analysis: SchemaAnalysis) -> None:
    """Refuse loops of subschemas on one value (``{"$ref": "#"}``) and chains over ``MAX_SAME_VALUE_CHAIN``.

    A loop that passes through ``properties``/``items``/... is fine (a tree schema): each turn of it
    validates a smaller part of the answer. Iterative depth-first search with memoized chain lengths.
    """
    longest: dict[int, int] = {}
    on_path: set[int] = set()
    for start in analysis.same_value:
        if start in longest:
            continue
        stack: list[tuple[int, Iterator[Mapping[str, Any]]]] = [(start, iter(analysis.same_value[start]))]
        on_path.add(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                on_path.discard(node)
                longest[node] = 1 + max((longest[id(c)] for c in analysis.same_value[node]), default=0)
                if longest[node] > MAX_SAME_VALUE_CHAIN:
                    raise ResponseSchemaError(
                        f"response_schema chains more than {MAX_SAME_VALUE_CHAIN} subschemas on one value "
                        "(through $ref, allOf, anyOf, oneOf, not, if/then/else or dependentSchemas)."
                    )
                continue
            key = id(child)
            if key in on_path:
                raise ResponseSchemaError(
                    "response_schema loops: a chain of $ref/allOf/anyOf/oneOf/not/if/then/else/dependentSchemas "
                    "comes back to the same subschema without moving on to a property or an item."
                )
            if key not in longest:
                on_path.add(key)
                stack.append((key, iter(analysis.same_value[key])))


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Validating the answer ---------------------------------------------------------------------------------


class _OverBudget(Exception):
    """Validation hit a bound; carries the message for ``AnswerRejected``."""


@dataclass
class _Budget:
    analysis: SchemaAnalysis
    evaluations_left: int = MAX_KEYWORD_EVALUATIONS
    depth: int = 0
    regex_seconds_left: float = REGEX_TOTAL_SECONDS
    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_VALIDATION_SECONDS)

    def spend(self, units: int = 1) -> None:
        self.evaluations_left -= units
        if self.evaluations_left < 0:
            raise _OverBudget(
                f"Checking the model's answer against the response schema took more than "
                f"{MAX_KEYWORD_EVALUATIONS} keyword evaluations."
            )
        if time.monotonic() > self.deadline:
            raise _OverBudget(
                f"Checking the model's answer against the response schema took longer than {MAX_VALIDATION_SECONDS} s."
            )


# The budget of the validation running on this thread (validation is synchronous).
_BUDGET: contextvars.ContextVar[_Budget] = contextvars.ContextVar("durableagent_schema_budget")


def checked_structured_value(
    response: AgentResponse, schema: Mapping[str, Any], analysis: SchemaAnalysis | None = None
) -> Any:
    """The model's structured answer, parsed and validated against ``schema`` within every bound.

    Args:
        response: The model's answer.
        schema: The caller's ``response_schema``.
        analysis: ``check_response_schema(schema)``, when the caller has it already.

    Raises:
        AnswerRejected: The answer is not JSON, does not match, or checking it hit a bound.
    """
    if analysis is None:
        try:
            analysis = check_response_schema(schema)
        except ResponseSchemaError as exc:
            raise AnswerRejected(f"The response schema was refused: {exc}") from None
    value = structured_value(response)
    validate_answer(value, analysis)
    return value


def structured_value(response: AgentResponse) -> Any:
    """The model's answer parsed as JSON, within ``MAX_ANSWER_BYTES`` and ``MAX_ANSWER_DEPTH``.

    Raises:
        AnswerRejected: The answer is too large, too deep, or not JSON.
    """
    text = response.text
    if len(text) > MAX_ANSWER_BYTES or len(raw := text.encode("utf-8")) > MAX_ANSWER_BYTES:
        raise AnswerRejected(f"The model's answer is larger than {MAX_ANSWER_BYTES} bytes.")
    # The linear scan the request bodies get: nothing deeper is ever parsed, so no RecursionError either.
    if json_depth(raw) > MAX_ANSWER_DEPTH:
        raise AnswerRejected(f"The model's answer nests deeper than {MAX_ANSWER_DEPTH} levels.")
    try:
        value = response.value
    except Exception:  # not JSON by the framework's reading: try the whole text below
        value = None
    if value is None:
        try:
            value = json.loads(text)
        except ValueError:
            raise AnswerRejected("The model's answer is not JSON, but a response schema was requested.") from None
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return value


def validate_answer(value: Any, analysis: SchemaAnalysis) -> None:
    """Validate a parsed answer against a checked schema, within the evaluation and regex budgets.

    Raises:
        AnswerRejected: The answer does not match, or checking it hit a bound (the message says which).
    """
    import jsonschema  # only runs with a schema pay for importing it
    import referencing
    import referencing.exceptions

    def refuse_retrieval(uri: str) -> Any:
        # Defence in depth: check_response_schema allows only local references, and even a schema that
        # slipped past it can never make this process fetch anything.
        raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]

    registry: Any = referencing.Registry(retrieve=refuse_retrieval)  # type: ignore[call-arg]
    validator = _validator_class()(analysis.root, registry=registry)
    token = _BUDGET.set(_Budget(analysis))
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except _OverBudget as exc:
        raise AnswerRejected(str(exc)) from None
    except RecursionError:  # MAX_EVALUATION_DEPTH should stop it first; still a bound, never a 500
        raise AnswerRejected("Checking the model's answer against the response schema nested too deeply.") from None
    except referencing.exceptions.Unresolvable:
        raise AnswerRejected("The response schema refers to something outside itself.") from None
    finally:
        _BUDGET.reset(token)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise AnswerRejected(f"The model's answer does not match the response schema at {where}.")


_VALIDATOR: Any = None


def _validator_class() -> Any:
    """Draft 2020-12 with every keyword counted and the regex keywords run in ``regex`` with timeouts."""
    global _VALIDATOR
    if _VALIDATOR is None:
        from jsonschema import Draft202012Validator, validators

        own: dict[str, Callable[..., Any]] = {
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
            "unevaluatedProperties": _unevaluated_properties,
            "unevaluatedItems": _unevaluated_items,
            "uniqueItems": _unique_items,
        }
        keywords = {k: _counted(own.get(k, fn), k) for k, fn in Draft202012Validator.VALIDATORS.items()}
        _VALIDATOR = validators.extend(Draft202012Validator, validators=keywords)
    return _VALIDATOR


def _counted(keyword: Callable[..., Any], name: str) -> Callable[..., Any]:
    # enum compares the value with each listed one: one evaluation per entry.
    weighed = name == "enum"

    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        budget = _BUDGET.get()
        budget.spend(1 + (len(value) if weighed and isinstance(value, list) else 0))
        budget.depth += 1
        try:
            if budget.depth > MAX_EVALUATION_DEPTH:
                raise _OverBudget(
                    "Checking the model's answer against the response schema nested more than "
                    f"{MAX_EVALUATION_DEPTH} keyword evaluations."
                )
            errors = keyword(validator, value, instance, schema)
            if errors is not None:
                yield from errors
        finally:
            budget.depth -= 1

    return run


def _search(pattern: str, text: str) -> bool:
    import regex  # only runs with a schema pay for importing it

    budget = _BUDGET.get()
    budget.spend()
    timeout = min(REGEX_MATCH_SECONDS, budget.regex_seconds_left)
    if timeout <= 0:
        raise _OverBudget(
            f"The response schema's patterns ran longer than {REGEX_TOTAL_SECONDS} s on the model's answer."
        )
    started = time.monotonic()
    try:
        # concurrent: the GIL is released while it runs, so a slow pattern never holds up other requests.
        return regex.search(pattern, text, timeout=timeout, concurrent=True) is not None
    except TimeoutError:
        raise _OverBudget(
            f"A pattern of the response schema ran longer than {timeout * 1000:.0f} ms on the model's answer."
        ) from None
    except Exception:  # cannot compile: check_response_schema refuses these, so only an unchecked schema
        raise _OverBudget(
            f"The pattern '{_short(pattern)}' of the response schema is not a regular expression."
        ) from None
    finally:
        budget.regex_seconds_left -= time.monotonic() - started


def _error(message: str) -> Any:
    from jsonschema import ValidationError

    return ValidationError(message)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if isinstance(instance, str) and not _search(pattern, instance):
        yield _error(f"does not match the pattern '{_short(pattern)}'")


def _pattern_properties(validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any) -> Iterator[Any]:
    if not isinstance(instance, dict):
        return
    for pattern, subschema in patterns.items():
        for key, item in instance.items():
            if _search(pattern, key):
                yield from validator.descend(item, subschema, path=key, schema_path=pattern)


def _declared(key: str, schema: Mapping[str, Any]) -> bool:
    """Whether ``properties`` or ``patternProperties`` of ``schema`` cover ``key``."""
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and key in properties:
        return True
    patterns = schema.get("patternProperties")
    return isinstance(patterns, Mapping) and any(_search(p, key) for p in patterns)


def _additional_properties(validator: Any, additional: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not isinstance(instance, dict):
        return
    extras = [key for key in instance if not _declared(key, schema)]
    yield from _other_properties(validator, additional, instance, extras, "additional")


def _valid(errors: Iterator[Any]) -> bool:
    return next(errors, None) is None


def _evaluated(validator: Any, instance: Any, schema: Any) -> set[Any]:
    """The property names (object) or indexes (array) that ``schema``'s keywords evaluate in ``instance``.

    The annotation rules of ``unevaluatedProperties``/``unevaluatedItems``, walked with an explicit
    stack, each step counted (so fan-out through references cannot escape the budget); the schema's own
    ``unevaluated*`` keyword is left out, since it is what asks.
    """
    analysis_refs = _REF_KEYWORDS[:2]
    is_object = isinstance(instance, dict)
    evaluated: set[Any] = set()
    stack: list[tuple[Any, bool]] = [(schema, True)]
    budget = _BUDGET.get()
    while stack:
        node, is_top = stack.pop()
        budget.spend()
        if not isinstance(node, Mapping):
            continue
        for keyword in analysis_refs:
            ref = node.get(keyword)
            if isinstance(ref, str):
                # No $id is allowed, so every reference resolves against the root.
                stack.append((budget.analysis.resolve(ref), False))
        if is_object:
            evaluated.update(k for k in instance if _declared(k, node))
            if "additionalProperties" in node:
                evaluated.update(
                    k
                    for k in instance
                    if not _declared(k, node) and _valid(validator.descend(instance[k], node["additionalProperties"]))
                )
            if not is_top and "unevaluatedProperties" in node:
                unevaluated = node["unevaluatedProperties"]
                evaluated.update(k for k in instance if _valid(validator.descend(instance[k], unevaluated)))
            dependent = node.get("dependentSchemas")
            if isinstance(dependent, Mapping):
                stack.extend((sub, False) for name, sub in dependent.items() if name in instance)
        else:
            prefix = node.get("prefixItems")
            if "items" in node:
                evaluated.update(range(len(instance)))
            elif isinstance(prefix, list):
                evaluated.update(range(min(len(prefix), len(instance))))
            keywords = ["contains"] + ([] if is_top else ["unevaluatedItems"])
            for keyword in keywords:
                if keyword in node:
                    evaluated.update(
                        i for i, item in enumerate(instance) if _valid(validator.descend(item, node[keyword]))
                    )
        for keyword in _SAME_VALUE_LIST:
            for sub in node.get(keyword) or ():
                if _valid(validator.descend(instance, sub)):
                    stack.append((sub, False))
        if "if" in node:
            if _valid(validator.descend(instance, node["if"])):
                stack.append((node["if"], False))
                if "then" in node:
                    stack.append((node["then"], False))
            elif "else" in node:
                stack.append((node["else"], False))
    return evaluated


def _unevaluated_properties(validator: Any, unevaluated: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not isinstance(instance, dict):
        return
    evaluated = _evaluated(validator, instance, schema)
    extras = [key for key in instance if key not in evaluated]
    yield from _other_properties(validator, unevaluated, instance, extras, "unevaluated")


def _other_properties(validator: Any, subschema: Any, instance: Any, extras: list[str], kind: str) -> Iterator[Any]:
    """``additionalProperties``/``unevaluatedProperties``: ``false`` refuses ``extras``, a schema checks each."""
    if subschema is False:
        if extras:
            yield _error(f"{kind} properties are not allowed ({', '.join(map(repr, extras[:5]))})")
        return
    for key in extras:
        yield from validator.descend(instance[key], subschema, path=key)


def _unevaluated_items(validator: Any, unevaluated: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not isinstance(instance, list):
        return
    evaluated = _evaluated(validator, instance, schema)
    extras = [index for index in range(len(instance)) if index not in evaluated]
    if unevaluated is False:
        if extras:
            yield _error("unevaluated items are not allowed")
        return
    for index in extras:
        yield from validator.descend(instance[index], unevaluated, path=index)


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[Any]:
    # Linear (a set of canonical forms) where comparing every pair would be quadratic in the items.
    if unique is not True or not isinstance(instance, list):
        return
    _BUDGET.get().spend(len(instance))
    seen: set[Any] = set()
    for item in instance:
        key = _canonical(item)
        if key in seen:
            yield _error("has non-unique elements")
            return
        seen.add(key)


def _canonical(value: Any) -> Any:
    """A hashable form under JSON Schema equality: 1 equals 1.0, true does not equal 1, key order is moot."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)  # 1 == 1.0 and they hash alike
    if isinstance(value, list):
        return ("array", tuple(_canonical(item) for item in value))  # depth <= MAX_ANSWER_DEPTH
    if isinstance(value, dict):
        return ("object", frozenset((key, _canonical(item)) for key, item in value.items()))
    return (type(value).__name__, value)
