"""The dashboard's sign-in and sessions: who gets in, for how long, and what the pages carry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailopsd.http import dashboard
from mailopsd.http.apikeys import hash_api_key
from tests.configs import Writer, loads

KEY = "mk_dashboard-unit-key-0123456789abcdefghijklmno"
SIGNING_KEY = "dashboard-unit-signing-key-0123456789abcdef"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SECTION = (
    "http:\n  listen: 127.0.0.1:0\n  public_base_url: https://mail.example.com\n"
    f"  signing_key: {SIGNING_KEY}\n  dashboard: true\n  dashboard_session: 1 hour\n"
    f'api_keys:\n  ops: {{account: default, sha256: "{hash_api_key(KEY)}"}}\n'
)


@pytest.fixture
def board(write_config: Writer, tmp_path: Path) -> dashboard.Board:
    found = dashboard.board_for(loads(write_config(add=SECTION)), tmp_path / "state", NOW)
    assert found is not None
    return found


def _post(board: dashboard.Board, path: str, body: str = "", **headers: str) -> dashboard.Page:
    environ: dict[str, object] = {"HTTP_HOST": "mail.example.com", **headers}
    return dashboard.answer(board, "POST", path, environ, body.encode())


def _cookie(page: dashboard.Page) -> str:
    found = dict(page.headers).get("Set-Cookie")
    assert found is not None
    return found


def _signed_in(board: dashboard.Board) -> str:
    page = _post(board, "/dashboard/sign-in", f"key={KEY}", HTTP_SEC_FETCH_SITE="same-origin")
    assert page.status == "303 See Other"
    assert dict(page.headers)["Location"] == "/dashboard"
    return _cookie(page).split(";")[0]


class TestSignIn:
    def test_the_form(self, board: dashboard.Board) -> None:
        """The sign-in page is a form under the dashboard's own policy, with no script."""
        page = dashboard.answer(board, "GET", "/dashboard/sign-in", {})
        assert page.status == "200 OK"
        text = page.body.decode()
        assert '<form class="sign-in" method="post" action="/dashboard/sign-in">' in text
        assert "<script" not in text
        policy = dict(page.headers)["Content-Security-Policy"]
        assert "default-src 'none'; style-src 'self'" in policy
        assert "unsafe-inline" not in policy

    def test_a_key_of_the_account_signs_in(self, board: dashboard.Board) -> None:
        """The cookie is HttpOnly, Secure, SameSite=Strict, for the dashboard, for the session."""
        page = _post(board, "/dashboard/sign-in", f"key={KEY}")
        cookie = _cookie(page)
        assert cookie.startswith("mailopsd_dashboard=")
        assert cookie.endswith("; Path=/dashboard; Max-Age=3600; HttpOnly; Secure; SameSite=Strict")
        assert KEY not in cookie
        assert SIGNING_KEY not in cookie

    def test_a_wrong_key_is_refused(self, board: dashboard.Board) -> None:
        page = _post(board, "/dashboard/sign-in", "key=mk_wrong")
        assert page.status == "401 Unauthorized"
        assert "That is not an API key of this daemon" in page.body.decode()
        assert "Set-Cookie" not in dict(page.headers)
        assert "mk_wrong" not in page.body.decode()

    @pytest.mark.parametrize(
        "headers",
        [{"HTTP_SEC_FETCH_SITE": "cross-site"}, {"HTTP_ORIGIN": "https://evil.example"}],
    )
    def test_a_post_from_another_site_is_refused(
        self, board: dashboard.Board, headers: dict[str, str]
    ) -> None:
        assert _post(board, "/dashboard/sign-in", f"key={KEY}", **headers).status == "403 Forbidden"


class TestSession:
    def test_a_session_opens_the_pages_until_it_ends(self, board: dashboard.Board) -> None:
        """Valid until its expiry; not after, nor with its key removed or replaced."""
        cookie = _signed_in(board)
        environ = {"HTTP_COOKIE": f"other=1; {cookie}"}
        assert dashboard.signed_in(board, environ) == "ops"
        later = replace(board, now=NOW + timedelta(hours=1, seconds=1))
        assert dashboard.signed_in(later, environ) is None
        config = board.loaded.config
        other = config.model_copy(
            update={
                "api_keys": {"ops": config.api_keys["ops"].model_copy(update={"sha256": "0" * 64})}
            }
        )
        rotated = replace(board, loaded=replace(board.loaded, config=other))
        assert dashboard.signed_in(rotated, environ) is None

    @pytest.mark.parametrize("change", ["name", "mac", "garbage"])
    def test_a_tampered_cookie_opens_nothing(self, board: dashboard.Board, change: str) -> None:
        name, _, value = _signed_in(board).partition("=")
        payload, _, mac = value.partition(".")
        tampered = {
            "name": f"{payload[:-2]}xx.{mac}",
            "mac": f"{payload}.{mac[:-2]}xx",
            "garbage": "%%%.@@@",
        }[change]
        assert dashboard.signed_in(board, {"HTTP_COOKIE": f"{name}={tampered}"}) is None

    def test_without_a_session_the_pages_send_to_sign_in(self, board: dashboard.Board) -> None:
        for path in ("/dashboard", "/dashboard/campaigns/acme-q4"):
            page = dashboard.answer(board, "GET", path, {})
            assert page.status == "303 See Other"
            assert dict(page.headers)["Location"] == "/dashboard/sign-in"

    def test_sign_out_drops_the_cookie(self, board: dashboard.Board) -> None:
        page = _post(board, "/dashboard/sign-out", HTTP_COOKIE=_signed_in(board))
        assert dict(page.headers)["Location"] == "/dashboard/sign-in"
        assert _cookie(page).startswith("mailopsd_dashboard=; Path=/dashboard; Max-Age=0;")


def test_off_unless_configured(write_config: Writer, tmp_path: Path) -> None:
    """Without http.dashboard: true, every dashboard path is a 404."""
    loaded = loads(write_config(add=SECTION.replace("  dashboard: true\n", "")))
    assert dashboard.board_for(loaded, tmp_path, NOW) is None
    assert dashboard.answer(None, "GET", "/dashboard/sign-in", {}).status == "404 Not Found"
