"""The JSON error responses the local host itself produces, and JSON for aiohttp's protocol errors.

Every 4xx the host answers on its own (no route, auth, oversize body, malformed HTTP, bad input to the
management API) has the body ``{"error": {"code": "<stable code>", "message": "<human text>"}}`` and
``Content-Type: application/json``. Deviation: the Functions host answers most of these with an empty
body; a machine-readable reason is kept here because the local host is where apps are debugged.
Responses written by the app's own functions never pass through here.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestHandler

__all__ = [
    "BODY_TOO_LARGE",
    "INTERNAL_ERROR",
    "ROUTE_NOT_FOUND",
    "UNAUTHORIZED",
    "error_body",
    "install_json_protocol_errors",
    "json_error",
]

_log = logging.getLogger("durableagent.devhost.http")

ROUTE_NOT_FOUND = "route_not_found"
UNAUTHORIZED = "unauthorized"
BODY_TOO_LARGE = "body_too_large"
INTERNAL_ERROR = "internal_error"

# aiohttp's own status for a raised HTTPException -> our stable code (anything else: "bad_request").
_STATUS_CODES = {
    400: "bad_request",
    401: UNAUTHORIZED,
    404: ROUTE_NOT_FOUND,
    405: ROUTE_NOT_FOUND,
    411: "length_required",
    413: BODY_TOO_LARGE,
    414: "url_too_long",
    415: "unsupported_media_type",
    417: "expectation_failed",
    431: "headers_too_large",
}


def error_body(code: str, message: str) -> dict[str, Any]:
    """The host's error document: ``{"error": {"code", "message"}}``."""
    return {"error": {"code": code, "message": message}}


def json_error(
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    """A JSON error response; ``extra`` adds top-level fields beside ``error`` (e.g. the extension's)."""
    body = {**(extra or {}), **error_body(code, message)}
    return web.json_response(body, status=status, headers=headers)


def code_for_status(status: int) -> str:
    """The stable code for an aiohttp ``HTTPException`` status the host raised or let through."""
    return _STATUS_CODES.get(status, "bad_request")


def _protocol_error(exc: BaseException | None, status: int) -> tuple[str, str]:
    """A fixed code and message per kind of malformed HTTP: aiohttp's own messages echo the bytes
    received (and Python reprs), which a caller must not get back."""
    if isinstance(exc, http_exceptions.LineTooLong):
        return "request_too_large", "The request line or a header is longer than the host accepts (8190 bytes)."
    if isinstance(exc, http_exceptions.BadHttpMethod):
        return "bad_method", "The request method is not a valid HTTP method."
    if isinstance(exc, http_exceptions.BadStatusLine):
        return "bad_request_line", "The request line is not valid HTTP."
    if isinstance(exc, http_exceptions.InvalidURLError):
        return "bad_url", "The request target is not a valid URL."
    if isinstance(exc, http_exceptions.InvalidHeader):
        return "bad_header", "A request header is not valid HTTP."
    if isinstance(exc, http_exceptions.PayloadEncodingError):
        return "bad_body_framing", "The request body's framing (Content-Length, Transfer-Encoding) is not valid."
    if status == 413:
        return BODY_TOO_LARGE, "The request body is larger than the host accepts."
    return code_for_status(status), "The request is not valid HTTP."


class _JsonErrorRequestHandler(RequestHandler):
    """aiohttp's connection handler with JSON (not ``text/plain``) bodies for the errors it answers itself."""

    # Same layout as RequestHandler, so a handler aiohttp made can become one of these.
    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            # A fault of the host: logged with its traceback, the caller gets no details.
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            code, text = INTERNAL_ERROR, "The host failed to process the request."
        else:
            # Malformed HTTP is the caller's problem: one debug line (no traceback), as Kestrel logs it.
            _log.debug("Bad request from %s: %s", request.remote, type(exc).__name__ if exc else status)
            code, text = _protocol_error(exc, status)
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        response = json_error(status, code, text)
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    """An aiohttp ``Server`` whose connections answer protocol errors with JSON."""

    def __call__(self) -> RequestHandler:
        handler = super().__call__()
        # aiohttp offers no hook for its protocol-level error bodies: swap in the subclass (same slots).
        handler.__class__ = _JsonErrorRequestHandler
        return handler


def install_json_protocol_errors(runner: web.BaseRunner) -> None:
    """Make a set-up runner's server answer malformed HTTP with JSON errors; call before starting a site."""
    server = runner.server
    if server is None:
        raise RuntimeError("call install_json_protocol_errors after runner.setup()")
    server.__class__ = _JsonErrorServer
