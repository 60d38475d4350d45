"""The http, api_keys and tracking settings: schema rules, merging, and the signing key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailopsd.config.loader import LoadCache, LoadOptions, load_config
from mailopsd.config.periods import SYNTAX
from mailopsd.errors import ConfigError
from mailopsd.http import apikeys
from tests.configs import BASE, PLAINTEXT_OK, Writer, errors_of, loads

SIGNING_KEY = "signing-canary-0123456789abcdef-XYZ"
HASH = apikeys.hash_api_key("mk_test")


def _http(
    listen: str = "127.0.0.1:8025",
    url: str = "https://mail.example.com",
    key: str = SIGNING_KEY,
) -> str:
    """An http section appended to BASE: lines 19 (http:) to 22 (signing_key)."""
    return f"http:\n  listen: {listen}\n  public_base_url: {url}\n  signing_key: {key}\n"


def _api_keys(account: str = "default", digest: str = HASH) -> str:
    """An api_keys section, lines 23 to 26 when after _http()."""
    return f'api_keys:\n  ops:\n    account: {account}\n    sha256: "{digest}"\n'


class TestHttp:
    """The http section."""

    def test_loads_and_normalises(self, write_config: Writer) -> None:
        """A valid section loads; the base URL loses its trailing slash; listen is split."""
        loaded = loads(write_config(add=_http(url="https://mail.example.com/links/")))
        http = loaded.config.http
        assert http is not None
        assert http.public_base_url == "https://mail.example.com/links"
        assert (http.listen_host, http.listen_port) == ("127.0.0.1", 8025)
        assert http.signing_key.get_secret_value() == SIGNING_KEY
        assert loaded.summary() == (
            "1 campaign, 1 credential (0 with reply detection); "
            "http on 127.0.0.1:8025 for https://mail.example.com/links, 0 API keys"
        )

    @pytest.mark.parametrize(
        ("listen", "host", "port"),
        [
            ('"[::1]:8025"', "::1", 8025),
            ("localhost:80", "localhost", 80),
            ("0.0.0.0:65535", "0.0.0.0", 65535),  # noqa: S104 - read back; nothing binds
            ("127.0.0.1:0", "127.0.0.1", 0),  # any free port
        ],
    )
    def test_listen_forms(self, write_config: Writer, listen: str, host: str, port: int) -> None:
        """An IPv6 host in brackets, a host name or an IPv4 address, and a port (0: any)."""
        http = loads(write_config(add=_http(listen=listen))).config.http
        assert http is not None
        assert (http.listen_host, http.listen_port) == (host, port)

    @pytest.mark.parametrize(
        ("listen", "message"),
        [
            ("8025", "must be host:port, such as 127.0.0.1:8025 or [::1]:8025 (got 8025)"),
            ('"8025"', 'must be host:port, such as 127.0.0.1:8025 or [::1]:8025 (got "8025")'),
            (":8025", 'must be host:port, such as 127.0.0.1:8025 or [::1]:8025 (got ":8025")'),
            (
                '"localhost:"',
                'must be host:port, such as 127.0.0.1:8025 or [::1]:8025 (got "localhost:")',
            ),
            ("localhost:70000", "must be a port number from 1 to 65535 (got 70000)"),
            ("::1:8025", 'write an IPv6 address in brackets, as in [::1]:8025 (got "::1:8025")'),
            ('"[nope]:8025"', 'must be an IPv6 address inside the brackets (got "[nope]:8025")'),
            ("bad_host:80", 'must be a host name or IP address (got "bad_host")'),
        ],
    )
    def test_bad_listen(self, write_config: Writer, listen: str, message: str) -> None:
        """listen is host:port with a valid host and port."""
        assert errors_of(write_config(add=_http(listen=listen))) == [
            f"c.yaml:20:11: http.listen: {message}"
        ]

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            (
                "ftp://mail.example.com",
                'must be an http or https URL (got "ftp://mail.example.com")',
            ),
            ("mail.example.com", 'must be an http or https URL (got "mail.example.com")'),
            (
                '"https://x.example/a b"',
                "must not hold spaces, quotes, backslashes or angle brackets "
                '(got "https://x.example/a b")',
            ),
            (
                "https://x.example/?a=1",
                'must not have a query or fragment (got "https://x.example/?a=1")',
            ),
            (
                "https://x.example/#top",
                'must not have a query or fragment (got "https://x.example/#top")',
            ),
            (
                "https://u:p@x.example",
                'must not hold a user name or password (got "https://u:p@x.example")',
            ),
            ("https://x.example:99999", 'has an invalid port (got "https://x.example:99999")'),
            (
                "https://bücher.example",
                'must be ASCII; write a domain in its xn-- form (got "https://bücher.example")',
            ),
        ],
    )
    def test_bad_base_url(self, write_config: Writer, url: str, message: str) -> None:
        """public_base_url is an ASCII http(s) URL without query, fragment or user."""
        assert errors_of(write_config(add=_http(url=url))) == [
            f"c.yaml:21:20: http.public_base_url: {message}"
        ]

    @pytest.mark.parametrize(
        ("key", "message"),
        [
            (
                "short-canary",
                "must be at least 32 characters long (value not shown); use a random one, "
                "e.g. from: openssl rand -base64 48",
            ),
            ("[a, b]", "must be a non-empty string (got a list; value not shown)"),
            ('""', "must be a non-empty string (got nothing; value not shown)"),
        ],
    )
    def test_bad_signing_key_not_shown(self, write_config: Writer, key: str, message: str) -> None:
        """A bad signing key is explained without showing it."""
        errors = errors_of(write_config(add=_http(key=key)))
        assert errors == [f"c.yaml:22:16: http.signing_key: {message}"]
        assert "canary" not in errors[0]

    def test_required_and_unknown_fields(self, write_config: Writer) -> None:
        """Missing and misspelt fields of http are located."""
        text = "http:\n  listen: 127.0.0.1:8025\n  public_base_uri: https://x.example\n"
        assert errors_of(write_config(add=text)) == [
            "c.yaml:19:1: http.public_base_url: required field is missing",
            "c.yaml:19:1: http.signing_key: required field is missing",
            "c.yaml:21:3: http.public_base_uri: unknown field; did you mean public_base_url?",
        ]

    def test_signing_key_redacted(self, write_config: Writer) -> None:
        """repr, str and dumps of the config never show the signing key."""
        loaded = loads(write_config(add=_http()))
        dumped = loaded.config.model_dump_json()
        shown = repr(loaded) + str(loaded.config) + dumped + repr(loaded.config.model_dump())
        assert SIGNING_KEY not in shown
        assert '"signing_key":"**********"' in dumped


class TestClientLimits:
    """http.request_timeout and http.max_connections_per_client."""

    def test_defaults_and_settings(self, write_config: Writer) -> None:
        """A request has 10 seconds and a client 10 waiting connections, unless the config says."""
        http = loads(write_config(add=_http())).config.http
        assert http is not None
        assert (http.request_timeout.seconds, http.max_connections_per_client) == (10, 10)
        text = _http() + '  request_timeout: "0:00:30"\n  max_connections_per_client: 4\n'
        http = loads(write_config(add=text)).config.http
        assert http is not None
        assert (http.request_timeout.seconds, http.max_connections_per_client) == (30, 4)

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            (
                'request_timeout: "0 seconds"',
                'request_timeout: must be longer than zero (got "0 seconds")',
            ),
            (
                'request_timeout: "1 hour"',
                'request_timeout: must be from 1 second to 5 minutes (got "1 hour")',
            ),
            (
                'request_timeout: "1 month"',
                'request_timeout: must be from 1 second to 5 minutes (got "1 month")',
            ),
            (
                "request_timeout: 10",
                f'request_timeout: a number needs a unit, e.g. "10 minutes" (got 10); {SYNTAX}',
            ),
            (
                "max_connections_per_client: 0",
                "max_connections_per_client: must be an integer ≥ 1 (got 0)",
            ),
        ],
    )
    def test_bad_limits(self, write_config: Writer, line: str, message: str) -> None:
        """A timeout outside 1 second to 5 minutes, or no connection per client, is located."""
        column = line.index(":") + 5
        assert errors_of(write_config(add=_http() + f"  {line}\n")) == [
            f"c.yaml:23:{column}: http.{message}"
        ]


class TestTracking:
    """tracking on campaigns and credentials."""

    CAMPAIGN = ("    name: ACME Q4 outreach\n", "    name: x\n    tracking: {open: true}\n")
    CREDENTIAL = "        tracking: {click: true}\n"

    def test_off_by_default(self, write_config: Writer) -> None:
        """Without tracking anywhere, nothing is tracked."""
        campaign = loads(write_config(add=_http())).config.campaigns["acme-q4"]
        tracking = campaign.smtp_credentials["primary"].tracking_for(campaign)
        assert (tracking.open, tracking.click) == (False, False)

    def test_credential_wins(self, write_config: Writer) -> None:
        """A credential's tracking replaces its campaign's as a whole."""
        path = write_config(replace=self.CAMPAIGN, add=self.CREDENTIAL + _http())
        campaign = loads(path).config.campaigns["acme-q4"]
        assert campaign.tracking is not None
        assert campaign.tracking.open
        tracking = campaign.smtp_credentials["primary"].tracking_for(campaign)
        assert (tracking.open, tracking.click) == (False, True)

    def test_campaign_tracking_inherited(self, write_config: Writer) -> None:
        """A credential without tracking takes its campaign's."""
        campaign = loads(write_config(replace=self.CAMPAIGN, add=_http())).config.campaigns[
            "acme-q4"
        ]
        tracking = campaign.smtp_credentials["primary"].tracking_for(campaign)
        assert (tracking.open, tracking.click) == (True, False)

    def test_campaign_tracking_needs_http(self, write_config: Writer) -> None:
        """Tracking without http is an error at the campaign's tracking."""
        assert errors_of(write_config(replace=self.CAMPAIGN)) == [
            "c.yaml:4:15: campaigns.acme-q4.tracking: tracking needs http.public_base_url: add "
            "an http: section (listen, public_base_url, signing_key) for the server that "
            "records opens and clicks"
        ]

    def test_credential_tracking_needs_http(self, write_config: Writer) -> None:
        """Tracking on a credential without http is an error at the credential's tracking."""
        errors = errors_of(write_config(add=self.CREDENTIAL))
        assert len(errors) == 1
        assert errors[0].startswith(
            "c.yaml:19:19: campaigns.acme-q4.smtp_credentials.primary.tracking: "
            "tracking needs http.public_base_url"
        )

    def test_flags_are_strict(self, write_config: Writer) -> None:
        """open and click are true or false, nothing else."""
        path = write_config(add="        tracking: {open: yes}\n" + _http())
        assert errors_of(path) == [
            "c.yaml:19:26: campaigns.acme-q4.smtp_credentials.primary.tracking.open: "
            'must be true or false (got "yes")'
        ]

    def test_unsubscribe_placeholder_served_by_http(self, write_config: Writer) -> None:
        """With http, %%UNSUBSCRIBE%% needs no unsubscribe.url: the one-click link fills it."""
        block = '    unsubscribe: {footer_text: "Bye %%UNSUBSCRIBE%%"}\n'
        path = write_config(
            replace=("    name: ACME Q4 outreach\n", "    name: x\n" + block), add=_http()
        )
        unsubscribe = loads(path).config.campaigns["acme-q4"].unsubscribe
        assert unsubscribe is not None
        assert unsubscribe.url is None


class TestApiKeys:
    """api_keys: hashes only, for accounts that exist, and only with http."""

    def test_loads(self, write_config: Writer) -> None:
        """A key with a known account and a hash loads, and is counted in the summary."""
        loaded = loads(write_config(add=_http() + _api_keys()))
        assert loaded.config.api_keys["ops"].sha256 == HASH
        assert loaded.summary().endswith(", 1 API key")

    @pytest.mark.parametrize(
        ("section", "expected"),
        [
            (
                _api_keys(account="sales"),
                'c.yaml:25:14: api_keys.ops.account: no campaign belongs to account "sales" '
                "(accounts: default)",
            ),
            (
                _api_keys(digest=HASH.upper()),
                "c.yaml:26:13: api_keys.ops.sha256: must be 64 lowercase hex digits (the "
                f'sha256 printed by mailopsd apikey new) (got "{HASH.upper()[:57]}…")',
            ),
            (
                _api_keys(account="Sales"),
                'c.yaml:25:14: api_keys.ops.account: invalid id "Sales": use 1 to 63 '
                "lowercase letters, digits and dashes, starting with a letter or digit",
            ),
            (
                _api_keys() + f'  bi: {{account: default, sha256: "{HASH}"}}\n',
                "c.yaml:27:34: api_keys.bi.sha256: is the same key as api_keys.ops; make a "
                "new one with: mailopsd apikey new",
            ),
        ],
    )
    def test_bad_keys(self, write_config: Writer, section: str, expected: str) -> None:
        """Unknown accounts, malformed hashes and a key declared twice are located."""
        assert errors_of(write_config(add=_http() + section)) == [expected]

    def test_need_http(self, write_config: Writer) -> None:
        """API keys without http are an error (nothing would answer the API)."""
        assert errors_of(write_config(add=_api_keys())) == [
            "c.yaml:21:5: api_keys.ops: api keys need http: add an http: section for the "
            "server that answers the API"
        ]

    def test_scope_and_writes(self, write_config: Writer) -> None:
        """A key reads unless its scope says write; the API writes only with api.write."""
        section = _api_keys() + f'  bot: {{account: default, sha256: "{"0" * 64}", scope: write}}\n'
        loaded = loads(write_config(add=_http() + section))
        assert loaded.config.api_keys["ops"].scope == "read"
        assert loaded.config.api_keys["bot"].scope == "write"
        assert loaded.config.api.write == "off"
        loaded = loads(write_config(add=_http() + section + "api:\n  write: branch\n"))
        assert loaded.config.api.write == "branch"

    @pytest.mark.parametrize(
        ("section", "expected"),
        [
            (
                "api:\n  write: yes\n",
                'c.yaml:24:10: api.write: must be one of off, commit, branch (got "yes")',
            ),
            (
                _api_keys() + "    scope: admin\n",
                'c.yaml:27:12: api_keys.ops.scope: must be one of read, write (got "admin")',
            ),
        ],
    )
    def test_bad_scope_or_write(self, write_config: Writer, section: str, expected: str) -> None:
        assert errors_of(write_config(add=_http() + section)) == [expected]

    def test_writes_need_http(self, write_config: Writer) -> None:
        assert errors_of(write_config(add="api:\n  write: commit\n")) == [
            "c.yaml:20:10: api.write: api writes need http: add an http: section for the "
            "server that answers the API"
        ]


SECOND = """\
campaigns:
  beta:
    name: Beta
    leads: leads.csv
    sequence:
      - {subject: Hello, body: Hi}
    smtp_credentials:
      main: {smtp_host: smtp.example.org, smtp_port: 465, smtp_username: u,
             smtp_password: p, from_name: Bea, from_email: bea@example.org, daily_limit: 5}
"""


class TestMerging:
    """http in one file only; api keys merged by name; the reload cache stays exact."""

    def _directory(self, write_config: Writer, http_file: str) -> Path:
        Path("conf").mkdir()
        Path("leads.csv").rename("conf/leads.csv")  # leads live in the config tree
        write_config(BASE, name="conf/10-acme.yaml")
        write_config(http_file, name="conf/20-http.yaml")
        return Path("conf")

    def test_http_in_its_own_file(self, write_config: Writer) -> None:
        """http and api_keys can live in a file without campaigns."""
        conf = self._directory(write_config, _http() + _api_keys())
        loaded = loads(conf)
        assert loaded.config.http is not None
        assert list(loaded.config.api_keys) == ["ops"]

    def test_http_twice(self, write_config: Writer) -> None:
        """http given in two files is an error naming both places."""
        conf = self._directory(write_config, _http())
        write_config(_http(), name="conf/30-more.yaml")
        assert errors_of(conf) == [
            "conf/30-more.yaml:1:1: http: http: is defined twice; it is also at "
            "conf/20-http.yaml:1:1"
        ]

    def test_api_keys_merge_by_name(self, write_config: Writer) -> None:
        """api_keys from several files are merged; a name given twice is an error."""
        other = apikeys.hash_api_key("mk_other")
        conf = self._directory(write_config, _http() + _api_keys())
        write_config(
            f'api_keys:\n  bi: {{account: default, sha256: "{other}"}}\n', name="conf/30-bi.yaml"
        )
        assert sorted(loads(conf).config.api_keys) == ["bi", "ops"]
        write_config(
            f'api_keys:\n  ops: {{account: default, sha256: "{other}"}}\n', name="conf/30-bi.yaml"
        )
        assert errors_of(conf) == [
            'conf/30-bi.yaml:2:3: api_keys.ops: api key "ops" is defined twice; it is also '
            "at conf/20-http.yaml:6:3"
        ]

    def test_reload_cache_with_http(self, write_config: Writer) -> None:
        """With http, a reload reuses unchanged campaigns and sees every http change."""
        conf = self._directory(write_config, _http())
        write_config(SECOND, name="conf/15-beta.yaml")
        cache = LoadCache()
        first = load_config(conf, PLAINTEXT_OK, cache=cache)
        (conf / "20-http.yaml").write_text(_http(url="https://links.example.com"))
        second = load_config(conf, PLAINTEXT_OK, cache=cache)
        assert second.config.campaigns["acme-q4"] is first.config.campaigns["acme-q4"]
        assert second.config.http is not None
        assert second.config.http.public_base_url == "https://links.example.com"
        assert second.config == loads(conf).config
        (conf / "20-http.yaml").write_text(_http(listen="nope"))
        with pytest.raises(ConfigError) as cached:
            load_config(conf, PLAINTEXT_OK, cache=cache)
        assert [str(issue) for issue in cached.value.issues] == errors_of(conf)
        (conf / "20-http.yaml").write_text(_api_keys())
        with pytest.raises(ConfigError) as cached:
            load_config(conf, PLAINTEXT_OK, cache=cache)
        assert [str(issue) for issue in cached.value.issues] == errors_of(conf)
        assert "api keys need http" in str(cached.value)


class TestSigningKeyInClear:
    """The signing key is a secret field: stored in clear, it is refused."""

    def test_refused_in_its_own_file(self, write_config: Writer) -> None:
        """A clear signing key is refused with the way to encrypt its file (no key at hand:
        make one first)."""
        Path("conf").mkdir()
        Path("leads.csv").rename("conf/leads.csv")  # leads live in the config tree
        write_config(BASE, name="conf/10-acme.yaml")
        write_config(_http(), name="conf/20-http.yaml")
        with pytest.raises(ConfigError) as caught:
            load_config(Path("conf"), LoadOptions())
        shown = [str(issue) for issue in caught.value.issues]
        assert (
            "conf/20-http.yaml:4:16: http.signing_key: this secret field is stored in clear "
            "text; encrypt it for your own age key: make one with: mailopsd secrets keygen -o "
            "~/.config/sops/age/keys.txt, then check again for the command that encrypts "
            "conf/20-http.yaml (or pass --allow-plaintext-secrets for a local demo)"
        ) in shown
        assert all(SIGNING_KEY not in line for line in shown)

    def test_counted_with_the_other_secrets(self, write_config: Writer) -> None:
        """In a file with credentials, it is counted with their secret fields."""
        with pytest.raises(ConfigError) as caught:
            load_config(write_config(add=_http()), LoadOptions())
        assert str(caught.value.issues[0]).startswith(
            "c.yaml:14:24: campaigns.acme-q4.smtp_credentials.primary.smtp_username: "
            "3 secret fields are stored in clear text"
        )
