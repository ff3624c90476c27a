"""Sign in with Slack on the stand-in: Slack's OpenID Connect endpoints, on the stand-in's own
host as they are on slack.com, so the console and the tests sign in for real.

- ``GET /.well-known/openid-configuration``: the discovery document.
- ``GET /openid/connect/authorize``: a page listing the workspace's people; picking one
  (``pick=U…``) redirects back to the app's ``redirect_uri`` with a one-time ``code`` and the
  app's ``state``. ``login_hint=U…`` picks at once, as a signed-in browser would.
- ``POST /api/openid.connect.token``: the code for an access token and an ``id_token`` (RS256,
  with the app's ``nonce``), the app authenticated by its client ID and secret.
- ``GET /openid/connect/keys``: the JWKS that verifies the ``id_token``.
- ``GET|POST /api/openid.connect.userInfo``: the person behind an access token.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

CODE_SECONDS = 600
_KEY_LOCK = threading.Lock()
_KEY: Any = None


def signing_key() -> Any:
    """One RSA key per process: generating it takes a moment, and every stand-in may share it."""
    global _KEY
    with _KEY_LOCK:
        if _KEY is None:
            _KEY = RSAKey.generate_key(2048, parameters={"kid": "standin-1", "alg": "RS256", "use": "sig"})
        return _KEY


class OpenIDProvider:
    """The OpenID Connect side of the stand-in (mixed into SlackStandIn)."""

    base_url: str
    team_id: str
    team_name: str
    lock: Any
    _users: dict[str, dict[str, Any]]
    _record: Any
    _notify: Any

    def _oidc_init(self) -> None:
        self.oidc_clients: dict[str, str] = {}
        self._codes: dict[str, dict[str, Any]] = {}
        self._access_tokens: dict[str, str] = {}

    def add_oidc_client(self, client_id: str, client_secret: str) -> None:
        """Let an app with this client ID and secret use Sign in with Slack."""
        with self.lock:
            self.oidc_clients[client_id] = client_secret

    @property
    def issuer(self) -> str:
        return self.base_url.rstrip("/")

    def discovery(self) -> dict[str, Any]:
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/openid/connect/authorize",
            "token_endpoint": f"{base}/api/openid.connect.token",
            "userinfo_endpoint": f"{base}/api/openid.connect.userInfo",
            "jwks_uri": f"{base}/openid/connect/keys",
            "scopes_supported": ["openid", "profile", "email"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["form_post"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "auth_time", "iss"],
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": True,
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [signing_key().as_dict(private=False)]}

    def authorize(self, query: str) -> tuple[int, dict[str, str], str]:
        """(status, headers, HTML) for the authorization page or the redirect back to the app."""
        args = dict(parse_qsl(query, keep_blank_values=True))
        client_id, redirect_uri = args.get("client_id", ""), args.get("redirect_uri", "")
        with self.lock:
            known = client_id in self.oidc_clients
            people = sorted((u["name"], uid) for uid, u in self._users.items() if not u.get("is_bot"))
        if not known or not redirect_uri.startswith(("http://", "https://")) or args.get("response_type") != "code":
            return 400, {}, "<p>invalid_client or redirect_uri or response_type</p>"
        picked = args.get("pick") or args.get("login_hint")
        if picked:
            with self.lock:
                if picked not in self._users:
                    return 400, {}, "<p>unknown user</p>"
                code = secrets.token_urlsafe(24)
                self._codes[code] = {"user": picked, "client_id": client_id, "redirect_uri": redirect_uri,
                                     "nonce": args.get("nonce"), "expires": time.time() + CODE_SECONDS}
            back = {"code": code, **({"state": args["state"]} if "state" in args else {})}
            return 302, {"Location": _with_query(redirect_uri, back)}, ""
        shown = {k: v for k, v in args.items() if k != "pick"}
        links = "".join(
            f'<li><a href="/openid/connect/authorize?{escape(urlencode({**shown, "pick": uid}))}">'
            f"Sign in as {escape(name)}</a></li>"
            for name, uid in people
        )
        page = (f"<!doctype html><title>Sign in to {escape(self.team_name)}</title>"
                f"<h1>Sign in to {escape(self.team_name)}</h1><p>Pick who you are:</p><ul>{links}</ul>")
        return 200, {}, page

    def handle_oidc(self, method: str, args: dict[str, Any], token: str | None, basic: str | None) -> dict[str, Any]:
        """openid.connect.token (the app's client credentials) or openid.connect.userInfo (the
        person's access token): Sign in with Slack's Web API methods, recorded as calls."""
        body = self.oidc_token(args, basic) if method == "openid.connect.token" else self.oidc_userinfo(token)
        shown = {k: ("***" if k in ("client_secret", "code") else v) for k, v in args.items()}
        self._notify(self._record(method, shown, {k: v for k, v in body.items() if k != "id_token"}))
        return body

    def oidc_token(self, args: dict[str, Any], basic: str | None) -> dict[str, Any]:
        """openid.connect.token: a code for an access token and an id_token."""
        client_id, client_secret = args.get("client_id", ""), args.get("client_secret", "")
        if basic:
            client_id, _, client_secret = base64.b64decode(basic).decode().partition(":")
        with self.lock:
            if not client_id or self.oidc_clients.get(client_id) != client_secret:
                return {"ok": False, "error": "invalid_client_id" if client_id not in self.oidc_clients
                        else "bad_client_secret"}
            grant = self._codes.pop(str(args.get("code", "")), None)  # a code works once
            if grant is None or grant["expires"] < time.time() or grant["client_id"] != client_id:
                return {"ok": False, "error": "invalid_code"}
            if args.get("redirect_uri") != grant["redirect_uri"]:
                return {"ok": False, "error": "bad_redirect_uri"}
            access = "xoxp-" + secrets.token_urlsafe(24)
            self._access_tokens[access] = grant["user"]
            claims = self._claims(grant["user"])
        now = int(time.time())
        claims.update(iss=self.issuer, aud=client_id, iat=now, exp=now + 3600, auth_time=now)
        if grant["nonce"]:
            claims["nonce"] = grant["nonce"]
        id_token = jwt.encode({"alg": "RS256", "kid": "standin-1", "typ": "JWT"}, claims, signing_key())
        return {"ok": True, "access_token": access, "token_type": "Bearer", "id_token": id_token}

    def oidc_userinfo(self, token: str | None) -> dict[str, Any]:
        with self.lock:
            user = self._access_tokens.get(token or "")
            if user is None:
                return {"ok": False, "error": "invalid_auth"}
            return {"ok": True, **self._claims(user)}

    def _claims(self, user_id: str) -> dict[str, Any]:
        person = self._users[user_id]
        return {
            "sub": user_id,
            "https://slack.com/user_id": user_id,
            "https://slack.com/team_id": self.team_id,
            "https://slack.com/team_name": self.team_name,
            "email": person.get("email") or "",
            "email_verified": True,
            "name": person.get("real_name") or person["name"],
            "locale": "en-US",
        }


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
