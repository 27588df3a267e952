"""The Azure OpenAI rules the fake server applies on its ``/openai/...`` routes: routes, api-version, auth.

Pure functions (no I/O). What they follow, and where it was read:

- URLs, from the ``openai`` package's ``openai/lib/azure.py``: ``AzureOpenAI(azure_endpoint=E)`` sends Chat
  Completions to ``E/openai/deployments/{model}/chat/completions`` (the deployment name stands for the model;
  ``azure_deployment=D`` fixes it in the base URL) and every other API (Responses) to ``E/openai/<path>``,
  always with ``?api-version=``. Agent Framework's Azure routing (``agent_framework_openai/_shared.py``) uses
  that client for Chat Completions (default api-version ``2024-12-01-preview``) and, for the Responses API,
  the v1 surface ``E/openai/v1/`` with ``api-version=preview``; a ``base_url`` ending in ``/openai/v1`` is
  spoken to with the plain OpenAI client (``Authorization: Bearer <key>``).
- api-version: the dated surfaces need one (the service answers a request without it with 404 ``Resource not
  found``, MicrosoftDocs/azure-docs#114602) and refuse one they do not know with 400 ``BadRequest`` ``API
  version not supported``; the v1 surface needs none and takes ``preview``/``latest``/``v1``, refusing dated
  versions the same way (learn.microsoft.com, "Azure OpenAI v1 API"; openai/codex#3725).
- Auth: an ``api-key`` header or ``Authorization: Bearer <Microsoft Entra token>``; on the v1 surface the key
  also works as a bearer token (that is how the plain OpenAI client sends it). The service's 401 bodies are
  quoted below as clients report them: a wrong key gets ``{"error": {"code": "401", ...}}``, a missing key or
  a token it cannot accept the gateway's ``{"statusCode": 401, "message": ...}``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any

JSON = dict[str, Any]

_DATED_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
V1_API_VERSIONS = frozenset({"v1", "preview", "latest"})
"""The ``api-version`` values the v1 surface takes (it needs none)."""

DEFAULT_API_VERSION = "2024-10-21"
"""A generally available dated api-version, for clients that must send one (``openai.AzureOpenAI``)."""

TOKEN_SCOPE = "https://cognitiveservices.azure.com/.default"
"""The scope a token credential asks for when it talks to Azure OpenAI."""

_INVALID_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for "
    "an active subscription and use a correct regional API endpoint for your resource."
)
_MISSING_KEY = (
    "Access denied due to missing subscription key. Make sure to include subscription key when making requests "
    "to an API."
)
_INVALID_TOKEN = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), "
    "or have expired."
)
_DEPLOYMENT_NOT_FOUND = (
    "The API deployment for this resource does not exist. If you created the deployment within the last 5 "
    "minutes, please wait a moment and try again."
)


class Surface(enum.Enum):
    """Which Azure OpenAI API surface a route belongs to (it decides the api-version rule)."""

    DEPLOYMENT = "deployment"
    """``/openai/deployments/{deployment}/...``: a dated api-version is required."""
    DATED = "dated"
    """``/openai/responses...`` (the Responses API before v1): a dated api-version is required."""
    V1 = "v1"
    """``/openai/v1/...``: api-version optional (``preview``, ``latest``, ``v1``)."""


class AzureRefusal(Exception):
    """What the service answers instead of serving the request: an HTTP status and a JSON body."""

    def __init__(self, status: int, body: JSON) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def _error(status: int, code: str, message: str) -> AzureRefusal:
    return AzureRefusal(status, {"error": {"code": code, "message": message}})


def check_api_version(surface: Surface, api_version: str | None) -> None:
    """Refuse a missing or unknown ``api-version`` as the surface does.

    Raises:
        AzureRefusal: 404 ``Resource not found`` (dated surfaces, none given) or 400 ``API version not
            supported``.
    """
    if surface is Surface.V1:
        if api_version is None or api_version in V1_API_VERSIONS:
            return
    elif api_version is None:
        raise _error(404, "404", "Resource not found")
    elif _DATED_VERSION.fullmatch(api_version):
        return
    raise _error(400, "BadRequest", "API version not supported")


def _bearer(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = (headers.get("Authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def check_auth(
    headers: Mapping[str, str], surface: Surface, *, api_key: str | None, azure_ad_token: str | None
) -> None:
    """Refuse a request whose credentials the service would not accept.

    A request must carry ``api-key`` or a bearer token. With neither ``api_key`` nor ``azure_ad_token``
    configured any credential passes; with either, only the configured ones do.

    Raises:
        AzureRefusal: 401 with the service's body for a missing key, a wrong key, or an unaccepted token.
    """
    key = headers.get("api-key")
    token = _bearer(headers)
    if key is None and token is None:
        raise AzureRefusal(401, {"statusCode": 401, "message": _MISSING_KEY})
    if api_key is None and azure_ad_token is None:
        return
    if key is not None:
        if api_key is not None and key == api_key:
            return
        raise _error(401, "401", _INVALID_KEY)
    accepted = {azure_ad_token} | ({api_key} if surface is Surface.V1 else set())
    if token not in accepted - {None}:
        raise AzureRefusal(401, {"statusCode": 401, "message": _INVALID_TOKEN})


def check_deployment(deployment: str, deployments: frozenset[str] | None) -> None:
    """Refuse a deployment the resource does not have (any name passes when ``deployments`` is None).

    Raises:
        AzureRefusal: 404 ``DeploymentNotFound``.
    """
    if deployments is not None and deployment not in deployments:
        raise _error(404, "DeploymentNotFound", _DEPLOYMENT_NOT_FOUND)
