"""Binding expressions: ``{name}`` templates captured from blob paths and filled from binding data."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from azure.functions.meta import Datum

from durableagent.devhost._binding_expressions import (
    BindingData,
    BindingExpressionError,
    TemplateFormatError,
    bind,
    binding_data_for,
    capture,
    parameter_names,
)

UTC = timezone.utc


def test_parameters_are_read_out_of_a_path_greedily_and_case_sensitively() -> None:
    assert capture("{name}.txt", "report.txt") == {"name": "report"}
    # Each parameter is ".*": the first takes all it can (BindingTemplateSource.BuildCapturePattern).
    assert capture("{a}-{b}.csv", "2026-12-03-sales.csv") == {"a": "2026-12-03", "b": "sales"}
    assert capture("{folder}/{file}", "x/y/z.bin") == {"folder": "x/y", "file": "z.bin"}
    assert capture("{name}.txt", "report.TXT") is None
    assert capture("{name}.txt", "report.txt.bak") is None
    assert capture("input/{name}", "input/") == {"name": ""}
    assert capture("fixed.txt", "fixed.txt") == {}


def test_double_braces_are_literal_braces() -> None:
    assert parameter_names("{{2026}}/{name}") == ["name"]
    assert capture("{{2026}}/{name}", "{2026}/a") == {"name": "a"}
    assert bind("{{literal}}-{id}", {"id": "7"}) == "{literal}-7"


@pytest.mark.parametrize("template", ["{name", "name}", "{}", "{a{b}}"])
def test_unbalanced_templates_are_refused(template: str) -> None:
    with pytest.raises(TemplateFormatError, match="Invalid template"):
        parameter_names(template)


def test_bind_looks_names_up_case_insensitively_and_walks_dotted_paths() -> None:
    data = BindingData({"Name": "report", "Query": {"Version": "2"}, "Body": {"Nested": {"Id": 42}}})
    assert bind("out/{name}-{query.version}.txt", data) == "out/report-2.txt"
    assert bind("{body.nested.id}", data) == "42"


def test_a_missing_parameter_fails_with_the_webjobs_message() -> None:
    with pytest.raises(BindingExpressionError) as info:
        bind("docs/{id}-{Query.v}.txt", BindingData({"id": "a", "Query": {}}))
    assert str(info.value) == "No value for named parameter 'Query.v'."


def test_builtin_expressions() -> None:
    guid = bind("{rand-guid}", {})
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", guid)
    assert re.fullmatch(r"[0-9a-f]{32}", bind("{rand-guid:N}", {}))
    assert bind("{rand-guid}", {}) != guid
    now = datetime(2018, 2, 16, 17, 59, 55, 123000, tzinfo=UTC)
    # The docs' example: {DateTime} is UtcNow as "2018-02-16T17-59-55Z".
    assert bind("out/{DateTime}.txt", {}, now=now) == "out/2018-02-16T17-59-55Z.txt"
    assert bind("{datetime:yyyy/MM/dd HH.mm.ss.fff}", {}, now=now) == "2018/02/16 17.59.55.123"


def test_binding_data_names_are_case_insensitive_and_later_sources_win() -> None:
    data = BindingData({"name": "first", "Other": 1}, {"NAME": "second"})
    assert data["Name"] == "second"
    assert sorted(data) == ["NAME", "Other"]
    assert len(data) == 2


def http_datum(body: bytes, query: dict[str, str], params: dict[str, str], headers: dict[str, str]) -> Datum:
    def strings(values: dict[str, str]) -> dict[str, Datum]:
        return {key: Datum(value, "string") for key, value in values.items()}

    return Datum(
        {
            "method": Datum("POST", "string"),
            "url": Datum("http://localhost/api/x", "string"),
            "headers": strings(headers),
            "query": strings(query),
            "params": strings(params),
            "body": Datum(body, "bytes"),
        },
        "http",
    )


def test_http_binding_data_has_body_properties_query_route_values_and_collections() -> None:
    datum = http_datum(
        b'{"name": "from-body", "count": 3, "ok": true, "tags": ["a"], "owner": {"id": "u1"}, "none": null}',
        {"v": "2", "code": "secret", "name": "from-query"},
        {"id": "doc-1"},
        {"x-trace": "t"},
    )
    data = binding_data_for("httpTrigger", datum, {})
    # Query parameters override body properties; route values override both (GetRequestBindingDataAsync).
    assert data["name"] == "from-query"
    assert (data["count"], data["ok"]) == ("3", "True")
    assert data["owner"] == {"id": "u1"}
    assert "tags" not in data and "none" not in data and "code" not in data
    assert data["id"] == "doc-1"
    assert data["Query"] == {"v": "2", "code": "secret", "name": "from-query"}
    assert data["Headers"] == {"x-trace": "t"}
    assert bind("{owner.id}/{id}-{Query.v}", data) == "u1/doc-1-2"


def test_a_body_that_is_not_a_json_object_adds_nothing() -> None:
    for body in (b"plain text", b"[1, 2]", b"{broken", b""):
        data = binding_data_for("httpTrigger", http_datum(body, {}, {"id": "1"}, {}), {})
        assert sorted(data) == ["Headers", "Query", "id"]


def test_trigger_metadata_is_binding_data_and_a_queue_message_is_queue_trigger() -> None:
    metadata = {"Id": Datum("m-1", "string"), "DequeueCount": Datum("2", "json")}
    data = binding_data_for("queueTrigger", Datum(b"report.txt", "bytes"), metadata)
    assert (data["queueTrigger"], data["id"], data["dequeueCount"]) == ("report.txt", "m-1", 2)
    assert bind("in/{queueTrigger}", data) == "in/report.txt"

    blob = {
        "BlobTrigger": Datum("uploads/a.txt", "string"),
        "Uri": Datum('"http://127.0.0.1:10000/devstoreaccount1/uploads/a.txt"', "json"),
        "Properties": Datum('{"ContentLength": 3}', "json"),
        "name": Datum("a", "string"),
    }
    data = binding_data_for("blobTrigger", Datum(b"abc", "bytes"), blob)
    assert bind("{name}|{blobTrigger}|{uri}|{properties.contentLength}", data) == (
        "a|uploads/a.txt|http://127.0.0.1:10000/devstoreaccount1/uploads/a.txt|3"
    )
