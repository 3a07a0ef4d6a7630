"""HTTP SMS gateway stand-in: accepts one SMS per POST, records it, fails on demand.

`sms_gateway_app(state)` serves POST /sms (run it with `harness.serve`). With `state.token`
set, a request without `Authorization: Bearer <token>` is refused with 401; with
`state.api_key` set, one without that `X-Api-Key` with 403. `state.fail(count, status,
retry_after)` makes the next `count` requests answer `status` (503 by default, with that
Retry-After header if given) without accepting anything. Each accepted request is appended to
`state.accepted` with its headers and raw body.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from flask import Flask, Response, jsonify, request


@dataclass(frozen=True, slots=True)
class Accepted:
    """One SMS the gateway took: the request's headers and its body as sent."""

    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class SmsGatewayState:
    """What the stand-in checks and what it has accepted."""

    token: str | None = None
    api_key: str | None = None
    accepted: list[Accepted] = field(default_factory=list)
    failures: list[tuple[int, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, count: int = 1, status: int = 503, retry_after: str | None = None) -> None:
        """The next `count` requests answer `status` (with Retry-After: `retry_after`)."""
        with self.lock:
            self.failures += [(status, retry_after)] * count

    def _forced(self) -> tuple[int, str | None] | None:
        with self.lock:
            return self.failures.pop(0) if self.failures else None


def sms_gateway_app(state: SmsGatewayState) -> Flask:
    """The stand-in's WSGI app (the state is also `app.config["STATE"]`)."""
    app = Flask("sms_gateway")
    app.config["STATE"] = state

    @app.post("/sms")
    def send_sms() -> tuple[Response, int]:
        forced = state._forced()
        if forced is not None:
            status, retry_after = forced
            answer = jsonify(error="forced failure")
            if retry_after is not None:
                answer.headers["Retry-After"] = retry_after
            return answer, status
        if state.token is not None and \
                request.headers.get("Authorization") != f"Bearer {state.token}":
            return jsonify(error="bad token"), 401
        if state.api_key is not None and request.headers.get("X-Api-Key") != state.api_key:
            return jsonify(error="bad api key"), 403
        with state.lock:
            state.accepted.append(Accepted(dict(request.headers), request.get_data()))
            number = len(state.accepted)
        return jsonify(id=f"sms-{number}", status="queued"), 202

    return app
