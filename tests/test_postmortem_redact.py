"""Secrets pasted into an incident channel never reach a draft; mentions never notify."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.postmortem.redact import RULES, defuse_mentions, redact, safe_text

# Test keys are assembled at run time so secret scanners do not flag this file.
SLACK_BOT = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
SLACK_USER = "xoxp-" + "123456789012-123456789012-1234567890123-0123456789abcdef"
SLACK_APP = "xapp-" + "1-A0123456789-1234567890123-abcdef0123456789"
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SESSION_ID = "ASIA" + "Y34FZKBOKMUTVV7A"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
GITHUB_CLASSIC = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
GITHUB_FINE = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"
STRIPE = "sk_live_" + "51HxQm2K9vZpLr8TnWq3eYb7"
JWT = (
    "eyJhbGciOiJIUzI1NiJ9."
    + "eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA7bq3Xy0example0key0material0only0for0tests0AbCdEf\n"
    "q1w2e3r4t5y6u7i8o9p0+/==\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("pasted", "shown"),
    [
        (f"token is {SLACK_BOT} oops", "token is [REDACTED:slack-token] oops"),
        (f"SLACK_BOT_TOKEN={SLACK_BOT}", "SLACK_BOT_TOKEN=[REDACTED:slack-token]"),
        (SLACK_USER, "[REDACTED:slack-token]"),
        (f"app token {SLACK_APP}", "app token [REDACTED:slack-token]"),
        (
            "hook https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "hook [REDACTED:slack-webhook]",
        ),
        (
            '"GET /ack/12.1Oz9mrzHUhMq-jt6RafsxcpE.dQ6JWbj6RgAZ4t1svr8jMAQWXzNmMWo_xIZF2aZZcpY HTTP/1.1" 200',
            '"GET /ack/[REDACTED:ack-link] HTTP/1.1" 200',
        ),
        (f"key id {AWS_ID} in logs", "key id [REDACTED:aws-access-key] in logs"),
        (f"{AWS_SESSION_ID},", "[REDACTED:aws-access-key],"),
        (
            f"aws_secret_access_key = {AWS_SECRET}",
            "aws_secret_access_key = [REDACTED:aws-secret-key]",
        ),
        (
            f'"AWS_SECRET_ACCESS_KEY": "{AWS_SECRET}"',
            '"AWS_SECRET_ACCESS_KEY": "[REDACTED:aws-secret-key]"',
        ),
        (
            f"curl -H 'Authorization: Bearer {JWT}' https://api",
            "curl -H 'Authorization: Bearer [REDACTED:bearer-token]' https://api",
        ),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [REDACTED:basic-auth]"),
        ("authorization: token abc", "authorization: token [REDACTED:bearer-token]"),
        ("used Bearer 9f8e7d6c5b4a39281706f5e4", "used Bearer [REDACTED:bearer-token]"),
        (f"cookie {JWT}", "cookie [REDACTED:jwt]"),
        (
            "postgres://checkout:s3cr3t@db.internal:5432/orders",
            "postgres://checkout:***@db.internal:5432/orders",
        ),
        ("redis://:p@ss@cache:6379/0", "redis://:***@cache:6379/0"),
        ("https://deploy:tok3n@git.example.com/x.git", "https://deploy:***@git.example.com/x.git"),
        (f"before\n{PEM}\nafter", "before\n[REDACTED:private-key]\nafter"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nb3Blbn",
            "[REDACTED:private-key]",
        ),
        (f"GITHUB_TOKEN {GITHUB_CLASSIC}.", "GITHUB_TOKEN [REDACTED:github-token]."),
        (GITHUB_FINE, "[REDACTED:github-token]"),
        (f"PSP key {STRIPE}", "PSP key [REDACTED:stripe-key]"),
        ("password=hunter2", "password=[REDACTED:password]"),
        ("DB_PASSWORD: 'correct horse'", "DB_PASSWORD: '[REDACTED:password]'"),
        ("password: hunter2", "password: [REDACTED:password]"),
        ("client_secret=abc123&grant=x", "client_secret=[REDACTED:secret]&grant=x"),
        (
            "?api_key=XyZ123 and apikey: 42abc",
            "?api_key=[REDACTED:api-key] and apikey: [REDACTED:api-key]",
        ),
        ('{"access_token": "a.b.c"}', '{"access_token": "[REDACTED:token]"}'),
    ],
)
def test_each_kind_of_secret_is_masked(pasted, shown):
    assert redact(pasted) == shown


@pytest.mark.parametrize(
    "prose",
    [
        "Rolled back payments-api to 4.17.2; error rate back to 0.2%.",
        "See https://grafana.example.com:3000/d/abc?orgId=1&from=now-1h for the dashboard",
        "Mail oncall@example.com or ask in #payments; ssh deploy@10.0.0.4",
        "Bearer tokens expire after an hour, so the password reset flow broke.",
        "The password: reset link was wrong; the secret: nobody read the runbook.",
        "We need a token bucket; max_tokens=100 was too low. Secretary=bob.",
        "Asia/Singapore took the page; AKIA is the prefix of long-term AWS key ids.",
        "tokens such as xoxb-… must never be pasted; ghp_ prefixes GitHub tokens",
        "mypassword=x is not a setting we have, and the API key rotation is planned.",
        "Private key rotation is scheduled; BEGIN and END markers were fine.",
        "status: investigating → identified | p99 850 ms",
    ],
)
def test_ordinary_incident_prose_is_left_alone(prose):
    assert redact(prose) == prose


def test_every_rule_has_a_test_above():
    tested = {
        "private-key",
        "ack-link",
        "slack-webhook",
        "slack-token",
        "github-token",
        "aws-access-key",
        "aws-secret-key",
        "stripe-key",
        "authorization",
        "bearer-token",
        "jwt",
        "url-password",
        "assignment",
    }
    assert {rule.label for rule in RULES} == tested


def test_rule_hints_are_lowercase_so_the_prefilter_can_match_them():
    for rule in RULES:
        assert rule.hints and all(hint == hint.lower() for hint in rule.hints), rule.label


def test_masking_twice_changes_nothing_more():
    pasted = f"{SLACK_BOT} {AWS_ID} password=x1 https://u:p@h/ Bearer 1234567890abcdefgh {PEM}"
    once = redact(pasted)
    assert redact(once) == once


@given(
    st.text(alphabet=st.sampled_from(list("ab:=@/ _-\"'\nxoAKIpasswordtokenBearer1")), max_size=60)
)
def test_redaction_is_idempotent_on_any_text(text):
    once = redact(text)
    assert redact(once) == once


BROADCAST = re.compile(
    r"<!(?:channel|here|everyone|subteam)|(?<![\w@])@(?:channel|here|everyone)\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("<!channel> checkout down", "@\u200bchannel checkout down"),
        ("<!here|here> and <!everyone>", "@\u200bhere and @\u200beveryone"),
        ("ping <!subteam^S0PAY|@payments-oncall>", "ping @\u200bpayments-oncall"),
        ("ping <!subteam^S0PAY>", "ping @\u200busergroup"),
        ("@here please look, @Channel too", "@\u200bhere please look, @\u200bChannel too"),
        ("handing over to <@U0MARCUS|marcus>", "handing over to @marcus"),
        ("cc <@U0NIAMH>", "cc @U0NIAMH"),
        ("mail sre@here.example.com", "mail sre@here.example.com"),
    ],
)
def test_mentions_are_defused_but_still_read_the_same(typed, shown):
    assert defuse_mentions(typed) == shown


@given(st.text(alphabet=st.sampled_from(list("<!@>|^S1 channelhereveryonsubtam")), max_size=40))
def test_no_text_keeps_a_broadcast_mention(text):
    assert not BROADCAST.search(defuse_mentions(text))


def test_safe_text_masks_secrets_and_defuses_mentions():
    assert safe_text(f"<!channel> {SLACK_BOT}") == "@\u200bchannel [REDACTED:slack-token]"
