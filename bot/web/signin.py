"""Sign in with Slack (OpenID Connect, through authlib) for the web pages, and the CSRF check
of every form (security headers are added to every response in ``bot.web.headers``).

- ``GET /login?next=PATH`` sends the browser to Slack's authorization page with a fresh
  ``state`` and ``nonce`` (authlib keeps both in the session and checks them on the way back).
- ``GET /auth/slack/callback`` takes Slack's one-time code for an ID token, verified against
  Slack's published keys, and signs the person in: a new session (a signed cookie, HttpOnly,
  SameSite=Lax, Secure when PUBLIC_URL is https) with a random session ID and CSRF value.
- ``POST /logout`` (with the CSRF value) ends the session for good: its ID is recorded, so a
  copy of the cookie kept from before is refused.

A cookie that does not verify, a session that was signed out or is older than
``SESSION_HOURS``, and a wrong ``state`` are refused, logged, and change nothing. Without
SLACK_CLIENT_ID none of these routes exist (404).
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from authlib.integrations.flask_client import OAuth
from flask import Flask, Response, abort, redirect, request, session
from sqlalchemy.exc import IntegrityError

from bot.models import Claim
from bot.web.app import ROUTE_INSTALLERS
from bot.web.templating import render

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

SESSION_HOURS = 12
COOKIE = "oncall_session"
# Endpoints whose POST must carry the session's CSRF value (other modules add theirs).
CSRF_ENDPOINTS: set[str] = {"logout"}


def csrf_value() -> str:
    """The session's CSRF value, for a hidden form field named ``csrf``."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return str(session["csrf"])


def _signed_out_key(sid: str) -> str:
    return f"web-session-ended:{sid}"


class SignIn:
    """Who is signed in on this request, for the page modules."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def user(self) -> str | None:
        """The signed-in person's Slack user ID; None (and a log line when a cookie was refused)."""
        user, sid, at = session.get("user"), session.get("sid"), session.get("at")
        if not user:
            if request.cookies.get(COOKIE) and not session:
                log.warning("refused a session cookie that does not verify on %s", request.path)
            return None
        if not isinstance(at, (int, float)) or time.time() - at > SESSION_HOURS * 3600:
            log.info("refused an expired session of %s on %s", user, request.path)
            return None
        with self.rt.storage.read() as db:
            ended = db.get(Claim, _signed_out_key(str(sid))) is not None
        if ended:
            log.warning("refused a signed-out session of %s replayed on %s", user, request.path)
            return None
        return str(user)

    def page(self, view: Callable[..., Any]) -> Callable[..., Any]:
        """A page view for signed-in people: anonymous visitors are sent to sign in first."""

        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            user = self.user()
            if user is None:
                return Response(status=303, headers={"Location": f"/login?next={quote(request.path)}"})
            return view(user, *args, **kwargs)

        return guarded


def _local_path(target: str | None) -> str:
    """Where to go after signing in: a path of ours, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return parts.path if not parts.netloc else "/"


def install_headers(web: Flask) -> None:
    @web.after_request
    def private_pages(response: Response) -> Response:
        if response.mimetype == "text/html":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @web.before_request
    def check_csrf() -> None:
        if request.method == "POST" and request.endpoint in CSRF_ENDPOINTS:
            sent, kept = request.form.get("csrf", ""), session.get("csrf", "")
            if not kept or not hmac.compare_digest(str(sent).encode(), str(kept).encode()):
                log.warning("refused a form without its CSRF value on %s", request.path)
                abort(403)


def install(runtime: Runtime, web: Flask) -> None:
    """Security headers and CSRF checks always; Sign in with Slack when it is configured."""
    install_headers(web)
    settings = runtime.settings
    secure = settings.base_url.startswith("https://")
    web.secret_key = settings.key("web-session")
    web.config.update(SESSION_COOKIE_NAME=COOKIE, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SECURE=secure,
                      SESSION_COOKIE_SAMESITE="Lax", PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS))
    web.config["signin"] = signin = SignIn(runtime)
    if not settings.web_pages:
        return
    api = urlsplit(settings.slack_api_url)
    oauth = OAuth(web)
    slack: Any = oauth.register(
        "slack", client_id=settings.slack_client_id, client_secret=settings.slack_client_secret,
        server_metadata_url=f"{api.scheme}://{api.netloc}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email", "token_endpoint_auth_method": "client_secret_post"},
    )
    callback = f"{settings.base_url}/auth/slack/callback"
    team: list[str] = []

    def workspace() -> str:
        """The bot's own workspace (auth.test, asked once): only its people sign in."""
        if not team:
            team.append(str(runtime.client.auth_test()["team_id"]))
        return team[0]

    @web.get("/login")
    def login():  # type: ignore[no-untyped-def]
        session["next"] = _local_path(request.args.get("next"))
        return slack.authorize_redirect(callback, nonce=secrets.token_urlsafe(16))

    @web.get("/auth/slack/callback")
    def signed_in():  # type: ignore[no-untyped-def]
        try:
            token = slack.authorize_access_token()
            claims = token.get("userinfo") or {}
            user = claims.get("https://slack.com/user_id") or claims.get("sub")
        except Exception as exc:  # noqa: BLE001 - a wrong state or nonce, a refused code, Slack unreachable
            log.warning("refused a sign-in on %s: %s", request.path, getattr(exc, "error", type(exc).__name__))
            session.clear()
            return message_page("Sign-in failed. Please try again from the start.", 400)
        if not isinstance(user, str) or not user:
            log.warning("refused a sign-in whose ID token names nobody")
            return message_page("Sign-in failed. Please try again from the start.", 400)
        if claims.get("https://slack.com/team_id") != workspace():
            log.warning("refused a sign-in of %s from another workspace", user)
            return message_page("Sign in with an account of this bot's Slack workspace.", 403)
        target = _local_path(session.get("next"))
        session.clear()  # nothing from before signing in carries over (session fixation)
        session.update(user=user, sid=secrets.token_urlsafe(24), csrf=secrets.token_urlsafe(24), at=time.time())
        session.permanent = True
        log.info("%s signed in to the web pages", user)
        return redirect(target, 303)

    @web.post("/logout", endpoint="logout")
    def logout():  # type: ignore[no-untyped-def]
        user, sid = signin.user(), session.get("sid")
        if user and sid:
            try:
                with runtime.storage.session() as db:
                    db.add(Claim(key=_signed_out_key(str(sid)), claimed_at=runtime.clock.now()))
            except IntegrityError:
                pass  # signed out twice: it already stands
            log.info("%s signed out of the web pages", user)
        session.clear()
        return message_page("You are signed out.", 200)


def message_page(text: str, status: int) -> tuple[Response, int]:
    """A short plain page (refusals, sign-out)."""
    return Response(render("message.html", message=text, user=None), mimetype="text/html"), status


ROUTE_INSTALLERS.append(install)
