"""Secrets a person types are masked once, when stored, so nothing the bot shows afterwards
(channel echoes, topic, broadcast, postmortem upload, the database itself) carries them."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from bot.models import ActionItem, Incident, OutboxTask, PostmortemDraft, TimelineEntry
from bot.redaction import mask_secrets

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SECRETS = {
    "aws-access-key": "AKIAIOSFODNN7EXAMPLE",
    "aws-secret-key": AWS_SECRET,
    "github-token": "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2,
    "slack-token": "xoxb-2048-4096-" + "Zq8Wx7Ec6Rv5Tb4Yn3Um",
    "stripe-key": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "google-key": "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "private-key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq\n-----END RSA PRIVATE KEY-----",
}


@pytest.mark.parametrize("text, secret", [
    (f"rotated the key; the old one was secret {AWS_SECRET}", AWS_SECRET),
    (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET),
    (f"creds in the runbook: {AWS_SECRET}", AWS_SECRET),
    ("db password is Tr0ub4dor&3xQ9zL", "Tr0ub4dor&3xQ9zL"),
    ("token 9f8e7d6c5b4aA1B2C3D4", "9f8e7d6c5b4aA1B2C3D4"),
    ('api_key: "Zx9Qw8Er7Ty6Ui5Op4As"', "Zx9Qw8Er7Ty6Ui5Op4As"),
    *[(f"found {value} in the logs", value) for value in SECRETS.values()],
])
def test_detectors_mask_each_kind_of_secret(text, secret):
    masked = mask_secrets(text)
    assert secret not in masked and "[REDACTED:" in masked
    assert mask_secrets(masked) == masked


@pytest.mark.parametrize("text", [
    "the key takeaway: checkout-service-prod needs two replicas",
    "password reset emails were delayed",
    "deployed 3f2c1e9a8b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e to production",
    "token bucket limits hit on the api gateway",
])
def test_ordinary_prose_is_left_alone(text):
    assert mask_secrets(text) == text


def everything_shown(bot, standin) -> str:
    """Every message, topic, ephemeral reply and uploaded file the stand-in holds, and every
    text column the bot stored."""
    parts = [json.dumps(call.args) for call in standin.calls]
    parts += [json.dumps(e) for e in standin.ephemerals()]
    parts += [f["content"].decode(errors="replace") for f in standin.files()]
    with bot.rt.storage.read() as session:
        for table in (Incident, TimelineEntry, ActionItem, PostmortemDraft, OutboxTask):
            parts += [row.model_dump_json() for row in session.exec(select(table)).all()]
    return "\n".join(parts)


def test_secrets_typed_into_an_incident_are_never_shown_again(bot, standin):
    bot.command("U0FRANK", "/incident", f"declare sev2 Checkout down, key {SECRETS['aws-access-key']}")
    channel = bot.channel_of(1)
    bot.command("U0FRANK", "/incident", f"note rotated: secret {AWS_SECRET}", channel=channel)
    bot.command("U0FRANK", "/incident", f"note leaked {SECRETS['github-token']} and {SECRETS['jwt']}", channel=channel)
    bot.command("U0FRANK", "/incident", f"action revoke {SECRETS['stripe-key']}", channel=channel)
    bot.command("U0FRANK", "/incident", f"resolve the {SECRETS['google-key']} key was public", channel=channel)
    shown = everything_shown(bot, standin)
    assert "[REDACTED:" in shown and "postmortem-inc-1.md" in shown
    for label, value in SECRETS.items():
        if label != "private-key":
            assert value not in shown, label
    assert any("rotated: secret [REDACTED:secret]" in m["text"] for m in standin.messages(channel))
