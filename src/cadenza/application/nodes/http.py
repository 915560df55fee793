"""The ``http`` node: render its config, send it through the egress guard, judge the status.

Only the ports are visible here; the guard itself (private addresses, redirects, size limits)
lives in the ``HttpClient`` adapter.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit, urlunsplit

from cadenza.application.nodes.http_secrets import Placeholders
from cadenza.application.ports import (
    EgressDenied,
    HttpClient,
    HttpRequest,
    HttpResponse,
    TemplateError,
    Templates,
)
from cadenza.application.ports_nodes import NodeCall, NodeFailure, NodeResult
from cadenza.domain.json import JSON, JSONObject

DEFAULT_TIMEOUT_S = 30.0
IDEMPOTENCY_HEADER = "Idempotency-Key"
_TEMPLATED = ("url", "headers", "query", "json", "body")
_EXCERPT_CHARS = 200


def _invalid(message: str) -> NodeFailure:
    # A config that renders to the wrong shape fails the same way on every attempt.
    return NodeFailure(f"http: {message}", retryable=False)


def _as_text(value: JSON, what: str) -> str:
    """A rendered scalar as it goes into a header or a query string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise _invalid(f"{what} must render to a string, number or boolean, not {value!r}")


def _with_query(url: str, query: JSON) -> str:
    if not isinstance(query, dict):
        raise _invalid("query must render to an object")
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:  # an absent optional parameter renders to null: leave it out
                pairs.append((key, _as_text(item, f"query parameter {key!r}")))
    if not pairs:
        return url
    parts = urlsplit(url)
    # Appended as-is so the URL's own query keeps its exact encoding.
    joined = f"{parts.query}&{urlencode(pairs)}" if parts.query else urlencode(pairs)
    return urlunsplit(parts._replace(query=joined))


def _headers(rendered: JSON, idempotency_key: str) -> dict[str, str]:
    if not isinstance(rendered, dict):
        raise _invalid("headers must render to an object")
    headers = {
        name: _as_text(value, f"header {name!r}")
        for name, value in rendered.items()
        if value is not None and name.lower() != IDEMPOTENCY_HEADER.lower()
    }
    # Always ours: the receiver deduplicates retries of this very attempt by it.
    headers[IDEMPOTENCY_HEADER] = idempotency_key
    return headers


def _safe_url(url: str) -> str:
    """The URL without credentials, query or fragment, fit for error messages."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _media_type(headers: Mapping[str, str]) -> tuple[str, str]:
    """The (media type, charset) of a response, lower-cased, charset defaulting to utf-8."""
    media, _, params = headers.get("content-type", "").partition(";")
    charset = "utf-8"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower() or charset
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    return media.strip().lower(), charset


def _reject_constant(name: str) -> JSON:
    raise ValueError(f"{name} is not JSON")


def _decode_body(response: HttpResponse, headers: Mapping[str, str]) -> JSON:
    """Parsed JSON when the response says it is JSON (and is), else the text."""
    media, charset = _media_type(headers)
    text = response.body.decode(charset, errors="replace")
    if media == "application/json" or media.endswith("+json"):
        try:
            parsed: JSON = json.loads(text, parse_constant=_reject_constant)
        except ValueError:
            return text  # mislabelled: the text is still useful downstream
        return parsed
    return text


def _excerpt(body: JSON) -> str:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "..."


def _expected_statuses(config: JSONObject) -> frozenset[int] | range:
    expected = config.get("expect_status")
    if expected is None:
        return range(200, 300)
    if not isinstance(expected, list) or not all(isinstance(s, int) for s in expected):
        raise _invalid("expect_status must be a list of status codes")
    return frozenset(s for s in expected if isinstance(s, int))


class HttpExecutor:
    """``NodeExecutor`` for ``http`` nodes.

    The method defaults to POST when the node has a ``json`` or ``body``, else GET. The output
    is ``{"status", "headers" (lower-cased names), "body" (JSON or text), "url" (final)}``.
    """

    def __init__(self, client: HttpClient, templates: Templates) -> None:
        self._client = client
        self._templates = templates

    async def _render(self, call: NodeCall, marks: Placeholders) -> JSONObject:
        config = marks.hide(call.node.config)  # secret references never reach the templates
        templated: JSONObject = {key: config[key] for key in _TEMPLATED if key in config}
        try:
            rendered = await self._templates.render(templated, call.context)  # one budget
        except TemplateError as exc:
            raise _invalid(f"template error: {exc}") from exc
        assert isinstance(rendered, dict)  # rendering keeps the keys of an object
        return rendered

    def _request(self, call: NodeCall, rendered: JSONObject) -> HttpRequest:
        config = call.node.config
        url = rendered.get("url")
        if not isinstance(url, str) or not url:
            raise _invalid(f"url must render to a non-empty string, not {url!r}")
        if "query" in rendered:
            url = _with_query(url, rendered["query"])
        headers = _headers(rendered.get("headers", {}), call.idempotency_key)
        if "json" in rendered and "body" in rendered:
            raise _invalid("set either json or body, not both")
        body: bytes | None = None
        if "json" in rendered:
            body = json.dumps(rendered["json"], ensure_ascii=False).encode()
            if not any(name.lower() == "content-type" for name in headers):
                headers["Content-Type"] = "application/json"
        elif "body" in rendered:
            text = rendered["body"]
            body = (text if isinstance(text, str) else json.dumps(text)).encode()
        default_method = "GET" if body is None else "POST"
        method = config.get("method") or default_method
        if not isinstance(method, str):
            raise _invalid(f"method must be a string, not {method!r}")
        timeout_s = call.node.timeout_s or DEFAULT_TIMEOUT_S
        return HttpRequest(method.upper(), url, headers, body, timeout_s)

    async def execute(self, call: NodeCall) -> NodeResult:
        """Send the node's request once; raise NodeFailure for refusals, errors and bad status."""
        marks = Placeholders()
        rendered = await self._render(call, marks)
        expected = _expected_statuses(call.node.config)  # checked before anything is sent
        if marks.names(rendered):
            shown = self._request(call, marks.mask(rendered))  # *** where a secret goes
            # the egress boundary: secret values go into the rendered request, nowhere else
            request = self._request(call, await marks.fill(rendered, call))
        else:
            shown = request = self._request(call, rendered)
        target = f"{shown.method} {_safe_url(shown.url)}"
        try:
            response = await self._client.send(request)
        except EgressDenied as exc:
            raise NodeFailure(
                f"http: {target}: destination refused by the egress guard: {exc}", retryable=False
            ) from exc
        except TimeoutError as exc:
            raise NodeFailure(
                f"http: {target} timed out after {request.timeout_s:g}s", retryable=True
            ) from exc
        except OSError as exc:
            raise NodeFailure(f"http: {target} failed: {exc}", retryable=True) from exc
        headers = {name.lower(): value for name, value in response.headers.items()}
        body = _decode_body(response, headers)
        if response.status not in expected:
            status = response.status
            retryable = status in (408, 429) or status >= 500  # the server may recover
            raise NodeFailure(
                f"http: {target} returned status {status}: {_excerpt(body)}", retryable=retryable
            )
        output: JSONObject = {
            "status": response.status,
            "headers": dict(headers),
            "body": body,
            "url": response.url,
        }
        return NodeResult(output=output)
