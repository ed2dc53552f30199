"""Request bodies: read whole and bounded, parsed strictly, refused in the project's error shape.

`BodyGuard` (ASGI middleware, inside the security layer so its answers are rate-limited like any other):
``415`` for a JSON route's body that is not ``application/json``; ``413`` for a body over
``API_MAX_BODY_BYTES`` — by ``Content-Length`` before reading, or counted while a chunked body streams in;
otherwise the body, read in full, is replayed to the app.

`strict_loads`: the JSON parser of the API's JSON routes (`StrictJSONRoute`). Stricter than the
standard library's defaults, which FastAPI uses:
- invalid UTF-8 → refused (``json.loads`` on bytes would also guess UTF-16/32);
- a duplicate key in an object → refused (``json.loads`` keeps the last one: ``price_paid`` 50 then 99999
  would be read as 99999 by us while a proxy or log that keeps the first saw 50);
- ``NaN``, ``Infinity`` → refused (not JSON);
- a number of more than 4,300 digits (Python's int-conversion limit) and nesting deeper than 32 levels
  (``MAX_DEPTH``; our requests nest 3) → refused with a message, not a 400 with FastAPI's generic body.
Every refusal is a ``422`` ``validation_error`` naming the field ``body`` and what was wrong, with its
``type``: ``json_invalid``, ``json_encoding``, ``json_duplicate_key``, ``json_number_too_long``,
``json_too_deep``. Cost: the stdlib C scanner plus a pairs hook, a few µs more than ``json.loads`` on a
scoring request's body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from ticketguard.api import metrics
from ticketguard.api.asgi import ASGIApp, Message, Receive, Scope, Send, send_json

JSON_BODY_ROUTES = ("/api/",)


# ------------------------------------------------------------------------------------------ parsing
class MalformedJSON(ValueError):
    """The body is not acceptable JSON; ``kind`` is the error type, the message says what was wrong."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind

    def payload(self) -> dict[str, Any]:
        return validation_payload("body", str(self), self.kind)


def validation_payload(field: str, message: str, kind: str) -> dict[str, Any]:
    """The project's 422 body for one problem (the same shape as every validation error)."""
    return {
        "error": "validation_error",
        "message": f"{field}: {message}",
        "detail": [{"field": field, "message": message, "type": kind}],
    }


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


MAX_DEPTH = 32  # our requests nest 3 levels (batch → list → item)


def strict_loads(body: bytes) -> Any:
    """Parse a request body, or raise `MalformedJSON` saying what is wrong (see the module docstring)."""
    value = _loads(body)
    # Depth: refused past MAX_DEPTH whatever the interpreter's recursion limit (the parser's own limit
    # moves with it). Only bodies with more brackets than that can be deeper: a single request skips this.
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and _deeper_than(value, MAX_DEPTH):
        raise _too_deep()
    return value


def _too_deep() -> MalformedJSON:
    return MalformedJSON(f"JSON nested deeper than {MAX_DEPTH} levels; requests nest 3", "json_too_deep")


def _deeper_than(value: Any, limit: int) -> bool:
    if not isinstance(value, dict | list):
        return False
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _loads(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJSON(
            f"is not valid UTF-8 (byte {exc.start}); send JSON encoded as UTF-8", "json_encoding"
        ) from None
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise MalformedJSON(f"invalid JSON: {exc.msg} at character {exc.pos}", "json_invalid") from None
    except _DuplicateKey as exc:
        shown = exc.key if len(exc.key) <= 64 else exc.key[:64] + "…"
        raise MalformedJSON(
            f"duplicate key {shown!r} in a JSON object; each field may appear once", "json_duplicate_key"
        ) from None
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        if "is not a JSON number" in str(exc):
            raise MalformedJSON(f"invalid JSON: {exc}", "json_invalid") from None
        # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        raise MalformedJSON(
            "a number has more than 4300 digits; numbers are prices and coordinates", "json_number_too_long"
        ) from None


# ------------------------------------------------------------------------------------------ routes
BodyCheck = Callable[[Any, Request], Response | None]


def body_check(check: BodyCheck) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run ``check(parsed_json, request)`` before FastAPI validates the body; a response it returns is
    the answer (e.g. a batch over API_BATCH_MAX_ITEMS is refused before 10,000 items are validated)."""

    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        endpoint.__tg_body_check__ = check  # type: ignore[attr-defined]
        return endpoint

    return mark


class StrictJSONRequest(Request):
    """A request whose ``json()`` is `strict_loads` (FastAPI parses bodies with ``request.json()``)."""

    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            self._strict_json = strict_loads(await self.body())
        return self._strict_json


class StrictJSONRoute(APIRoute):
    """An API route whose JSON body is parsed by `strict_loads`; a malformed body is answered here with the
    project's 422, before FastAPI sees it (FastAPI would answer 400 with its own body for several cases)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        check: BodyCheck | None = getattr(self.endpoint, "__tg_body_check__", None)

        async def strict_handler(request: Request) -> Response:
            request = StrictJSONRequest(request.scope, request.receive)
            if request.method in ("POST", "PUT", "PATCH") and await request.body():
                try:
                    parsed = await request.json()
                except MalformedJSON as exc:
                    return Response(orjson.dumps(exc.payload()), 422, media_type="application/json")
                if check is not None:
                    refusal = check(parsed, request)
                    if refusal is not None:
                        return refusal
            return await handler(request)

        return strict_handler


# ------------------------------------------------------------------------------------------ middleware
class RequestMetrics:
    """Outermost ASGI middleware: the latency histogram of every request, whoever answers it (the
    security layer's 401/403/429, the body guard's 413/415, the app)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            state = scope.get("state") or {}
            path: str = scope.get("path", "")
            metrics.REQUEST_SECONDS.labels(
                route=_route_label(scope, path),
                method=scope.get("method", ""),
                status=str(status["code"]),
                decision=str(state.get("decision", "none")),
            ).observe(time.perf_counter() - started)


class BodyGuard:
    """415 for a JSON route's body that is not JSON, 413 for one over the limit (declared or streamed),
    else the whole body replayed to the app. Sits inside the security layer: these answers are metered."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope.get("method") not in ("POST", "PUT", "PATCH")
            or not path.startswith(JSON_BODY_ROUTES)
        ):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await self._error(send, 413, "payload_too_large", self._too_large())
            return
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            await self._error(
                send,
                415,
                "unsupported_media_type",
                f"Content-Type must be application/json, got {ctype or 'none'!r}",
            )
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away mid-body: nobody to answer
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body_bytes:  # a chunked body (no Content-Length) or a lying one
                await self._error(send, 413, "payload_too_large", self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body_bytes} bytes (API_MAX_BODY_BYTES)"

    @staticmethod
    async def _error(send: Send, status: int, error: str, detail: str) -> None:
        await send_json(send, status, orjson.dumps({"error": error, "detail": detail}))


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the real channel (a disconnect, for example)

    return replay


_KNOWN_ROUTES = (
    "/api/v1/ml/predict/fraud",
    "/api/v1/ml/batch/predict",
    "/api/v1/ml/model/info",
    "/health",
    "/metrics",
    "/openapi.json",
    "/docs",
)


def _route_label(scope: Scope, path: str) -> str:
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return template
    return path if path in _KNOWN_ROUTES else "other"
