"""The blob calls of every agent turn and workflow superstep, made straight over the Blob REST API.

A turn lists what a crashed earlier attempt left, writes its record, and later stores a receipt; a
superstep writes its checkpoint and its index entry. Through the blob SDK each call costs 1.1-1.3 ms
of client CPU (0.6-0.8 ms on ``StdlibTransport``), on the GIL the worker's other threads wait for;
made here, 0.15-0.19 ms (``benchmarks/blob_transport_bench.py``; 0.3-0.36 ms through a urllib3 pool).

What this module owns is small: the ``Authorization`` header (Shared Key, as the service documents
it and as the SDK computes it, or a bearer token from the same ``azure-identity`` credential), the
URL, and reading a listing's XML. The requests go out on ``StdlibTransport``'s kept connections, and
``urllib3``'s ``Retry`` decides the retries: back-off on connection errors and 408/429/500/502/503/504,
as the SDK retries, with a ``Retry-After`` answer respected. Everything else (creating containers,
deleting, listings with metadata) stays on the SDK, and so does a container this client cannot reach
as the SDK would: a SAS connection string, a proxy set in the environment."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import urllib3
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError, ServiceResponseError

from ._blob_transport import StdlibTransport, behind_proxy

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.blob import ContainerClient

API_VERSION = "2021-08-06"
_SCOPE = "https://storage.azure.com/.default"
# A token is renewed this long before it expires, so no request goes out with one about to lapse.
_TOKEN_MARGIN_SECONDS = 300
_MAX_LIST_PAGES = 1000  # 5,000 names a page: far beyond any prefix a turn lists
_RETRIES = urllib3.Retry(
    total=4,
    connect=3,
    read=2,
    status=3,
    backoff_factor=0.2,
    status_forcelist=(408, 429, 500, 502, 503, 504),
    allowed_methods=frozenset({"GET", "PUT", "HEAD", "DELETE"}),
    raise_on_status=False,
    respect_retry_after_header=True,
)
_METADATA_KEY = re.compile(r"[a-z][a-z0-9]{0,63}")
# The standard headers Shared Key signs, in its order (their values; empty when absent).
_SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)
_CONNECT_SECONDS, _READ_SECONDS = 20.0, 60.0  # the blob SDK's own defaults


@dataclass(frozen=True)
class Answer:
    """What the service answered: status, headers (names lower-cased) and the whole body."""

    status: int
    headers: dict[str, str]
    data: bytes


class BlobRest:
    """PUT, GET and prefix listings of one container, signed like the SDK client it was built from."""

    def __init__(
        self,
        container_url: str,
        *,
        account_name: str | None = None,
        account_key: str | None = None,
        token_credential: TokenCredential | None = None,
        http: StdlibTransport | None = None,
    ) -> None:
        if (account_key is None) == (token_credential is None):
            raise ValueError("exactly one of account_key and token_credential is needed")
        url = urlsplit(container_url.rstrip("/"))
        self._scheme, self._netloc = url.scheme, url.netloc
        self._path = url.path  # already encoded, as the SDK keeps it (e.g. /devstoreaccount1/<container>)
        self._account = account_name or ""
        self._key = base64.b64decode(account_key) if account_key is not None else b""
        self._credential = token_credential
        self._token: tuple[str, float] | None = None
        self._token_lock = threading.Lock()
        self._http = http or StdlibTransport()

    @classmethod
    def for_container(cls, container: ContainerClient) -> BlobRest | None:
        """A client for the same container with the same credential, or ``None`` if this one cannot sign."""
        credential: Any = getattr(container, "credential", None)
        url = getattr(container, "primary_endpoint", None)
        if not isinstance(url, str) or "?" in url:
            return None  # a SAS in the URL (or no real container): the SDK keeps these
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or behind_proxy(parts.scheme, parts.hostname or ""):
            return None  # sent without a proxy here; the SDK's transport reads the proxy settings
        key = getattr(credential, "account_key", None)
        if isinstance(key, str):
            return cls(url, account_name=str(credential.account_name), account_key=key)
        if credential is not None and callable(getattr(credential, "get_token", None)):
            return cls(url, token_credential=credential)
        return None

    # The calls -------------------------------------------------------------------------------------

    def put(self, name: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Write (or replace) a block blob, with ``metadata`` (lower-case letter-and-digit keys, ASCII values)."""
        headers = {"x-ms-blob-type": "BlockBlob"}
        for key, value in (metadata or {}).items():
            # Such keys sort the same in the service's header order as in plain order (see _signature).
            if not _METADATA_KEY.fullmatch(key) or not value.isascii():
                raise ValueError(f"metadata {key!r} is not a lower-case letter-and-digit key with an ASCII value")
            headers[f"x-ms-meta-{key}"] = value
        response = self._send("PUT", name, body=data, headers=headers)
        if response.status != 201:
            raise _error(response, name)

    def get(self, name: str) -> bytes | None:
        """A blob's content, or ``None`` when there is no such blob (or container)."""
        response = self._send("GET", name)
        if response.status == 404:
            return None
        if response.status != 200:
            raise _error(response, name)
        return response.data

    def names(self, prefix: str, *, page_size: int | None = None) -> list[str]:
        """Names of the blobs under ``prefix``, in order; raises ``ResourceNotFoundError`` without a container."""
        names: list[str] = []
        marker = ""
        for _ in range(_MAX_LIST_PAGES):
            query = {"restype": "container", "comp": "list", "prefix": prefix}
            if page_size is not None:
                query["maxresults"] = str(page_size)
            if marker:
                query["marker"] = marker
            response = self._send("GET", None, query=query)
            if response.status != 200:
                raise _error(response, prefix)
            root = ElementTree.fromstring(response.data)
            for element in root.iterfind("./Blobs/Blob/Name"):
                # A name with characters XML cannot carry comes percent-encoded, and says so.
                text = element.text or ""
                names.append(unquote(text) if element.get("Encoded") == "true" else text)
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return names
        raise HttpResponseError(message=f"listing '{prefix}' did not end within {_MAX_LIST_PAGES} pages")

    # Requests --------------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        name: str | None,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> Answer:
        path = self._path if name is None else f"{self._path}/{quote(name, safe='~/')}"
        target = path
        if query:
            target += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        url = f"{self._scheme}://{self._netloc}{target}"  # Retry's history names it
        retry = _RETRIES
        while True:
            sent = {"x-ms-version": API_VERSION, "x-ms-date": formatdate(usegmt=True), **(headers or {})}
            if body is not None:
                sent["Content-Length"] = str(len(body))
            sent["Authorization"] = self._authorization(method, path, sent, query or {})
            try:
                status, _, raw_headers, data = self._http.exchange(
                    method,
                    self._scheme,
                    self._netloc,
                    target,
                    body,
                    sent,
                    read_timeout=_READ_SECONDS,
                    connection_timeout=_CONNECT_SECONDS,
                )
            except (ServiceRequestError, ServiceResponseError) as exc:
                # In Retry's terms a failed connect is a connect error, a failed exchange a read error.
                error: urllib3.exceptions.HTTPError = (
                    urllib3.exceptions.ConnectTimeoutError(str(exc))
                    if isinstance(exc, ServiceRequestError)
                    else urllib3.exceptions.ProtocolError(str(exc))
                )
                try:
                    retry = retry.increment(method, url, error=error)
                except urllib3.exceptions.HTTPError:
                    # Retries spent on a connection that failed or timed out: the SDK's error for it.
                    raise ServiceRequestError(f"blob '{name or ''}': {type(exc).__name__}") from exc
                retry.sleep()
                continue
            answer = Answer(status, {k.lower(): v for k, v in raw_headers}, data)
            if not retry.is_retry(method, status, has_retry_after="retry-after" in answer.headers):
                return answer
            response = urllib3.HTTPResponse(body=b"", headers=answer.headers, status=status, preload_content=False)
            try:
                retry = retry.increment(method, url, response=response)
            except urllib3.exceptions.MaxRetryError:
                return answer  # still busy after the last retry: the caller reports the answer
            retry.sleep(response)

    def _authorization(self, method: str, path: str, headers: dict[str, str], query: dict[str, str]) -> str:
        if self._credential is not None:
            return f"Bearer {self._bearer()}"
        return f"SharedKey {self._account}:{self._signature(method, path, headers, query)}"

    def _signature(self, method: str, path: str, headers: dict[str, str], query: dict[str, str]) -> str:
        """Shared Key for the Blob service (x-ms-version 2009-09-19 and later), as the SDK signs it."""
        lower = {k.lower(): v for k, v in headers.items()}
        if lower.get("content-length") == "0":
            lower["content-length"] = ""  # the service signs an empty body's length as empty
        lines = [method, *(lower.get(h, "") for h in _SIGNED_HEADERS)]
        # Our x-ms- names are lower-case letters and '-' only, where the service's order is plain order.
        canonical_headers = "".join(f"{k}:{lower[k]}\n" for k in sorted(lower) if k.startswith("x-ms-"))
        resource = f"/{self._account}{path}"
        for key in sorted(query, key=str.lower):
            resource += f"\n{key.lower()}:{query[key]}"  # the value itself, not as sent (encoded)
        to_sign = "\n".join(lines) + "\n" + canonical_headers + resource
        digest = hmac.new(self._key, to_sign.encode("utf-8"), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def _bearer(self) -> str:
        with self._token_lock:
            if self._token is None or self._token[1] - time.time() < _TOKEN_MARGIN_SECONDS:
                assert self._credential is not None
                token = self._credential.get_token(_SCOPE)
                self._token = (token.token, float(token.expires_on))
            return self._token[0]


class ContainerCalls:
    """PUT, GET and prefix listings of one container: over REST when ``BlobRest`` can sign for it, else the SDK."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container
        self.rest = BlobRest.for_container(container)

    def put(self, name: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Write (or replace) a block blob."""
        if self.rest is not None:
            self.rest.put(name, data, metadata)
        else:
            self._container.upload_blob(name, data, overwrite=True, metadata=metadata)

    def get(self, name: str) -> bytes | None:
        """A blob's content, or ``None`` when there is no such blob (or container)."""
        if self.rest is not None:
            return self.rest.get(name)
        try:
            return bytes(self._container.download_blob(name).readall())
        except ResourceNotFoundError:
            return None

    def names(self, prefix: str) -> list[str]:
        """Names under ``prefix``, in order; raises ``ResourceNotFoundError`` without a container."""
        if self.rest is not None:
            return self.rest.names(prefix)
        return [blob.name for blob in self._container.list_blobs(name_starts_with=prefix)]


def _error(response: Answer, name: str) -> HttpResponseError:
    """The SDK's exception types for what the service answered (its error code, never the body)."""
    code = response.headers.get("x-ms-error-code", "")
    message = f"blob '{name}': {response.status} {code}".strip()
    if response.status == 404:
        return ResourceNotFoundError(message=message)
    return HttpResponseError(message=message)
