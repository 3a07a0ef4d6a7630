"""Rules: notifications (see reconciler/rules/__init__.py for the id ranges).

A credential profile's notification scheme decides which channels a request's two messages take
(the collection link always by e-mail, the authentication code by e-mail and/or SMS); the
Settings options and external systems must let those channels through, or the request is made
and nobody hears of it.
"""

from __future__ import annotations

from collections.abc import Iterator

from reconciler.load import SpecDocument
from reconciler.rules.registry import Finding, RuleContext, rule
from reconciler.rules.settings_rules import identity_agent_profiles, option_text, profile_names

EMAIL, SMS = "e-mail", "SMS"
# What each notification scheme sends through: Default sends the link by e-mail and the code by
# e-mail and SMS; the MobileOnly schemes send the link by e-mail and the code by one channel.
SCHEME_CHANNELS: dict[str, frozenset[str]] = {
    "Default": frozenset({EMAIL, SMS}),
    "MobileOnlyAuthCodeViaEmail": frozenset({EMAIL}),
    "MobileOnlyAuthCodeViaSms": frozenset({EMAIL, SMS}),
    "None": frozenset(),
}
SCHEME_PATH = ("spec", "issuance", "notificationScheme")


def _scheme(ctx: RuleContext, document: SpecDocument) -> str:
    return ctx.spec(document).issuance.notification_scheme


def profiles_needing(ctx: RuleContext, channel: str) -> list[SpecDocument]:
    """The CredentialProfiles whose notification scheme sends through `channel`."""
    return [d for d in ctx.of_kind("CredentialProfile")
            if channel in SCHEME_CHANNELS[_scheme(ctx, d)]]


def _who(ctx: RuleContext, profiles: list[SpecDocument], what: str) -> str:
    """`profile 'a' sends WHAT (notification scheme Default)`, for one or several profiles."""
    schemes = sorted({_scheme(ctx, d) for d in profiles})
    verb = "sends" if len(profiles) == 1 else "send"
    label = "scheme" if len(schemes) == 1 else "schemes"
    return (f"{profile_names(profiles)} {verb} {what} (notification {label} "
            f"{', '.join(schemes)})")


def _systems(ctx: RuleContext, listener_type: str) -> tuple[bool, list[SpecDocument]]:
    """(an enabled system of the type exists, the disabled ones)."""
    enabled, disabled = False, []
    for document in ctx.of_kind("ExternalSystem"):
        spec = ctx.spec(document)
        if spec.listener_type == listener_type:
            if spec.enabled:
                enabled = True
            else:
                disabled.append(document)
    return enabled, disabled


def _or_enable(disabled: list[SpecDocument]) -> str:
    if not disabled:
        return ""
    return f", or enable ExternalSystem {disabled[0].name!r}"


@rule("MIM201", "error",
      "A notification scheme sends the code by SMS while general.smsEmailNotifications is off",
      "3.4.1")
def sms_notifications_off(ctx: RuleContext) -> Iterator[Finding]:
    if ctx.settings.general.sms_email_notifications:
        return
    profiles = profiles_needing(ctx, SMS)
    if profiles:
        yield ctx.settings_finding(
            ("general", "smsEmailNotifications"),
            f"{_who(ctx, profiles, 'the authentication code by SMS')}; set "
            "smsEmailNotifications to true, or use notification scheme "
            "MobileOnlyAuthCodeViaEmail or None", fallback=profiles[0])


@rule("MIM202", "error",
      "A notification scheme sends the code by SMS but no SMS gateway is set up (neither "
      "general.smsGatewayUrlForNotifications nor an enabled HttpSmsGateway)", "3.4.1")
def sms_gateway_missing(ctx: RuleContext) -> Iterator[Finding]:
    if option_text(ctx.settings.general.sms_gateway_url_for_notifications) is not None:
        return
    enabled, disabled = _systems(ctx, "HttpSmsGateway")
    if enabled:
        return
    profiles = profiles_needing(ctx, SMS)
    if profiles:
        yield ctx.settings_finding(
            ("general", "smsGatewayUrlForNotifications"),
            f"{_who(ctx, profiles, 'the authentication code by SMS')}, but no SMS gateway is "
            "set up; set smsGatewayUrlForNotifications to your e-mail-to-SMS gateway's domain, "
            f"or add an HttpSmsGateway ExternalSystem{_or_enable(disabled)}", fallback=profiles[0])


@rule("MIM203", "error",
      "A notification scheme sends e-mail while notifications.sendEmailNotifications is off",
      "3.4.1")
def email_notifications_off(ctx: RuleContext) -> Iterator[Finding]:
    if ctx.settings.notifications.send_email_notifications:
        return
    profiles = profiles_needing(ctx, EMAIL)
    if profiles:
        yield ctx.settings_finding(
            ("notifications", "sendEmailNotifications"),
            f"{_who(ctx, profiles, 'the collection link by e-mail')}; set "
            "sendEmailNotifications to true, or use notification scheme None (the operator "
            "shows the link and code on screen)", fallback=profiles[0])


@rule("MIM204", "error",
      "A notification scheme sends e-mail but no enabled Smtp ExternalSystem exists", "3.4.1")
def smtp_missing(ctx: RuleContext) -> Iterator[Finding]:
    enabled, disabled = _systems(ctx, "Smtp")
    if enabled:
        return
    for document in profiles_needing(ctx, EMAIL):
        yield Finding(
            document, SCHEME_PATH,
            f"notification scheme {_scheme(ctx, document)} sends e-mail, but no enabled Smtp "
            f"ExternalSystem exists; add one (listenerType: Smtp){_or_enable(disabled)}, or use "
            "notification scheme None")


@rule("MIM205", "error",
      "Send mobile OTP via SMS is on without mobile provision via e-mail", "3.4.2")
def otp_sms_without_email(ctx: RuleContext) -> Iterator[Finding]:
    settings = ctx.settings
    if settings.notifications.send_mobile_otp_via_sms and \
            not settings.devices.mobile_provision_via_email:
        yield ctx.settings_finding(
            ("devices", "mobileProvisionViaEmail"),
            "sendMobileOtpViaSms sends the code by SMS only while the collection link goes by "
            "e-mail; set mobileProvisionViaEmail to true, or sendMobileOtpViaSms to false")


@rule("MIM206", "error",
      "The mail format is not HTML while provisioning messages go by e-mail", "3.4.2")
def mail_format(ctx: RuleContext) -> Iterator[Finding]:
    settings = ctx.settings
    if settings.notifications.mail_format == "HTML":
        return
    if settings.devices.mobile_provision_via_email:
        reason = "mobileProvisionViaEmail is on"
    else:
        profiles = profiles_needing(ctx, EMAIL)
        if not profiles:
            return
        reason = _who(ctx, profiles, "the collection link by e-mail")
    yield ctx.settings_finding(
        ("notifications", "mailFormat"),
        f"{reason}, and provisioning e-mails must be HTML; set mailFormat to HTML")


@rule("MIM207", "warning",
      "An Identity Agent app download URL (Android or iOS) is missing", "3.4.1")
def app_download_urls(ctx: RuleContext) -> Iterator[Finding]:
    processes = ctx.settings.issuance_processes
    missing = [(key, platform) for key, platform, value in (
        ("appDownloadUrlAndroid", "Android", processes.app_download_url_android),
        ("appDownloadUrlIos", "iOS", processes.app_download_url_ios),
    ) if option_text(value) is None]
    if not missing:
        return
    profiles = identity_agent_profiles(ctx)
    if not profiles:
        return
    for key, platform in missing:
        yield ctx.settings_finding(
            ("issuanceProcesses", key),
            f"an {platform} device without the Identity Agent app gets no link to download "
            f"it; set {key} to the app's store page", fallback=profiles[0])
