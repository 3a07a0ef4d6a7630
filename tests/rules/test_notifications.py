"""MIM2xx: notification schemes against the Settings options and external systems they need.

Each case breaks BASE as little as possible and asserts the rule's exact findings; the same
change with its fix applied draws none from that rule.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rules.base import changed, findings

S = "settings.yaml:{}: Settings/system: spec.{}: {}"
SCHEME = "    notificationScheme: Default\n"
SMS_ON = "    smsEmailNotifications: true\n"
GATEWAY = "    smsGatewayUrlForNotifications: sms.example.com\n"
EMAIL_ON = "    sendEmailNotifications: true\n"
PROVISION = "    mobileProvisionViaEmail: true\n"
MAIL_HTML = "    mailFormat: HTML\n"
OTP_SMS = "    sendMobileOtpViaSms: true\n"
IOS_APP = "    appDownloadUrlIos: https://apps.example.com/identity-agent\n"
ANDROID_APP = "    appDownloadUrlAndroid: https://play.example.com/identity-agent\n"
SMS_GATEWAY = """
    apiVersion: mim/v1
    kind: ExternalSystem
    metadata:
      name: SMS
    spec:
      listenerType: HttpSmsGateway
      url: https://sms.example.com/send
      enabled: {enabled}
    """


@pytest.fixture
def found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """One rule's findings for a repository written in a fresh folder, which is the working
    directory (so files read as settings.yaml, profiles.yaml, ...)."""

    def run(rule_id: str, files: dict[str, str], folder: str = "repo") -> list[str]:
        root = tmp_path / folder
        root.mkdir(exist_ok=True)
        monkeypatch.chdir(root)
        return findings(root, files, rule_id)

    return run


def scheme(name: str) -> dict[str, tuple[str, str]]:
    return {"profiles.yaml": (SCHEME, f"    notificationScheme: {name}\n")}


def settings(old: str, new: str, **more: tuple[str, str]) -> dict[str, tuple[str, str]]:
    return {"settings.yaml": (old, new), **more}


def gateway(enabled: bool) -> dict[str, str]:
    return {"sms.yaml": SMS_GATEWAY.format(enabled=str(enabled).lower())}


CASES = [
    pytest.param(
        "MIM201",
        {"replace": settings(SMS_ON, "    smsEmailNotifications: false\n")},
        [S.format("11:28", "general.smsEmailNotifications",
                  "profile 'mobile-standard' sends the authentication code by SMS (notification "
                  "scheme Default); set smsEmailNotifications to true, or use notification scheme "
                  "MobileOnlyAuthCodeViaEmail or None")],
        {"replace": {**settings(SMS_ON, "    smsEmailNotifications: false\n"),
                     **scheme("MobileOnlyAuthCodeViaEmail")}},
        id="MIM201"),
    pytest.param(
        "MIM202",
        {"replace": settings(GATEWAY, "")},
        [S.format("11:5", "general.smsGatewayUrlForNotifications",
                  "profile 'mobile-standard' sends the authentication code by SMS (notification "
                  "scheme Default), but no SMS gateway is set up; set "
                  "smsGatewayUrlForNotifications to your e-mail-to-SMS gateway's domain, or add "
                  "an HttpSmsGateway ExternalSystem")],
        {"replace": settings(GATEWAY, ""), "add": gateway(True)},
        id="MIM202"),
    pytest.param(
        "MIM202",
        {"replace": {**settings(GATEWAY, ""), **scheme("MobileOnlyAuthCodeViaSms")},
         "add": gateway(False)},
        [S.format("11:5", "general.smsGatewayUrlForNotifications",
                  "profile 'mobile-standard' sends the authentication code by SMS (notification "
                  "scheme MobileOnlyAuthCodeViaSms), but no SMS gateway is set up; set "
                  "smsGatewayUrlForNotifications to your e-mail-to-SMS gateway's domain, or add "
                  "an HttpSmsGateway ExternalSystem, or enable ExternalSystem 'SMS'")],
        {"replace": {**settings(GATEWAY, ""), **scheme("MobileOnlyAuthCodeViaSms")},
         "add": gateway(True)},
        id="MIM202-disabled-gateway"),
    pytest.param(
        "MIM203",
        {"replace": settings(EMAIL_ON, "    sendEmailNotifications: false\n")},
        [S.format("14:29", "notifications.sendEmailNotifications",
                  "profile 'mobile-standard' sends the collection link by e-mail (notification "
                  "scheme Default); set sendEmailNotifications to true, or use notification "
                  "scheme None (the operator shows the link and code on screen)")],
        {"replace": {**settings(EMAIL_ON, "    sendEmailNotifications: false\n"),
                     **scheme("None")}},
        id="MIM203"),
    pytest.param(
        "MIM204",
        {"replace": {"systems.yaml": ("  listenerType: Smtp\n",
                                      "  listenerType: Smtp\n  enabled: false\n")}},
        ["profiles.yaml:8:25: CredentialProfile/mobile-standard: spec.issuance.notificationScheme: "
         "notification scheme Default sends e-mail, but no enabled Smtp ExternalSystem exists; "
         "add one (listenerType: Smtp), or enable ExternalSystem 'Mail', or use notification "
         "scheme None"],
        {"replace": {"systems.yaml": ("  listenerType: Smtp\n",
                                      "  listenerType: Smtp\n  enabled: true\n")}},
        id="MIM204"),
    pytest.param(
        "MIM204",
        {"replace": scheme("MobileOnlyAuthCodeViaEmail"), "remove": ("systems.yaml",)},
        ["profiles.yaml:8:25: CredentialProfile/mobile-standard: spec.issuance.notificationScheme: "
         "notification scheme MobileOnlyAuthCodeViaEmail sends e-mail, but no enabled Smtp "
         "ExternalSystem exists; add one (listenerType: Smtp), or use notification scheme None"],
        {"replace": scheme("None"), "remove": ("systems.yaml",)},
        id="MIM204-no-smtp"),
    pytest.param(
        "MIM205",
        {"replace": settings(EMAIL_ON + MAIL_HTML + "  devices:\n" + PROVISION,
                             EMAIL_ON + OTP_SMS + MAIL_HTML + "  devices:\n"
                             "    mobileProvisionViaEmail: false\n")},
        [S.format("18:30", "devices.mobileProvisionViaEmail",
                  "sendMobileOtpViaSms sends the code by SMS only while the collection link goes "
                  "by e-mail; set mobileProvisionViaEmail to true, or sendMobileOtpViaSms to "
                  "false")],
        {"replace": settings(EMAIL_ON, EMAIL_ON + OTP_SMS)},
        id="MIM205"),
    pytest.param(
        "MIM206",
        {"replace": settings("mailFormat: HTML", "mailFormat: Text")},
        [S.format("15:17", "notifications.mailFormat",
                  "mobileProvisionViaEmail is on, and provisioning e-mails must be HTML; set "
                  "mailFormat to HTML")],
        {},  # BASE: HTML
        id="MIM206"),
    pytest.param(
        "MIM206",
        {"replace": settings(MAIL_HTML + "  devices:\n" + PROVISION, "    mailFormat: Text\n")},
        [S.format("15:17", "notifications.mailFormat",
                  "profile 'mobile-standard' sends the collection link by e-mail (notification "
                  "scheme Default), and provisioning e-mails must be HTML; set mailFormat to "
                  "HTML")],
        {"replace": settings(MAIL_HTML + "  devices:\n" + PROVISION, "    mailFormat: Text\n",
                             **scheme("None"))},
        id="MIM206-scheme"),
    pytest.param(
        "MIM207",
        {"replace": settings(IOS_APP, "")},
        [S.format("19:5", "issuanceProcesses.appDownloadUrlIos",
                  "warning: an iOS device without the Identity Agent app gets no link to "
                  "download it; set appDownloadUrlIos to the app's store page")],
        {},  # BASE: both set
        id="MIM207"),
    pytest.param(
        "MIM207",
        {"replace": settings(ANDROID_APP + IOS_APP, "    appDownloadUrlAndroid: ''\n")},
        [S.format("19:5", "issuanceProcesses.appDownloadUrlIos",
                  "warning: an iOS device without the Identity Agent app gets no link to "
                  "download it; set appDownloadUrlIos to the app's store page"),
         S.format("19:28", "issuanceProcesses.appDownloadUrlAndroid",
                  "warning: an Android device without the Identity Agent app gets no link to "
                  "download it; set appDownloadUrlAndroid to the app's store page")],
        {},
        id="MIM207-both"),
]


@pytest.mark.parametrize(("rule_id", "broken", "expected", "fixed"), CASES)
def test_rule(found, rule_id, broken, expected, fixed) -> None:
    assert found(rule_id, changed(**broken), "broken") == expected
    assert found(rule_id, changed(**fixed), "fixed") == []


def test_without_settings_a_scheme_finding_lands_on_the_profile(found) -> None:
    assert found("MIM203", changed(remove=("settings.yaml",)), "broken") == [
        "profiles.yaml:1:1: CredentialProfile/mobile-standard: profile 'mobile-standard' sends "
        "the collection link by e-mail (notification scheme Default); set sendEmailNotifications "
        "to true, or use notification scheme None (the operator shows the link and code on "
        "screen) (there is no Settings document: add one)"]
    assert found("MIM203", changed(remove=("settings.yaml",), replace=scheme("None")),
                 "fixed") == []


def test_several_profiles_are_named_once(found) -> None:
    second = changed(replace=settings(SMS_ON, "    smsEmailNotifications: false\n"), add={
        f"p{index}.yaml": f"""
            apiVersion: mim/v1
            kind: CredentialProfile
            metadata:
              name: extra-{index}
            spec:
              issuance:
                notificationScheme: MobileOnlyAuthCodeViaSms
            """ for index in range(3)})
    assert found("MIM201", second) == [S.format(
        "11:28", "general.smsEmailNotifications",
        "profiles 'extra-0', 'extra-1' and 2 more send the authentication code by SMS "
        "(notification schemes Default, MobileOnlyAuthCodeViaSms); set smsEmailNotifications to "
        "true, or use notification scheme MobileOnlyAuthCodeViaEmail or None")]
