"""The read-only dashboard: an account's campaigns and their charts, behind a sign-in.

With ``http.dashboard: true`` the daemon serves, under ``/dashboard``:

- ``/dashboard``: the overview of the signed-in account's campaigns;
- ``/dashboard/campaigns/<id>``: a campaign's page (another account's is a 404);
- ``/dashboard/sign-in``: a form that takes an API key of the account (``POST``), and
  ``/dashboard/sign-out`` (``POST``);
- ``/dashboard/style.css``: the one stylesheet (no CDN: the daemon serves it).

A sign-in sets a session cookie, ``HttpOnly; Secure; SameSite=Strict``, that holds the
key's name, its expiry and the first 16 hex digits of the key's hash, signed with a key
derived from ``http.signing_key``: never the API key. A session ends at its expiry
(``http.dashboard_session``), at sign-out (the cookie is dropped), and as soon as its key
is removed from ``api_keys`` or replaced. The pages hold no script and no secret, under a
Content-Security-Policy that allows the daemon's own stylesheet and nothing else.
Posts are accepted from the dashboard's own pages only (``Sec-Fetch-Site``, else ``Origin``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from pathlib import Path

from mailopsd.config.loader import LoadedConfig
from mailopsd.config.reenable import reenable_hint
from mailopsd.http.apikeys import find_api_key
from mailopsd.pages import html
from mailopsd.pages.model import DEFAULT_DAYS, campaign_view
from mailopsd.pages.style import STYLESHEET
from mailopsd.state.errors import StorageError
from mailopsd.state.ledger import Ledger
from mailopsd.status.report import Scope, build_status

__all__ = ["COOKIE", "PREFIX", "Board", "Page", "answer", "board_for", "signed_in"]

logger = logging.getLogger(__name__)

PREFIX = "/dashboard"
COOKIE = "mailopsd_dashboard"
_STYLE_PATH = f"{PREFIX}/style.css"
_ICON_PATH = f"{PREFIX}/icon.svg"
_ICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<rect x="1" y="3" width="14" height="10" rx="1" fill="#2f6fb3"/>'
    b'<path d="M1.5 4 8 9l6.5-5" fill="none" stroke="#fff" stroke-width="1.5"/></svg>'
)
_SIGN_IN = f"{PREFIX}/sign-in"
_SIGN_OUT = f"{PREFIX}/sign-out"
_CAMPAIGN = f"{PREFIX}/campaigns/"
_KDF_LABEL = b"mailopsd dashboard sessions v1"
_HTML = "text/html; charset=utf-8"
_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = (("Content-Security-Policy", _CSP),)
_READ = ("GET", "HEAD")
_HASH_CHARS = 16


@dataclass(frozen=True)
class Board:
    """What the dashboard reads from the daemon, at each request.

    Attributes:
        state_dir: The state directory (the status report and the ledger).
        loaded: The config now running (its API keys, its files for re-enable lines).
        signing_key: ``http.signing_key``, from which the session key is derived.
        session: How long a sign-in lasts.
        now: The current time.
    """

    state_dir: Path
    loaded: LoadedConfig
    signing_key: str
    session: timedelta
    now: datetime


@dataclass(frozen=True)
class Page:
    """A response: status line, body, content type, extra headers."""

    status: str
    body: bytes = b""
    content_type: str = _HTML
    headers: tuple[tuple[str, str], ...] = ()


def _mac(board: Board, payload: bytes) -> str:
    key = hmac.new(board.signing_key.encode("utf-8"), _KDF_LABEL, hashlib.sha256).digest()
    mac = hmac.new(key, payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def _session_cookie(board: Board, name: str) -> str:
    expiry = int((board.now + board.session).timestamp())
    digest = board.loaded.config.api_keys[name].sha256[:_HASH_CHARS]
    payload = f"{name}|{expiry}|{digest}".encode()
    encoded = base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")
    max_age = int(board.session.total_seconds())
    return (
        f"{COOKIE}={encoded}.{_mac(board, payload)}; Path={PREFIX}; Max-Age={max_age}; "
        "HttpOnly; Secure; SameSite=Strict"
    )


def _ended_cookie() -> str:
    return f"{COOKIE}=; Path={PREFIX}; Max-Age=0; HttpOnly; Secure; SameSite=Strict"


def _cookie_value(environ: Mapping[str, object]) -> str | None:
    for part in str(environ.get("HTTP_COOKIE") or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value
    return None


def signed_in(board: Board, environ: Mapping[str, object]) -> str | None:
    """The API key name of the request's session, if it is valid now."""
    value = _cookie_value(environ)
    if value is None:
        return None
    encoded, _, mac = value.partition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(mac, _mac(board, payload)):
        return None
    name, _, rest = payload.decode("utf-8", "replace").partition("|")
    expiry, _, digest = rest.partition("|")
    key = board.loaded.config.api_keys.get(name)
    if key is None or not hmac.compare_digest(key.sha256[:_HASH_CHARS], digest):
        return None
    if not expiry.isdigit() or int(expiry) <= board.now.timestamp():
        return None
    return name


def _page(status: str, title: str, body: str, *headers: tuple[str, str]) -> Page:
    document = html.document(title, body, stylesheet=_STYLE_PATH, inline=False, icon=_ICON_PATH)
    return Page(status, document.encode("utf-8"), _HTML, (*_HEADERS, *headers))


def _see_other(location: str, *headers: tuple[str, str]) -> Page:
    return Page("303 See Other", b"", _HTML, (*_HEADERS, ("Location", location), *headers))


def _header(name: str) -> str:
    return f'<header><a href="{PREFIX}">mailopsd</a><form method="post" action="{_SIGN_OUT}">' + (
        f'<span class="muted">signed in as {escape(name)}</span> '
        '<button type="submit">Sign out</button></form></header>'
    )


def _not_found() -> Page:
    return _page("404 Not Found", "Not found", "<main><h1>Not found</h1></main>")


def _is_same_origin(environ: Mapping[str, object]) -> bool:
    """A post from the dashboard's own pages, as the browser says.

    ``Sec-Fetch-Site`` first (browsers send it whatever the referrer policy; the pages'
    ``no-referrer`` makes their ``Origin`` "null"), else an ``Origin`` that names this
    host; a client that sends neither (not a browser) is let through: the session cookie
    is ``SameSite=Strict`` all the same.
    """
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if site is not None:
        return site in ("same-origin", "none")
    origin = environ.get("HTTP_ORIGIN")
    if origin is None or origin == "null":
        return True
    host = str(environ.get("HTTP_HOST") or "")
    return urllib.parse.urlsplit(str(origin)).netloc == host


def answer(
    board: Board | None,
    method: str,
    path: str,
    environ: Mapping[str, object],
    body: bytes = b"",
) -> Page:
    """Answer a request under ``/dashboard`` (404 when the dashboard is off).

    ``body`` is the request's, as the server read it (the sign-in form).
    """
    if board is None:
        return _not_found()
    if path == _STYLE_PATH:
        return Page("200 OK", STYLESHEET.encode("utf-8"), "text/css; charset=utf-8", _HEADERS)
    if path == _ICON_PATH:
        return Page("200 OK", _ICON, "image/svg+xml", _HEADERS)
    if path in (_SIGN_IN, _SIGN_OUT):
        return _session_path(board, method, path, environ, body)
    if method not in _READ:
        return Page("405 Method Not Allowed", b"", _HTML, (*_HEADERS, ("Allow", "GET, HEAD")))
    name = signed_in(board, environ)
    if name is None:
        return _see_other(_SIGN_IN)
    account = board.loaded.config.api_keys[name].account
    if path in (PREFIX, f"{PREFIX}/"):
        return _overview(board, name, account)
    if path.startswith(_CAMPAIGN):
        return _campaign(board, name, account, path.removeprefix(_CAMPAIGN))
    return _not_found()


def _session_path(
    board: Board, method: str, path: str, environ: Mapping[str, object], body: bytes
) -> Page:
    if path == _SIGN_IN and method in _READ:
        return _page("200 OK", "Sign in", f"<main>{html.sign_in_form(_SIGN_IN, None)}</main>")
    if method != "POST":
        allowed = "GET, HEAD, POST" if path == _SIGN_IN else "POST"
        return Page("405 Method Not Allowed", b"", _HTML, (*_HEADERS, ("Allow", allowed)))
    if not _is_same_origin(environ):
        return Page("403 Forbidden", b"", _HTML, _HEADERS)
    if path == _SIGN_OUT:
        return _see_other(_SIGN_IN, ("Set-Cookie", _ended_cookie()))
    return _sign_in(board, environ, body)


def _sign_in(board: Board, environ: Mapping[str, object], body: bytes) -> Page:
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    presented = (form.get("key") or [""])[0].strip()
    name = find_api_key(board.loaded.config.api_keys, presented) if presented else None
    if name is None:
        logger.warning("dashboard sign-in refused client=%s", environ.get("REMOTE_ADDR"))
        error = "That is not an API key of this daemon; check it, or make one."
        form_html = html.sign_in_form(_SIGN_IN, error)
        return _page("401 Unauthorized", "Sign in", f"<main>{form_html}</main>")
    logger.info("dashboard sign-in key=%s client=%s", name, environ.get("REMOTE_ADDR"))
    return _see_other(PREFIX, ("Set-Cookie", _session_cookie(board, name)))


def _status(board: Board, scope: Scope) -> dict[str, object]:
    return build_status(board.state_dir, board.now, scope)


def _account_campaigns(status: Mapping[str, object], account: str) -> list[dict[str, object]]:
    found = status.get("campaigns")
    rows = found if isinstance(found, list) else []
    return [row for row in rows if isinstance(row, dict) and row.get("account") == account]


def _overview(board: Board, name: str, account: str) -> Page:
    try:
        status = _status(board, Scope(account=account, steps=False))  # no steps shown
    except StorageError as err:
        return _unavailable(err)
    campaigns = _account_campaigns(status, account)
    body = html.overview(status, campaigns, href=f"{_CAMPAIGN}{{id}}")
    return _page("200 OK", "Campaigns", f"{_header(name)}<main>{body}</main>")


def _campaign(board: Board, name: str, account: str, campaign_id: str) -> Page:
    try:
        status = _status(board, Scope(account=account, campaign=campaign_id))
        found = _account_campaigns(status, account)
        if not found:
            return _not_found()
        ledger = Ledger.open_readonly(board.state_dir)
        if ledger is None:
            return _not_found()
        try:
            snapshot = ledger.campaigns.active().get(campaign_id, {})
            view = campaign_view(ledger, found[0], snapshot, days=DEFAULT_DAYS, now=board.now)
        finally:
            ledger.close()
    except StorageError as err:
        return _unavailable(err)
    body = html.campaign_section(
        view,
        lambda campaign, credential: reenable_hint(board.loaded, campaign, credential, board.now),
    )
    back = f'<p><a href="{PREFIX}">All campaigns</a></p>'
    return _page(
        "200 OK", str(view.status.get("name")), f"{_header(name)}<main>{back}{body}</main>"
    )


def _unavailable(err: StorageError) -> Page:
    logger.warning("dashboard cannot read the ledger error=%s", err)
    body = "<main><h1>Unavailable</h1><p>The ledger cannot be read; try again.</p></main>"
    return _page("503 Service Unavailable", "Unavailable", body)


def board_for(loaded: LoadedConfig | None, state_dir: Path, now: datetime) -> Board | None:
    """The dashboard's view of a daemon, when its config turns the dashboard on."""
    http = loaded.config.http if loaded is not None else None
    if loaded is None or http is None or not http.dashboard:
        return None
    return Board(
        state_dir=state_dir,
        loaded=loaded,
        signing_key=http.signing_key.get_secret_value(),
        session=timedelta(seconds=http.dashboard_session.seconds),
        now=now,
    )
