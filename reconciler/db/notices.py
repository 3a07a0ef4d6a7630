"""What a request's notifications say, whom they go to, and which system carries them.

The collection link and the authentication code always travel as separate messages: the link
by e-mail (HTML when Settings say so), the code by SMS and/or its own e-mail. SMS goes through
an enabled HttpSmsGateway system when there is one, else as an e-mail to `<cell>@<gateway>`
(Settings general.smsGatewayUrlForNotifications) through the Smtp system.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from reconciler.db.codes import display
from reconciler.db.outbox import Message

DIAL_CHARACTERS = re.compile(r"[\s().-]")


def collection_url(base_url: str, token: str) -> str:
    """The link a person opens on the phone: `<recovery service URL>/collect/<token>`."""
    return f"{base_url.rstrip('/')}/collect/{quote(token, safe='')}"


class UndeliverableError(ValueError):
    """A notification has no address, or no system to carry it."""


@dataclass(frozen=True, slots=True)
class Carriers:
    """The enabled systems messages can go through, and how Settings shape them."""

    smtp: str | None  # the Smtp ExternalSystem's name
    sms_gateway: str | None  # an HttpSmsGateway's name
    sms_domain: str | None  # the e-mail-to-SMS gateway domain
    html: bool  # mail format HTML

    @classmethod
    def from_config(cls, settings: dict[str, Any], systems: dict[str, dict[str, Any]]
                    ) -> Carriers:
        """From the Settings spec and {name: ExternalSystem spec} (canonical camelCase forms)."""
        def first(listener: str) -> str | None:
            names = sorted(name for name, spec in systems.items()
                           if spec.get("listenerType") == listener and spec.get("enabled", True))
            return names[0] if names else None

        return cls(first("Smtp"), first("HttpSmsGateway"),
                   settings.get("general", {}).get("smsGatewayUrlForNotifications"),
                   settings.get("notifications", {}).get("mailFormat", "HTML") == "HTML")

    def email(self, purpose: str, address: str | None, subject: str, text: str,
              markup: str) -> Message:
        if not address:
            raise UndeliverableError("has no e-mail address")
        if self.smtp is None:
            raise UndeliverableError("needs an enabled Smtp ExternalSystem to send e-mail")
        return Message(purpose, "email", self.smtp, address, subject, text,
                       markup if self.html else None)

    def sms(self, purpose: str, cell: str | None, text: str) -> Message:
        if not cell:
            raise UndeliverableError("has no cell number")
        number = DIAL_CHARACTERS.sub("", cell)
        if self.sms_gateway is not None:
            return Message(purpose, "sms", self.sms_gateway, number, "", text)
        if self.smtp is None or not self.sms_domain:
            raise UndeliverableError("needs an SMS gateway: an enabled HttpSmsGateway, or "
                                     "general.smsGatewayUrlForNotifications and an Smtp system")
        return Message(purpose, "sms", self.smtp, f"{number}@{self.sms_domain}",
                       "Authentication code", text)


def _greeting(person: dict[str, Any]) -> str:
    name = person.get("firstName") or person.get("fullName")
    return f"Hello {name}," if name else "Hello,"


def link_message(carriers: Carriers, person: dict[str, Any], profile: str, url: str,
                 expires: datetime) -> Message:
    """The e-mail with the collection link (never the code)."""
    greeting = _greeting(person)
    until = expires.strftime("%Y-%m-%d %H:%M UTC")
    text = (f"{greeting}\n\nA mobile ID ({profile}) is ready for you. On your phone, open this "
            f"link to collect it:\n\n{url}\n\nThe link works until {until}. Your "
            "authentication code comes in a separate message.\n")
    markup = (f"<p>{html.escape(greeting)}</p><p>A mobile ID ({html.escape(profile)}) is ready "
              f"for you. On your phone, open this link to collect it:</p>"
              f'<p><a href="{html.escape(url)}">{html.escape(url)}</a></p>'
              f"<p>The link works until {until}. Your authentication code comes in a separate "
              "message.</p>")
    return carriers.email("link", person.get("email"), "Your mobile ID is ready to collect",
                          text, markup)


def code_messages(carriers: Carriers, person: dict[str, Any], code: str,
                  channels: frozenset[str]) -> list[Message]:
    """The code by each channel asked for ("email", "sms"); "shown" sends nothing."""
    shown = display(code)
    messages = []
    if "email" in channels:
        text = (f"{_greeting(person)}\n\nYour one-time authentication code for collecting your "
                f"mobile ID is: {shown}\n\nType it in the app when asked. Nobody from the help "
                "desk will ever ask you for it.\n")
        markup = (f"<p>{html.escape(_greeting(person))}</p><p>Your one-time authentication "
                  f"code for collecting your mobile ID is: <strong>{shown}</strong></p>"
                  "<p>Type it in the app when asked. Nobody from the help desk will ever ask "
                  "you for it.</p>")
        messages.append(carriers.email("code", person.get("email"),
                                       "Your mobile ID authentication code", text, markup))
    if "sms" in channels:
        messages.append(carriers.sms("code", person.get("cell"),
                                     f"Your mobile ID authentication code: {shown}"))
    return messages
