"""Making user text safe to publish: secrets masked, broadcast mentions defused.

``mask_secrets`` is applied once, when text a person or an alert sends is stored (titles,
descriptions, notes, action items, summaries, pinned messages): what the bot keeps is already
masked, so every later view of it (channel echo, topic, broadcast, postmortem, web page, DMs,
logs) is safe. It runs the hand-written ``RULES`` below, then the detectors of the
``detect-secrets`` library (AWS, private keys, JWTs, Slack, GitHub, GitLab, Stripe, Twilio,
SendGrid, OpenAI, npm, PyPI, Azure, Discord, Mailchimp, basic-auth URLs and its keyword
detector), then Google keys and high-entropy values that follow a name such as secret,
password, token or key, with or without ``=`` (``secret wJalr…EXAMPLEKEY``). ``redact`` is the
fast hand-written pass alone, for logs and for rendering rows stored before this existed.

Every hand-written pattern lives in ``RULES`` below, in the order they are applied. A mask names what was found (``[REDACTED:slack-token]``); a URL keeps its user and
host and loses only its password (``postgres://app:***@db``). Assignments such as
``password=...`` keep their key so a reader still sees which setting leaked.

Mentions: Slack turns ``<!channel>``, ``<!here>``, ``<!everyone>``, ``<!subteam^ID>`` and a
typed ``@channel``/``@here``/``@everyone`` into notifications. ``defuse_mentions`` rewrites
each to ``@`` + ZERO WIDTH SPACE + name (``@\u200bchannel``): it reads the same to people and
Slack no longer recognises it. A person's mention ``<@U123|alice>`` becomes plain ``@alice``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import BasePlugin
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.keyword import CONFIG_DENYLIST_REGEX_TO_GROUP, KeywordDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

ZWSP = "\u200b"


@dataclass(frozen=True)
class Rule:
    """One kind of secret: its mask label, words that must occur for it to match (lowercase;
    a cheap test that skips the regex on ordinary text), the pattern, and its replacement."""

    label: str
    hints: tuple[str, ...]
    pattern: re.Pattern[str]
    replace: str | Callable[[re.Match[str]], str]


def _mask(label: str) -> str:
    return f"[REDACTED:{label}]"


def _already_masked(value: str) -> bool:
    bare = value.strip("\"'")
    return bare.startswith("[REDACTED:") or bare == "***"


def _authorization(m: re.Match[str]) -> str:
    scheme = m.group(2).lower()
    label = {"basic": "basic-auth", "digest": "digest-auth"}.get(scheme, "bearer-token")
    return m.group(1) + _mask(label)


_KEYWORD_LABELS = {"p": "password", "s": "secret", "a": "api-key", "t": "token"}


def _assignment(m: re.Match[str]) -> str:
    keyword, separator, value = m.group(1, 2, 3)
    if _already_masked(value):
        return m.group(0)
    quoted = value[0] in "\"'"
    # "password: reset" is prose; "password: hunter2" and "password=reset" are settings.
    if "=" not in separator and not quoted and value.isalpha() and len(value) < 12:
        return m.group(0)
    label = _KEYWORD_LABELS[keyword[0].lower()]
    masked = f"{value[0]}{_mask(label)}{value[0]}" if quoted else _mask(label)
    return f"{keyword}{separator}{masked}"


_PEM_LABEL = r"-----{edge}[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"

RULES: tuple[Rule, ...] = (
    Rule(
        "private-key",
        ("private key",),
        # A truncated paste without its END line loses everything that looks like key body.
        re.compile(
            _PEM_LABEL.format(edge="BEGIN ")
            + r"(?:.*?"
            + _PEM_LABEL.format(edge="END ")
            + r"|[A-Za-z0-9+/=\s:,-]*)",
            re.DOTALL,
        ),
        _mask("private-key"),
    ),
    Rule(
        "slack-webhook",
        ("hooks.slack.com",),
        re.compile(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]+"),
        _mask("slack-webhook"),
    ),
    Rule(
        "ack-link",
        ("/ack/",),
        # An acknowledgement link acknowledges a page for whoever holds it (access logs, pastes).
        re.compile(r"(/ack/)[0-9]{1,9}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
        lambda m: m.group(1) + _mask("ack-link"),
    ),
    Rule(
        "slack-token",
        ("xox", "xapp-"),
        re.compile(r"(?<![A-Za-z0-9])(?:xox[abposre]|xoxe\.xox[bp]|xapp)-[A-Za-z0-9-]{8,}"),
        _mask("slack-token"),
    ),
    Rule(
        "github-token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
        _mask("github-token"),
    ),
    Rule(
        "aws-access-key",
        ("akia", "asia"),
        re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        _mask("aws-access-key"),
    ),
    Rule(
        "aws-secret-key",
        ("access",),
        re.compile(
            r"((?:aws_)?secret_?access_?key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{20,}",
            re.IGNORECASE,
        ),
        r"\g<1>" + _mask("aws-secret-key"),
    ),
    Rule(
        "stripe-key",
        ("k_live_", "k_test_"),
        re.compile(r"(?<![A-Za-z0-9])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
        _mask("stripe-key"),
    ),
    Rule(
        "authorization",
        ("authorization",),
        re.compile(
            r"(\bauthorization[\"']?\s*[:=]\s*[\"']?(bearer|basic|token|digest)\s+)[^\s\"']+",
            re.IGNORECASE,
        ),
        _authorization,
    ),
    Rule(
        "bearer-token",
        ("bearer",),
        # Needs a digit and some length, so "Bearer tokens expire" stays prose.
        re.compile(
            r"(\bbearer\s+)(?=[A-Za-z0-9._~+/-]*[0-9])[A-Za-z0-9._~+/-]{16,}=*", re.IGNORECASE
        ),
        r"\g<1>" + _mask("bearer-token"),
    ),
    Rule(
        "jwt",
        ("eyj",),
        re.compile(
            r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
        ),
        _mask("jwt"),
    ),
    Rule(
        "url-password",
        ("@",),
        re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*):[^\s/?#]+@"),
        r"\g<1>:***@",
    ),
    Rule(
        "assignment",
        ("pass", "secret", "api", "token"),
        re.compile(
            # The keyword may end a longer name (DB_PASSWORD, client_secret), kept as typed.
            r"(?<![A-Za-z0-9])(password|passwd|passphrase|secret|api[_-]?key|token)(?![A-Za-z0-9])"
            r"([\"']?\s*[:=]\s*)(\"[^\"\n]*\"|'[^'\n]*'|[^\s\"'&,;]+)",
            re.IGNORECASE,
        ),
        _assignment,
    ),
)


# (hint, rule index) pairs: substring tests are far cheaper than running every pattern. The
# hints with an underscore are only looked for in text that has one, which most text has not.
_HINTS = tuple((hint, index) for index, rule in enumerate(RULES) for hint in rule.hints)
_PLAIN_HINTS = tuple((hint, index) for hint, index in _HINTS if "_" not in hint)
_UNDERSCORE_HINTS = tuple((hint, index) for hint, index in _HINTS if "_" in hint)


def _hinted_rules(text: str) -> list[int]:
    """The indexes in RULES of the rules whose hints occur in ``text`` (with repeats)."""
    lowered = text.lower()
    found = [index for hint, index in _PLAIN_HINTS if hint in lowered]
    if "_" in lowered:
        found += [index for hint, index in _UNDERSCORE_HINTS if hint in lowered]
    return found


def hinted(text: str) -> bool:
    """Whether any rule's hint occurs in ``text``: if none does, ``redact`` returns it as is."""
    return bool(_hinted_rules(text))


def redact(text: str) -> str:
    """Return ``text`` with every secret ``RULES`` recognises masked; idempotent."""
    found = _hinted_rules(text)
    if found:
        for index in sorted(set(found)):
            rule = RULES[index]
            text = rule.pattern.sub(rule.replace, text)
    return text


def _broadcast(m: re.Match[str]) -> str:
    name = m.group(1) or m.group(3) or (m.group(2) or "").lstrip("@") or "usergroup"
    return f"@{ZWSP}{name}"


_BROADCAST = re.compile(
    r"<!(channel|here|everyone)(?:\|[^>]*)?>"
    r"|<!subteam\^[A-Za-z0-9]+(?:\|([^>]*))?>"
    r"|(?<![\w@])@(channel|here|everyone)\b",
    re.IGNORECASE,
)
_PERSON = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")


def defuse_mentions(text: str) -> str:
    """Return ``text`` with no mention that would notify anyone when shown in Slack."""
    if "@" not in text and "<!" not in text:
        return text
    text = _BROADCAST.sub(_broadcast, text)
    return _PERSON.sub(lambda m: "@" + (m.group(2) or m.group(1)), text)


def safe_text(text: str) -> str:
    """User text ready to publish: secrets masked, then mentions defused."""
    return defuse_mentions(redact(text))


# detect-secrets' detectors with the mask label each finding gets.
_DETECTORS: tuple[tuple[str, BasePlugin], ...] = (
    ("aws-key", AWSKeyDetector()),
    ("private-key", PrivateKeyDetector()),
    ("jwt", JwtTokenDetector()),
    ("slack-token", SlackDetector()),
    ("github-token", GitHubTokenDetector()),
    ("gitlab-token", GitLabTokenDetector()),
    ("stripe-key", StripeDetector()),
    ("twilio-key", TwilioKeyDetector()),
    ("sendgrid-key", SendGridDetector()),
    ("openai-key", OpenAIDetector()),
    ("npm-token", NpmDetector()),
    ("pypi-token", PypiTokenDetector()),
    ("azure-key", AzureStorageKeyDetector()),
    ("discord-token", DiscordBotTokenDetector()),
    ("mailchimp-key", MailchimpDetector()),
    ("artifactory-token", ArtifactoryDetector()),
    ("basic-auth", BasicAuthDetector()),
)
_KEYWORDS = KeywordDetector()
_ENTROPY = Base64HighEntropyString()
_GOOGLE = re.compile(r"(?<![A-Za-z0-9_-])(?:AIza[0-9A-Za-z_-]{35}|ya29\.[0-9A-Za-z_-]{20,})")
# A value after a secret's name, with "=", ":", "is" or only a space between.
_NAMED = re.compile(
    r"(?<![A-Za-z0-9])((?:[A-Za-z0-9]+[_-])*(?:secret|password|passwd|passphrase|token|credentials?|key)s?)"
    r"([\"']?(?:\s*[:=]\s*|\s+is\s+|\s+)[\"']?)([A-Za-z0-9/+_=.~!@#$%^&*?-]{12,})",
    re.IGNORECASE,
)
# An AWS secret access key's shape: 40 characters of base64 with both cases (a git SHA has one).
_BARE_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[A-Z])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


def _looks_random(value: str, entropy: float = 3.5) -> bool:
    """A value that is more likely a generated secret than a word: mixed letters and digits
    (or both cases), and high Shannon entropy."""
    mixed = any(c.isdigit() for c in value) or (any(c.islower() for c in value) and any(c.isupper() for c in value))
    return mixed and _ENTROPY.calculate_shannon_entropy(value) >= entropy


def _findings(text: str) -> Iterator[tuple[str, str]]:
    """(label, secret value) of each finding of the detectors in ``text``, line by line."""
    for line in text.splitlines():
        for label, detector in _DETECTORS:
            for found in detector.analyze_string(line):
                if found:
                    yield label, found
        for found in _KEYWORDS.analyze_string(line, CONFIG_DENYLIST_REGEX_TO_GROUP):
            value = (found or "").strip().strip("\"'")
            if len(value) >= 6 and not _already_masked(value) and _looks_random(value, 3.0):
                yield "secret", value


def _named(m: re.Match[str]) -> str:
    value = m.group(3)
    if value.startswith("[REDACTED") or not _looks_random(value):
        return m.group(0)
    return f"{m.group(1)}{m.group(2)}{_mask('secret')}"


def _bare_aws_secret(m: re.Match[str]) -> str:
    return _mask("aws-secret-key") if _looks_random(m.group(0), 4.0) else m.group(0)


def mask_secrets(text: str) -> str:
    """Return ``text`` with every secret masked that ``RULES``, detect-secrets' detectors, Google
    key shapes or a named high-entropy value reveal; idempotent. Run when text is stored."""
    if not text:
        return text
    text = redact(text)
    for label, found in sorted(set(_findings(text)), key=lambda f: -len(f[1])):
        if len(found) >= 6 and "[REDACTED" not in found:
            text = text.replace(found, _mask(label))
    text = _GOOGLE.sub(_mask("google-key"), text)
    text = _NAMED.sub(_named, text)
    return _BARE_AWS_SECRET.sub(_bare_aws_secret, text)
