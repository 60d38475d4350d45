"""The WSGI application behind the links put into messages, and the health checks.

- ``/u/<token>``: ``GET`` shows a page with one button and changes nothing (mail
  scanners open links); ``POST`` with ``List-Unsubscribe=One-Click`` (RFC 8058, which
  the button sends too) unsubscribes at once: no cookie, no further step.
- ``/o/<token>.gif``: a 1x1 GIF; a ``GET`` counts an open.
- ``/c/<token>``: a ``GET`` counts a click and redirects (302) to the URL inside the
  signed token: never anywhere else.
- ``/campaigns/...`` and ``/openapi.json``: the credentials API, as JSON
  (see :mod:`mailopsd.http.api`).
- ``/metrics``: counters and gauges in the Prometheus text format, read from the
  ledger and the daemon's state at each scrape (see :mod:`mailopsd.http.metrics`); open
  to any client, like the health checks, since it holds no address and no secret.
- ``/healthz``: the process answers; ``/readyz``: a config is loaded and the state
  directory takes writes (503 otherwise).
- ``/hooks/git``: a ``POST`` signed with the webhook secret makes the daemon fetch the
  remote it follows now (202); a bad signature gets 401; without a followed remote and
  a secret, 404 (see :mod:`mailopsd.http.hooks`).

A token that does not verify, for the purpose of the path it came on, gets a 404 page.
Every page is small static HTML with every value escaped, under a Content-Security-Policy
that allows no script, no frame and no form target but the page itself. The app reads
the signing key through a callable, so a reload swaps it in place. The HTTP process
(:mod:`mailopsd.http.process`) answers the links and ``/healthz`` with it; the daemon
answers the paths of :func:`needs_daemon` with it, from its memory.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import html
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar
from urllib.parse import parse_qs, quote, urlsplit
from wsgiref.types import StartResponse, WSGIEnvironment

from mailopsd import tokens
from mailopsd.config.loader import LoadedConfig
from mailopsd.http import api, dashboard, hooks, metrics, record
from mailopsd.http.writes import Committer
from mailopsd.inbox.service import PollStats
from mailopsd.refs import CredentialRef
from mailopsd.state.errors import StorageError
from mailopsd.state.ledger import Ledger
from mailopsd.state.statefile import StateFile

__all__ = [
    "HOOK_MAX_BYTES",
    "MAX_BODY_BYTES",
    "PIXEL_GIF",
    "LinkApp",
    "Response",
    "Site",
    "needs_daemon",
    "write",
]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 4096
"""The largest request body, but a webhook's: a larger one gets 413, unread."""
HOOK_MAX_BYTES = 1024 * 1024
"""The largest webhook body (and request body: the server refuses larger ones with 413)."""

PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
"""A transparent 1x1 GIF."""

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;"
    "color:#222}button{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode("ascii")).digest()).decode("ascii")
_CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_COMMON_HEADERS = (
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("X-Robots-Tag", "noindex, nofollow"),
    ("Content-Security-Policy", _CSP),
)
_HTML = "text/html; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_READ = ("GET", "HEAD")
_ONE_CLICK = "One-Click"
# Characters a Location header keeps as they are: the rest (spaces, controls, non-ASCII)
# is percent-encoded, so no URL can break the header.
_URL_SAFE = "!#$%&'()*+,-./:;=?@[]_~"

_T = TypeVar("_T")


@dataclass(frozen=True)
class Site:
    """What the app reads from the daemon, each time it needs it.

    Attributes:
        signing_key: The ``http.signing_key`` of the config now running (``None``: none).
        not_ready: Why the daemon is not ready (no config, state not writable), or ``None``.
        ledger: The calling thread's ledger connection, kept open: never closed by the caller.
        clock: The current time.
        loaded: The config now running (for the API), or ``None``.
        state: The daemon's state now (for the API).
        reloads: The daemon's reload counts (for ``/metrics``).
        polls: How each mailbox's polls went (for ``/metrics``).
        git_hook: The webhook's secret and the fetch it triggers, when the daemon follows a
            remote with a webhook secret; ``None`` otherwise.
        api_writes: What commits the API's writes, when the daemon follows a remote;
            ``None`` otherwise.
        dashboard: What the dashboard reads, when the config turns it on; ``None``
            otherwise.
    """

    signing_key: Callable[[], str | None]
    not_ready: Callable[[], str | None]
    ledger: Callable[[], Ledger]
    clock: Callable[[], datetime]
    loaded: Callable[[], LoadedConfig | None]
    state: Callable[[], StateFile]
    reloads: Callable[[], metrics.ReloadCounts]
    polls: Callable[[], Mapping[CredentialRef, PollStats]] = dict
    git_hook: Callable[[], tuple[bytes, Callable[[], None]] | None] = lambda: None
    api_writes: Callable[[], Committer | None] = lambda: None
    dashboard: Callable[[], dashboard.Board | None] = lambda: None


@dataclass(frozen=True)
class Response:
    """A response before it is written: what :meth:`LinkApp.respond` gives."""

    status: str
    body: bytes = b""
    content_type: str = _HTML
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def _page(status: str, title: str, *paragraphs: str, form: str = "") -> Response:
    """A small HTML page; ``paragraphs`` are plain text (escaped here), ``form`` markup."""
    text = "".join(f"<p>{html.escape(paragraph)}</p>" for paragraph in paragraphs)
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{text}{form}</body></html>"
    )
    return Response(status, body.encode("utf-8"))


def _not_found() -> Response:
    return _page(
        "404 Not Found",
        "Link not found",
        "This link is not valid. If you copied it from a message, check that it is complete.",
    )


def _unavailable() -> Response:
    response = _page(
        "503 Service Unavailable",
        "Try again later",
        "Your request could not be recorded just now. Please try again in a few minutes.",
    )
    return Response(response.status, response.body, headers=(("Retry-After", "60"),))


def _text(status: str, text: str) -> Response:
    return Response(status, text.encode("utf-8"), _TEXT)


def _declared_length(environ: WSGIEnvironment) -> int:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _request_body(environ: WSGIEnvironment, limit: int = MAX_BODY_BYTES) -> bytes:
    length = _declared_length(environ)
    if length <= 0:
        return b""
    data: bytes = environ["wsgi.input"].read(min(length, limit))
    return data


def _is_one_click(environ: WSGIEnvironment) -> bool:
    """Tell whether a POST body holds ``List-Unsubscribe=One-Click`` (RFC 8058).

    The body is ``application/x-www-form-urlencoded`` (what mail providers and the
    confirmation page send) or ``multipart/form-data`` (which RFC 8058 allows too).
    """
    body = _request_body(environ)
    content_type = str(environ.get("CONTENT_TYPE") or "")
    if content_type.lower().startswith("multipart/form-data"):
        head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        for part in message.iter_parts() if message.is_multipart() else ():
            params = part.get_params(header="content-disposition") or []
            if ("name", "List-Unsubscribe") in params:
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes) and payload.strip() == _ONE_CLICK.encode():
                    return True
        return False
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return _ONE_CLICK in fields.get("List-Unsubscribe", [])


def _location(url: str) -> str | None:
    """The ``Location`` of a click's redirect: the signed URL, if it is http(s)."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return None
    return quote(url, safe=_URL_SAFE)


def write(
    response: Response, environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    """Hand a response to the server (PEP 3333), with the headers every response carries."""
    # A response with a policy of its own (the dashboard's) replaces the common one.
    own = {name.lower() for name, _ in response.headers}
    common = [(name, value) for name, value in _COMMON_HEADERS if name.lower() not in own]
    if response.status.startswith("204 "):  # no content: neither a type nor a length
        headers = [*common, *response.headers]
    else:
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            *common,
            *response.headers,
        ]
    start_response(response.status, headers)
    return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else response.body]


def needs_daemon(environ: WSGIEnvironment) -> bool:
    """Tell whether the answer to a request reads the daemon's memory (config, state, polls).

    ``/readyz``, ``/metrics``, the git webhook and the API do; the links and ``/healthz``
    need only the signing key and the ledger, so the HTTP process answers them itself,
    as it answers a body too large for its path (413) without handing it over.
    """
    path = str(environ.get("PATH_INFO") or "/")
    if _too_large(path, environ):
        return False
    return path in ("/readyz", metrics.PATH, hooks.PATH) or _is_api(path) or _is_dashboard(path)


def _too_large(path: str, environ: WSGIEnvironment) -> bool:
    return path != hooks.PATH and _declared_length(environ) > MAX_BODY_BYTES


def is_api_write(environ: Mapping[str, object]) -> bool:
    """Tell whether a request is a write to the API, which may wait for a commit to apply."""
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    path = str(environ.get("PATH_INFO") or "/")
    return method not in _READ and path != api.OPENAPI_PATH and _is_api(path)


def _is_dashboard(path: str) -> bool:
    return path == dashboard.PREFIX or path.startswith(dashboard.PREFIX + "/")


def _is_api(path: str) -> bool:
    return path == api.OPENAPI_PATH or path == api.PREFIX or path.startswith(api.PREFIX + "/")


class LinkApp:
    """The WSGI application; one instance serves every thread of the server."""

    def __init__(self, site: Site, counts: Callable[[record.Count], None] | None = None) -> None:
        """Serve ``site``.

        Args:
            site: What the app reads from the daemon.
            counts: Where opens and clicks go (a queue written in batches); by default
                each is written in a transaction of its own before its response.
        """
        self.site = site
        self._counts = counts
        # The last ledger error /readyz logged: a probe every few seconds logs a failing
        # ledger once, and once again when it reads again.
        self._ledger_error: str | None = None
        self.metrics = metrics.Exporter(
            metrics.Sources(
                site.loaded, site.state, site.ledger, site.clock, site.reloads, site.polls
            )
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request (PEP 3333)."""
        return write(self.respond(environ), environ, start_response)

    def respond(self, environ: WSGIEnvironment) -> Response:
        """The response to a request, before it is written."""
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO") or "/")
        if _too_large(path, environ):
            return _text("413 Request Entity Too Large", "request body too large\n")
        if path in ("/healthz", "/readyz", metrics.PATH, hooks.PATH):
            return self._operations(method, path, environ)
        if _is_api(path):
            return self._api(method, path, environ)
        if _is_dashboard(path):
            body = _request_body(environ)
            page = dashboard.answer(self.site.dashboard(), method, path, environ, body)
            return Response(page.status, page.body, page.content_type, page.headers)
        return self._link(method, path, environ)

    def _link(self, method: str, path: str, environ: WSGIEnvironment) -> Response:
        """A link put into a message: unsubscribe, open pixel, click."""
        link = tokens.parse_link_path(path)
        if link is None:
            return _not_found()
        purpose, token = link
        allowed = (*_READ, "POST") if purpose == tokens.UNSUBSCRIBE else _READ
        if method not in allowed:
            return self._not_allowed(allowed)
        claims = self._verify(purpose, token)
        if claims is None:
            return _not_found()
        if purpose == tokens.UNSUBSCRIBE:
            if method == "POST":
                return self._unsubscribe(environ, claims)
            return self._confirm(claims)
        if purpose == tokens.OPEN:
            return self._open(claims, counted=method == "GET")
        return self._click(claims, counted=method == "GET")

    def _operations(self, method: str, path: str, environ: WSGIEnvironment) -> Response:
        """``/healthz``, ``/readyz``, ``/metrics`` (read-only, open to any client) and the hook."""
        if path == hooks.PATH:
            return self._git_hook(method, environ)
        if method not in _READ:
            return self._not_allowed(_READ)
        if path == metrics.PATH:
            return Response("200 OK", self.metrics.render(), metrics.CONTENT_TYPE)
        return _text("200 OK", "ok\n") if path == "/healthz" else self._ready()

    def _api(self, method: str, path: str, environ: WSGIEnvironment) -> Response:
        site = self.site
        reader = api.Reader(site.loaded, site.state, site.ledger, site.clock, site.api_writes)
        answer = api.answer(reader, method, path, environ, _request_body(environ))
        return Response(answer.status, answer.body, answer.content_type, answer.headers)

    def _git_hook(self, method: str, environ: WSGIEnvironment) -> Response:
        """``POST /hooks/git``: a signed request makes the daemon fetch its remote now."""
        hook = self.site.git_hook()
        if hook is None:
            return _not_found()
        if method != "POST":
            return self._not_allowed(("POST",))
        secret, fetch = hook
        if not hooks.is_signed(secret, _request_body(environ, HOOK_MAX_BYTES), environ):
            logger.warning(
                "git webhook refused: no valid signature client=%s", environ.get("REMOTE_ADDR")
            )
            return _text("401 Unauthorized", "bad signature\n")
        fetch()
        return _text("202 Accepted", "fetching\n")

    @staticmethod
    def _not_allowed(allowed: tuple[str, ...]) -> Response:
        response = _text("405 Method Not Allowed", "method not allowed\n")
        return Response(response.status, response.body, _TEXT, (("Allow", ", ".join(allowed)),))

    def _ready(self) -> Response:
        problem = self.site.not_ready() or self._ledger_problem()
        if problem is None:
            return _text("200 OK", "ready\n")
        return _text("503 Service Unavailable", f"not ready: {problem}\n")

    def _ledger_problem(self) -> str | None:
        """Why the ledger cannot be read now, or ``None`` (a read is tried)."""
        try:
            self._with_ledger(Ledger.check_readable)
        except StorageError as err:
            if str(err) != self._ledger_error:
                logger.warning("not ready, ledger not readable error=%s", err)
            self._ledger_error = str(err)
            return "ledger cannot be read"
        if self._ledger_error is not None:
            logger.info("ready, ledger readable again")
            self._ledger_error = None
        return None

    def _verify(self, purpose: str, token: str) -> tokens.Claims | None:
        key = self.site.signing_key()
        if key is None:
            return None
        return tokens.verify(key.encode("utf-8"), purpose, token)

    def _with_ledger(self, action: Callable[[Ledger], _T]) -> _T:
        return action(self.site.ledger())

    def _confirm(self, claims: tokens.Claims) -> Response:
        try:
            account = self._with_ledger(lambda ledger: ledger.campaigns.account(claims.campaign_id))
        except StorageError as err:
            logger.warning("unsubscribe page unavailable, ledger not readable error=%s", err)
            return _unavailable()
        if account is None:
            return _not_found()
        form = (
            '<form method="post">'
            f'<input type="hidden" name="List-Unsubscribe" value="{_ONE_CLICK}">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        return _page(
            "200 OK",
            "Unsubscribe",
            f"Stop messages to {claims.email}? Press the button to unsubscribe.",
            form=form,
        )

    def _unsubscribe(self, environ: WSGIEnvironment, claims: tokens.Claims) -> Response:
        if not _is_one_click(environ):
            return _page(
                "400 Bad Request",
                "Unsubscribe",
                "Open this link in a browser and press the button to unsubscribe.",
            )
        now = self.site.clock()
        try:
            done = self._with_ledger(lambda ledger: record.unsubscribe(ledger, claims, now))
        except StorageError as err:
            logger.error(
                "one-click unsubscribe not recorded campaign=%s error=%s; the sender was told "
                "to try again later",
                claims.campaign_id,
                err,
            )
            return _unavailable()
        if done == record.Unsubscribed.UNKNOWN:
            return _not_found()
        return _page(
            "200 OK",
            "Unsubscribed",
            f"{claims.email} will receive no more of these messages.",
        )

    def _open(self, claims: tokens.Claims, *, counted: bool) -> Response:
        if counted:
            self._count("open", claims, record.record_open)
        return Response("200 OK", PIXEL_GIF, "image/gif")

    def _click(self, claims: tokens.Claims, *, counted: bool) -> Response:
        location = _location(claims.url or "")
        if location is None:
            return _not_found()
        if counted:
            self._count("click", claims, record.record_click)
        return Response("302 Found", b"", _TEXT, (("Location", location),))

    def _count(
        self,
        what: str,
        claims: tokens.Claims,
        count: Callable[[Ledger, tokens.Claims, datetime], bool],
    ) -> None:
        """Count an open or a click; a failure loses the count, never the response."""
        now = self.site.clock()
        if self._counts is not None:
            self._counts(record.Count(claims, now))
            return
        try:
            self._with_ledger(lambda ledger: count(ledger, claims, now))
        except StorageError as err:
            logger.warning("%s not counted campaign=%s error=%s", what, claims.campaign_id, err)
