"""ASP.NET Core route templates, as the Functions host matches HTTP-trigger routes.

Supported: literal segments (case-insensitive), ``{name}``, ``{name?}``, ``{name=default}``, inline
constraints (``{id:int}``, ``{x:alpha}``, ``{x:length(3)}``, ``{x:regex(^a+$)}`` ...), catch-alls
(``{*rest}``, ``{**rest}``) and complex segments such as ``{name}.{ext?}``. The route table orders
routes by ASP.NET's inbound precedence, so literals beat parameters and parameters beat catch-alls.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import unquote

from ._isotime import parse_iso_datetime

__all__ = [
    "MethodNotAllowed",
    "RouteMatch",
    "RouteParameter",
    "RouteTable",
    "RouteTemplate",
    "RouteTemplateError",
    "join_route",
    "parse_template",
    "split_path",
]

T = TypeVar("T")


class RouteTemplateError(ValueError):
    """A route template the host would refuse to register."""


# ---------------------------------------------------------------------------------------------
# Constraints (ASP.NET Core's DefaultInlineConstraintResolver map)
# ---------------------------------------------------------------------------------------------

Check = Callable[[str], bool]

_INT = re.compile(r"^\s*[+-]?\d+\s*$")
_FLOAT = re.compile(r"^\s*[+-]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$")
_DECIMAL = re.compile(r"^\s*[+-]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)\s*$")
_ALPHA = re.compile(r"^[a-z]*$", re.IGNORECASE)
_GUID_FORMS = (
    re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE),
    re.compile(r"^[0-9a-f]{32}$", re.IGNORECASE),
    re.compile(r"^\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}$", re.IGNORECASE),
    re.compile(r"^\([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\)$", re.IGNORECASE),
)


def _integer_in(bits: int) -> Check:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return lambda value: bool(_INT.match(value)) and low <= int(value) <= high


def _is_double(value: str) -> bool:
    if value.strip() in ("NaN", "Infinity", "-Infinity", "∞", "-∞"):
        return True
    if not _FLOAT.match(value):
        return False
    return math.isfinite(float(value.replace(",", "")))


def _is_guid(value: str) -> bool:
    return any(form.match(value.strip()) for form in _GUID_FORMS)


def _is_bool(value: str) -> bool:
    return value.strip().lower() in ("true", "false")


def _is_datetime(value: str) -> bool:
    try:
        parse_iso_datetime(value)
    except ValueError:
        return False
    return True


def _as_int(name: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise RouteTemplateError(f"constraint '{name}' needs integer arguments, got {text!r}") from None


def _ranged(value: str, low: int, high: int) -> bool:
    return bool(_INT.match(value)) and low <= int(value) <= high


def _bounded_length(low: int, high: int) -> Check:
    return lambda value: low <= len(value) <= high


def _is_file(value: str) -> bool:
    last = value.rsplit("/", 1)[-1]
    dot = last.rfind(".")
    return 0 < dot < len(last) - 1


def _build_constraint(name: str, args: list[str] | None) -> Check:
    lowered = name.lower()
    simple: dict[str, Check] = {
        "int": _integer_in(32),
        "long": _integer_in(64),
        "bool": _is_bool,
        "double": _is_double,
        "float": _is_double,
        "decimal": lambda v: bool(_DECIMAL.match(v)),
        "guid": _is_guid,
        "datetime": _is_datetime,
        "alpha": lambda v: bool(_ALPHA.match(v)),
        "required": lambda v: v != "",
        "file": _is_file,
        "nonfile": lambda v: not _is_file(v),
    }
    if lowered in simple:
        if args is not None:
            raise RouteTemplateError(f"constraint '{name}' takes no arguments")
        return simple[lowered]
    if lowered == "regex":
        if args is None:
            raise RouteTemplateError("constraint 'regex' needs a pattern")
        pattern = ",".join(args)
        try:
            # ASP.NET's regex constraint is case-insensitive and not anchored.
            compiled = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise RouteTemplateError(f"constraint 'regex({pattern})' is not a valid pattern: {exc}") from None
        return lambda v: compiled.search(v) is not None
    numeric: dict[str, tuple[int, Callable[[list[int]], Check]]] = {
        "minlength": (1, lambda a: lambda v: len(v) >= a[0]),
        "maxlength": (1, lambda a: lambda v: len(v) <= a[0]),
        "min": (1, lambda a: lambda v: _ranged(v, a[0], 2**63 - 1)),
        "max": (1, lambda a: lambda v: _ranged(v, -(2**63), a[0])),
        "range": (2, lambda a: lambda v: _ranged(v, a[0], a[1])),
    }
    if lowered == "length":
        values = [_as_int(name, a) for a in args or []]
        if len(values) == 1:
            return _bounded_length(values[0], values[0])
        if len(values) == 2:
            return _bounded_length(values[0], values[1])
        raise RouteTemplateError("constraint 'length' takes one or two integer arguments")
    if lowered in numeric:
        count, factory = numeric[lowered]
        values = [_as_int(name, a) for a in args or []]
        if len(values) != count:
            raise RouteTemplateError(f"constraint '{name}' takes {count} integer argument(s)")
        return factory(values)
    raise RouteTemplateError(f"the constraint '{name}' could not be resolved")


# ---------------------------------------------------------------------------------------------
# Template model and parser
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteParameter:
    """One ``{...}`` of a template.

    Attributes:
        name: The parameter name as written.
        optional: ``{name?}``.
        catch_all: ``{*name}`` or ``{**name}``: the rest of the path, slashes included.
        default: ``{name=default}``.
        constraints: The constraint texts as written, e.g. ``("int", "min(1)")``.
    """

    name: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    constraints: tuple[str, ...] = ()
    checks: tuple[Check, ...] = field(default=(), compare=False, repr=False)

    def accepts(self, value: str) -> bool:
        """Whether ``value`` satisfies every inline constraint."""
        return all(check(value) for check in self.checks)


Part = str | RouteParameter


@dataclass(frozen=True)
class _Segment:
    parts: tuple[Part, ...]
    pattern: re.Pattern[str] | None = field(default=None, compare=False)
    # For a complex segment ending in "literal{optional}", the same segment without that tail.
    short_pattern: re.Pattern[str] | None = field(default=None, compare=False)

    @property
    def literal(self) -> str | None:
        if len(self.parts) == 1 and isinstance(self.parts[0], str):
            return self.parts[0]
        return None

    @property
    def parameter(self) -> RouteParameter | None:
        if len(self.parts) == 1 and isinstance(self.parts[0], RouteParameter):
            return self.parts[0]
        return None


_NAME_FORBIDDEN = set("/{}=?*")


def _split_constraint_text(text: str) -> list[str]:
    """Split ``int:min(1):regex(a:b)`` at the colons that separate constraints."""
    return _split_outside(text, ":", "(", ")")


def _split_outside(text: str, separator: str, opening: str, closing: str) -> list[str]:
    """Split ``text`` at ``separator`` wherever it is not inside ``opening``/``closing`` pairs."""
    pieces: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == opening:
            depth += 1
        elif ch == closing and depth:
            depth -= 1
        if ch == separator and depth == 0:
            pieces.append("".join(current))
            current = []
        else:
            current.append(ch)
    pieces.append("".join(current))
    return pieces


def _parse_constraint(text: str) -> tuple[str, Check]:
    match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:\((.*)\))?", text, re.DOTALL)
    if match is None:
        raise RouteTemplateError(f"the constraint '{text}' is not valid")
    name, raw_args = match.group(1), match.group(2)
    if name.lower() == "regex" and raw_args is not None:
        args: list[str] | None = [raw_args]
    else:
        args = None if raw_args is None else [a for a in raw_args.split(",")]
    return text, _build_constraint(name, args)


def _parse_parameter(body: str, template: str) -> RouteParameter:
    catch_all = False
    if body.startswith("**"):
        catch_all, body = True, body[2:]
    elif body.startswith("*"):
        catch_all, body = True, body[1:]
    default: str | None = None
    optional = False
    # The default value is everything after the first '=' that is not inside a constraint's parentheses.
    depth = 0
    for index, ch in enumerate(body):
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif ch == "=" and depth == 0:
            body, default = body[:index], body[index + 1 :]
            break
    if default is None and body.endswith("?"):
        optional, body = True, body[:-1]
    name, _, constraint_text = body.partition(":")
    if not name or any(ch in _NAME_FORBIDDEN for ch in name):
        raise RouteTemplateError(f"the route template '{template}' has an invalid parameter name {name!r}")
    if optional and default is not None:
        raise RouteTemplateError(f"parameter '{name}' in '{template}' cannot be both optional and have a default")
    if catch_all and optional:
        raise RouteTemplateError(f"catch-all parameter '{name}' in '{template}' cannot be marked optional")
    constraints: list[tuple[str, Check]] = []
    if constraint_text:
        constraints = [_parse_constraint(piece) for piece in _split_constraint_text(constraint_text)]
    return RouteParameter(
        name=name,
        optional=optional,
        catch_all=catch_all,
        default=default,
        constraints=tuple(text for text, _ in constraints),
        checks=tuple(check for _, check in constraints),
    )


def _parse_segment(text: str, template: str) -> list[Part]:
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif ch == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif ch == "{":
            end = i + 1
            while end < len(text):
                if text.startswith("}}", end):
                    end += 2  # an escaped brace inside a constraint, e.g. regex(^\d{{3}}$)
                    continue
                if text[end] == "}":
                    break
                end += 1
            if end >= len(text):
                raise RouteTemplateError(f"the route template '{template}' has an unclosed '{{'")
            if literal:
                parts.append("".join(literal))
                literal = []
            if parts and isinstance(parts[-1], RouteParameter):
                raise RouteTemplateError(
                    f"the route template '{template}' has two consecutive parameters in one segment"
                )
            body = text[i + 1 : end].replace("{{", "{").replace("}}", "}")
            parts.append(_parse_parameter(body, template))
            i = end + 1
        elif ch == "}":
            raise RouteTemplateError(f"the route template '{template}' has an unmatched '}}'")
        else:
            if ch == "?":
                raise RouteTemplateError(f"the literal section in '{template}' cannot contain '?'")
            literal.append(ch)
            i += 1
    if literal:
        parts.append("".join(literal))
    return parts


def _segment_regex(parts: Sequence[Part]) -> re.Pattern[str]:
    pieces: list[str] = []
    for index, part in enumerate(parts):
        if isinstance(part, str):
            pieces.append(re.escape(part))
        else:
            # Greedy groups match the way ASP.NET does: complex segments bind from the right.
            pieces.append(f"(?P<p{index}>.+)")
    return re.compile("^" + "".join(pieces) + "$", re.IGNORECASE | re.DOTALL)


def _build_segment(parts: list[Part]) -> _Segment:
    if len(parts) == 1:
        return _Segment(tuple(parts))
    short: re.Pattern[str] | None = None
    last = parts[-1]
    if isinstance(last, RouteParameter) and (last.optional or last.default is not None):
        short = _segment_regex(parts[:-2])
    return _Segment(tuple(parts), pattern=_segment_regex(parts), short_pattern=short)


def _validate(segments: Sequence[_Segment], template: str) -> None:
    seen: set[str] = set()
    for index, segment in enumerate(segments):
        is_last = index == len(segments) - 1
        params = [p for p in segment.parts if isinstance(p, RouteParameter)]
        for param in params:
            if param.name.lower() in seen:
                raise RouteTemplateError(f"the route parameter '{param.name}' appears more than once in '{template}'")
            seen.add(param.name.lower())
            if param.catch_all and (not is_last or len(segment.parts) != 1):
                raise RouteTemplateError(f"a catch-all parameter can only be the last segment of '{template}'")
        if len(segment.parts) > 1:
            for position, part in enumerate(segment.parts):
                if isinstance(part, RouteParameter) and part.optional:
                    preceded_by_dot = position > 0 and segment.parts[position - 1] == "."
                    if position != len(segment.parts) - 1 or not preceded_by_dot:
                        raise RouteTemplateError(
                            f"in '{template}', an optional parameter in a complex segment must be last "
                            "and follow a period"
                        )
        single = segment.parameter
        if single is not None and single.optional and not is_last:
            raise RouteTemplateError(f"an optional parameter must be at the end of '{template}'")


@dataclass(frozen=True)
class RouteTemplate:
    """A parsed route template.

    Attributes:
        text: The template as given (without leading/trailing slashes).
    """

    text: str
    segments: tuple[_Segment, ...]

    @property
    def parameters(self) -> tuple[RouteParameter, ...]:
        """Every parameter, in template order."""
        return tuple(p for s in self.segments for p in s.parts if isinstance(p, RouteParameter))

    @property
    def shape(self) -> str:
        """The template with literals lower-cased and parameters reduced to their kind.

        Two templates with the same shape match the same URLs, so registering both is a conflict.
        """
        rendered: list[str] = []
        for segment in self.segments:
            text = ""
            for part in segment.parts:
                if isinstance(part, str):
                    text += part.lower()
                elif part.catch_all:
                    text += "{*}"
                elif part.optional or part.default is not None:
                    text += "{?}"
                else:
                    text += "{}"
            rendered.append(text)
        return "/".join(rendered)

    @property
    def precedence(self) -> tuple[int, ...]:
        """ASP.NET's inbound precedence, one digit per segment; lower sorts first (more specific).

        1 literal, 2 complex segment, 3 constrained parameter, 4 parameter, 5 catch-all.
        """
        digits: list[int] = []
        for segment in self.segments:
            param = segment.parameter
            if segment.literal is not None:
                digits.append(1)
            elif param is None:
                digits.append(2)
            elif param.catch_all:
                digits.append(5)
            elif param.constraints:
                digits.append(3)
            else:
                digits.append(4)
        return tuple(digits)

    def match(self, path_segments: Sequence[str]) -> dict[str, str] | None:
        """Match decoded path segments; return the route values, or ``None``.

        Values of optional parameters that are absent are left out; defaults are filled in.
        """
        values: dict[str, str] = {}
        count = len(path_segments)
        for index, segment in enumerate(self.segments):
            param = segment.parameter
            if param is not None and param.catch_all:
                rest = "/".join(path_segments[index:])
                if rest:
                    if not param.accepts(rest):
                        return None
                    values[param.name] = rest
                elif param.default is not None:
                    values[param.name] = param.default
                return values
            if index >= count:
                if not self._fill_missing(self.segments[index:], values):
                    return None
                return values
            if not self._match_segment(segment, path_segments[index], values):
                return None
        return values if count == len(self.segments) else None

    @staticmethod
    def _fill_missing(segments: Sequence[_Segment], values: dict[str, str]) -> bool:
        for segment in segments:
            param = segment.parameter
            if param is None or not (param.optional or param.catch_all or param.default is not None):
                return False
            if param.default is not None:
                values[param.name] = param.default
        return True

    @staticmethod
    def _match_segment(segment: _Segment, text: str, values: dict[str, str]) -> bool:
        literal = segment.literal
        if literal is not None:
            return text.lower() == literal.lower()
        param = segment.parameter
        if param is not None:
            if text == "" or not param.accepts(text):
                return False
            values[param.name] = text
            return True
        for pattern in (segment.pattern, segment.short_pattern):
            if pattern is None:
                continue
            found = pattern.match(text)
            if found is None:
                continue
            captured: dict[str, str] = {}
            for index, part in enumerate(segment.parts):
                group = f"p{index}"
                if isinstance(part, RouteParameter) and group in found.groupdict():
                    value = found.group(group)
                    if not part.accepts(value):
                        break
                    captured[part.name] = value
            else:
                last = segment.parts[-1]
                if pattern is segment.short_pattern and isinstance(last, RouteParameter) and last.default:
                    captured[last.name] = last.default
                values.update(captured)
                return True
        return False


def parse_template(text: str) -> RouteTemplate:
    """Parse an ASP.NET route template such as ``"items/{id:int}/{*rest}"``.

    Raises:
        RouteTemplateError: The template is malformed or uses an unknown constraint.
    """
    stripped = text.strip().strip("/")
    if stripped.startswith("~"):
        raise RouteTemplateError(f"the route template '{text}' cannot start with '~'")
    if not stripped:
        return RouteTemplate(text="", segments=())
    raw_segments = _split_template(stripped)
    segments: list[_Segment] = []
    for raw in raw_segments:
        if raw == "":
            raise RouteTemplateError(f"the route template '{text}' contains an empty segment ('//')")
        segments.append(_build_segment(_parse_segment(raw, text)))
    _validate(segments, text)
    return RouteTemplate(text=stripped, segments=tuple(segments))


def _split_template(text: str) -> list[str]:
    """Split at '/' outside braces, so a constraint such as ``regex(a/b)`` stays whole."""
    return _split_outside(text, "/", "{", "}")


def join_route(prefix: str, route: str) -> str:
    """The full template of a function route: ``routePrefix`` + ``/`` + route (either may be empty)."""
    parts = [piece.strip("/") for piece in (prefix, route)]
    return "/".join(piece for piece in parts if piece)


def split_path(raw_path: str) -> list[str]:
    """Split a raw (percent-encoded) URL path into decoded segments.

    A trailing slash is ignored, as ASP.NET routing does; ``%2F`` stays inside its segment as ``/``.
    """
    path = raw_path.split("?", 1)[0].strip("/")
    if not path:
        return []
    return [unquote(piece) for piece in path.split("/")]


# ---------------------------------------------------------------------------------------------
# Route table
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteMatch(Generic[T]):
    """A request that found its route: the registered target and the route values."""

    target: T
    params: dict[str, str]
    template: RouteTemplate


@dataclass(frozen=True)
class MethodNotAllowed:
    """The path matched at least one route, but none accepts the request's method."""

    allowed: frozenset[str]


@dataclass(frozen=True)
class _Entry(Generic[T]):
    template: RouteTemplate
    methods: frozenset[str] | None
    target: T
    order: int


class RouteTable(Generic[T]):
    """Routes with method filters, matched most-specific first."""

    def __init__(self) -> None:
        self._entries: list[_Entry[T]] = []

    def add(self, template: str | RouteTemplate, target: T, methods: Iterable[str] | None = None) -> RouteTemplate:
        """Register a route.

        Args:
            template: The full template (prefix included) or an already parsed one.
            target: What a match returns.
            methods: Allowed HTTP methods (any case); ``None`` or empty means every method.

        Raises:
            RouteTemplateError: The template is malformed.
        """
        parsed = parse_template(template) if isinstance(template, str) else template
        allowed = frozenset(m.upper() for m in methods) if methods else None
        self._entries.append(_Entry(parsed, allowed, target, len(self._entries)))
        self._entries.sort(key=lambda e: (e.template.precedence, e.template.text.lower(), e.order))
        return parsed

    def lookup(self, method: str, raw_path: str) -> RouteMatch[T] | MethodNotAllowed | None:
        """Find the route for a request.

        Returns:
            The match; :class:`MethodNotAllowed` when only the method is wrong; ``None`` when no
            route matches the path.
        """
        segments = split_path(raw_path)
        verb = method.upper()
        allowed: set[str] = set()
        for entry in self._entries:
            params = entry.template.match(segments)
            if params is None:
                continue
            if entry.methods is None or verb in entry.methods:
                return RouteMatch(entry.target, params, entry.template)
            allowed.update(entry.methods)
        return MethodNotAllowed(frozenset(allowed)) if allowed else None
