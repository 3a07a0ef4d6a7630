"""The pages a person opens: the collection landing page and the QR code of its link.

`/collect/<token>` is where the link in the e-mail leads. For a live request it offers the
Identity Agent's deep link, the app store links from Settings and the QR code (for a link opened
on a computer); otherwise it says why the link does not work. The link may have been
forwarded, so nothing about the person is ever shown. Every answer is uncacheable and sends no
Referer (the token is a bearer secret until its request is collected), and the page loads
nothing from anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Blueprint, Response, abort, render_template, url_for

from provisioning import qr
from provisioning.db import get_engine
from provisioning.links import (
    LinkState,
    app_link,
    collection_url,
    link_state,
    service_base_url,
    stored_settings,
)
from specs.settings import SettingsSpec

blueprint = Blueprint("pages", __name__)

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """The page for a link that cannot be collected: HTTP status, heading, what to do."""

    status: int
    title: str
    text: str


REFUSALS = {
    LinkState.UNKNOWN: Refusal(
        404, "Link not found", "This collection link is not valid. Open the whole link from "
        "your e-mail, or ask your helpdesk for a new one."),
    LinkState.COLLECTED: Refusal(
        410, "Already collected", "The mobile ID behind this link has already been collected: "
        "a link works once. If that was not you, tell your helpdesk now."),
    LinkState.CLOSED: Refusal(
        410, "Link no longer valid", "This collection link has expired or was canceled. Ask "
        "your helpdesk for a new one."),
    LinkState.LOCKED: Refusal(
        403, "Link locked", "Too many wrong authentication codes were entered for this link. "
        "Ask your helpdesk to unlock it or to send a new one."),
}
NOT_CONFIGURED = Refusal(  # Settings does not say where this service is
    503, "Not available", "Mobile IDs cannot be collected from this service yet. Please try "
    "again later.")


@blueprint.after_request
def _protect(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _look_up(token: str) -> tuple[LinkState, SettingsSpec | None]:
    with get_engine().connect() as connection:
        state = link_state(connection, token, datetime.now(UTC))
        settings = stored_settings(connection) if state is LinkState.OPEN else None
    return state, settings


def _download_links(settings: SettingsSpec) -> list[tuple[str, str]]:
    """(label, URL) of the app stores Settings names; only web URLs, never javascript: & co."""
    stores = settings.issuance_processes
    links = [("Android", stores.app_download_url_android),
             ("iPhone and iPad", stores.app_download_url_ios)]
    return [(label, url.strip()) for label, url in links
            if url and url.strip().lower().startswith(("https://", "http://"))]


def _refused(refusal: Refusal) -> tuple[str, int]:
    return render_template("collect/refused.html", refusal=refusal), refusal.status


@blueprint.get("/collect/<token>")
def collect(token: str) -> tuple[str, int] | str:
    """The landing page of a collection link."""
    state, settings = _look_up(token)
    if state is not LinkState.OPEN:
        return _refused(REFUSALS[state])
    base_url = service_base_url(settings)
    if settings is None or base_url is None:
        return _refused(NOT_CONFIGURED)
    return render_template(
        "collect/ready.html", app_link=app_link(collection_url(base_url, token)),
        downloads=_download_links(settings), qr_src=url_for(".qr_svg", token=token))


def _qr(token: str, draw: Callable[[str], bytes], content_type: str) -> Response:
    state, settings = _look_up(token)
    if state is not LinkState.OPEN:
        abort(404)
    base_url = service_base_url(settings)
    if base_url is None:
        abort(503, "the service's address (mobileCertificateRecoveryServiceUrl) is not set")
    return Response(draw(collection_url(base_url, token)), content_type=content_type)


@blueprint.get("/qr/<token>.png")
def qr_png(token: str) -> Response:
    """The QR code of a live collection link, as PNG."""
    return _qr(token, qr.qr_png, "image/png")


@blueprint.get("/qr/<token>.svg")
def qr_svg(token: str) -> Response:
    """The QR code of a live collection link, as SVG."""
    return _qr(token, qr.qr_svg, "image/svg+xml")
