"""ASP.NET route templates and the most-specific-first route table."""

from __future__ import annotations

import pytest

from durableagent.devhost._routes import (
    MethodNotAllowed,
    RouteMatch,
    RouteTable,
    RouteTemplateError,
    join_route,
    parse_template,
    split_path,
)


def match(template: str, path: str) -> dict[str, str] | None:
    return parse_template(template).match(split_path(path))


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------


def test_literals_are_case_insensitive() -> None:
    assert match("api/Items", "/API/items") == {}
    assert match("api/items", "/api/other") is None
    assert match("api/items", "/api/items/extra") is None
    assert match("api/items", "/api") is None


def test_trailing_slash_is_ignored() -> None:
    assert match("api/items", "/api/items/") == {}


def test_parameters() -> None:
    assert match("api/items/{id}", "/api/items/42") == {"id": "42"}
    assert match("api/{a}/{b}", "/api/x/y") == {"a": "x", "b": "y"}
    assert match("api/items/{id}", "/api/items") is None


def test_parameter_values_are_percent_decoded() -> None:
    assert match("api/{name}", "/api/hello%20world") == {"name": "hello world"}
    # %2F does not split the segment.
    assert match("api/{name}", "/api/a%2Fb") == {"name": "a/b"}


def test_optional_parameter() -> None:
    assert match("api/items/{id?}", "/api/items/7") == {"id": "7"}
    assert match("api/items/{id?}", "/api/items") == {}


def test_default_value() -> None:
    assert match("api/items/{page=1}", "/api/items") == {"page": "1"}
    assert match("api/items/{page=1}", "/api/items/3") == {"page": "3"}


def test_catch_all() -> None:
    assert match("api/files/{*path}", "/api/files/a/b/c.txt") == {"path": "a/b/c.txt"}
    assert match("api/files/{**path}", "/api/files/a/b") == {"path": "a/b"}
    assert match("api/files/{*path}", "/api/files") == {}
    assert match("{*all}", "/anything/at/all") == {"all": "anything/at/all"}


def test_complex_segment() -> None:
    assert match("api/files/{name}.{ext}", "/api/files/report.pdf") == {"name": "report", "ext": "pdf"}
    # Complex segments bind from the right, like ASP.NET.
    assert match("api/files/{name}.{ext}", "/api/files/a.b.c") == {"name": "a.b", "ext": "c"}
    assert match("api/files/{name}.{ext?}", "/api/files/readme") == {"name": "readme"}
    assert match("api/files/{name}.{ext?}", "/api/files/readme.md") == {"name": "readme", "ext": "md"}
    assert match("api/v{version:int}", "/api/v2") == {"version": "2"}
    assert match("api/v{version:int}", "/api/vx") is None


@pytest.mark.parametrize(
    ("constraint", "accepted", "rejected"),
    [
        ("int", ["42", "-7", "+3", "2147483647"], ["4.2", "x", "2147483648"]),
        ("long", ["9223372036854775807", "-1"], ["9223372036854775808", "1e3"]),
        ("bool", ["true", "False"], ["yes", "1"]),
        ("double", ["1.5", "-2", "1e10", "1,000.5", "NaN"], ["abc", "1.2.3"]),
        ("float", ["3.14"], ["pi"]),
        ("decimal", ["10.25"], ["1e3"]),
        ("alpha", ["abc", "ABC"], ["abc1", "a-b"]),
        (
            "guid",
            [
                "0f8fad5b-d9cb-469f-a165-70867728950e",
                "0F8FAD5BD9CB469FA16570867728950E",
                "{0f8fad5b-d9cb-469f-a165-70867728950e}",
                "(0f8fad5b-d9cb-469f-a165-70867728950e)",
            ],
            ["0f8fad5b-d9cb-469f-a165", "not-a-guid"],
        ),
        (
            "datetime",
            ["2024-01-31", "2024-01-31T10:00:00Z", "2024-01-31T10:00:00.1234567Z", "2024-01-31T10:00:00.5+02:00"],
            ["yesterday", "2024-01-31T25:00:00Z"],
        ),
        ("length(3)", ["abc"], ["ab", "abcd"]),
        ("length(2,3)", ["ab", "abc"], ["a", "abcd"]),
        ("minlength(2)", ["ab", "abcdef"], ["a"]),
        ("maxlength(2)", ["a", "ab"], ["abc"]),
        ("min(10)", ["10", "99"], ["9", "x"]),
        ("max(10)", ["10", "-5"], ["11"]),
        ("range(1,5)", ["1", "5"], ["0", "6"]),
        ("regex(^a+$)", ["aaa", "AA"], ["ab"]),
        ("regex(b)", ["abc"], ["xyz"]),
        ("int:min(5)", ["5"], ["4", "x"]),
    ],
)
def test_constraints(constraint: str, accepted: list[str], rejected: list[str]) -> None:
    template = parse_template(f"api/{{value:{constraint}}}")
    for value in accepted:
        assert template.match(["api", value]) == {"value": value}, value
    for value in rejected:
        assert template.match(["api", value]) is None, value


def test_regex_with_escaped_braces() -> None:
    template = parse_template(r"api/{zip:regex(^\d{{5}}$)}")
    assert template.match(["api", "12345"]) == {"zip": "12345"}
    assert template.match(["api", "1234"]) is None


def test_optional_constrained_parameter() -> None:
    assert match("api/items/{id:int?}", "/api/items") == {}
    assert match("api/items/{id:int?}", "/api/items/5") == {"id": "5"}
    assert match("api/items/{id:int?}", "/api/items/x") is None


@pytest.mark.parametrize(
    "template",
    [
        "api/{id:unknown}",
        "api/{id",
        "api/id}",
        "api//items",
        "api/{a}/{A}",
        "api/{*rest}/more",
        "api/{id?}/more",
        "api/{a}{b}",
        "api/x?y",
        "api/{}",
        "api/{id:length(a)}",
        "~/api",
    ],
)
def test_invalid_templates(template: str) -> None:
    with pytest.raises(RouteTemplateError):
        parse_template(template)


def test_shape_ignores_parameter_names_constraints_and_case() -> None:
    assert parse_template("Items/{id:int}").shape == parse_template("items/{key}").shape
    assert parse_template("items/{id?}").shape != parse_template("items/{id}").shape
    assert parse_template("items/{*rest}").shape != parse_template("items/{id}").shape


def test_join_route() -> None:
    assert join_route("api", "items") == "api/items"
    assert join_route("", "items") == "items"
    assert join_route("/api/", "/items/") == "api/items"
    assert join_route("api", "") == "api"


# ---------------------------------------------------------------------------------------------
# Route table
# ---------------------------------------------------------------------------------------------


def lookup(table: RouteTable[str], method: str, path: str) -> RouteMatch[str]:
    found = table.lookup(method, path)
    assert isinstance(found, RouteMatch), found
    return found


def test_literals_beat_parameters_beat_catch_alls() -> None:
    table: RouteTable[str] = RouteTable()
    # Registered least specific first, so order of registration cannot be what decides.
    table.add("api/{*rest}", "catch-all")
    table.add("api/items/{id}", "parameter")
    table.add("api/items/{id:int}", "constrained")
    table.add("api/items/special", "literal")
    assert lookup(table, "GET", "/api/items/special").target == "literal"
    assert lookup(table, "GET", "/api/items/12").target == "constrained"
    assert lookup(table, "GET", "/api/items/abc").target == "parameter"
    assert lookup(table, "GET", "/api/other/x/y").target == "catch-all"
    assert lookup(table, "GET", "/api/items/abc").params == {"id": "abc"}


def test_method_filters() -> None:
    table: RouteTable[str] = RouteTable()
    table.add("api/items", "list", ["get"])
    table.add("api/items", "create", ["POST"])
    table.add("api/any", "any")
    assert lookup(table, "GET", "/api/items").target == "list"
    assert lookup(table, "post", "/api/items").target == "create"
    assert lookup(table, "DELETE", "/api/any").target == "any"
    refused = table.lookup("DELETE", "/api/items")
    assert refused == MethodNotAllowed(frozenset({"GET", "POST"}))
    assert table.lookup("GET", "/api/nothing") is None


def test_a_less_specific_route_serves_a_method_the_specific_one_refuses() -> None:
    table: RouteTable[str] = RouteTable()
    table.add("api/items/special", "literal", ["GET"])
    table.add("api/items/{id}", "parameter", ["POST"])
    assert lookup(table, "POST", "/api/items/special").target == "parameter"


def test_empty_prefix() -> None:
    table: RouteTable[str] = RouteTable()
    table.add(join_route("", "hello/{name}"), "hello")
    assert lookup(table, "GET", "/hello/World").params == {"name": "World"}
    assert table.lookup("GET", "/api/hello/World") is None
