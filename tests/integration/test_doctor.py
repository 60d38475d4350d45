"""mailopsd doctor against a real nameserver (NSD on loopback): what an operator sees."""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.commands import run_cli
from tests.configs import CANARY, traces_in
from tests.servers.dns import Nsd
from tests.sops_tools import make_key

SMTP = "smtp.example.net"  # 192.0.2.25 and 2001:db8::25


@functools.cache
def _rsa_key(bits: int) -> str:
    """A base64 SubjectPublicKeyInfo of ``bits`` bits (under 1024: made from numbers)."""
    if bits < 1024:
        key = rsa.RSAPublicNumbers(65537, (1 << (bits - 1)) | 0x1234567).public_key()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def _txt(text: str) -> str:
    """TXT record data in strings of at most 255 characters."""
    return " ".join(f'"{text[at : at + 200]}"' for at in range(0, len(text), 200))


def _zones() -> dict[str, str]:
    key = _txt(f"v=DKIM1; k=rsa; p={_rsa_key(2048)}")
    return {
        "example.net": f"""
smtp IN A 192.0.2.25
smtp IN AAAA 2001:db8::25
_spf IN TXT "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"
heavy IN MX 10 mx.heavy
mx.heavy IN A 192.0.2.30
heavy IN TXT "v=spf1 include:a.heavy.example.net include:b.heavy.example.net mx ~all"
a.heavy IN TXT "v=spf1 include:c.heavy.example.net include:d.heavy.example.net a -all"
c.heavy IN TXT "v=spf1 a mx -all"
d.heavy IN TXT "v=spf1 exists:%{{i}}.x.heavy.example.net -all"
b.heavy IN TXT "v=spf1 include:e.heavy.example.net ip4:198.51.100.1 -all"
e.heavy IN TXT "v=spf1 a:mail.heavy.example.net mx -all"
s1._domainkey.heavy IN TXT {key}
_dmarc.heavy IN TXT "v=DMARC1; p=reject"
""",
        "example.com": f"""
good IN MX 10 mx.good
mx.good IN A 192.0.2.10
good IN TXT "v=spf1 include:_spf.example.net -all"
s1._domainkey.good IN TXT {key}
_dmarc.good IN TXT "v=DMARC1; p=quarantine; sp=none; rua=mailto:dmarc@good.example.com"
news.good IN MX 10 mx.good
bounces.good IN MX 10 mx.good
bounces.good IN TXT "v=spf1 include:_spf.example.net -all"
news.good IN TXT "v=spf1 include:_spf.example.net -all"
s1._domainkey.news.good IN TXT {key}
broken IN MX 0 .
broken IN TXT "v=spf1 ip4:198.51.100.0/24 -all"
revoked._domainkey.broken IN TXT "v=DKIM1; k=rsa; p="
weak._domainkey.broken IN TXT "v=DKIM1; k=rsa; p={_rsa_key(512)}"
old._domainkey.broken IN TXT {_txt(f"v=DKIM1; k=rsa; p={_rsa_key(1024)}")}
_dmarc.broken IN TXT "v=DMARC1; p=maybe"
spf-a IN TXT "v=spf1 a:smtp.example.net -all"
spf-mx IN MX 10 smtp.example.net.
spf-mx IN TXT "v=spf1 mx -all"
spf-redirect IN TXT "v=spf1 redirect=_spf.example.net"
spf-exists IN TXT "v=spf1 exists:%{{i}}.allow.example.com ~all"
192.0.2.25.allow IN A 127.0.0.2
spf-void IN TXT "v=spf1 a:n1.example.com a:n2.example.com a:n3.example.com -all"
spf-open IN TXT "v=spf1 +all"
""",
        "example.org": """
bare IN A 203.0.113.7
""",
    }


HTTP = """
http:
  listen: 127.0.0.1:8025
  public_base_url: https://mail.example.com
  signing_key: 0123456789abcdef0123456789abcdef
"""


def _config(
    credentials: dict[str, str],
    *,
    unsubscribe: str = "",
    http: str = HTTP,
    selectors: str = "",
    smtp_host: str = SMTP,
) -> Path:
    """Write c.yaml (in the test's cwd) with one campaign sending from these addresses."""
    blocks = "".join(
        f"""      {name}:
        smtp_host: {smtp_host}
        smtp_port: 587
        smtp_username: {name}@example.net
        smtp_password: {CANARY}
        from_name: Ada
        from_email: {address}
        daily_limit: 100
{selectors}"""
        for name, address in credentials.items()
    )
    Path("leads.csv").write_text("email\ngrace@example.org\n")
    path = Path("c.yaml")
    path.write_text(
        f"""campaigns:
  acme-q4:
    name: ACME
    leads: leads.csv
    sequence:
      - subject: Hello
        body: Hi
{unsubscribe}    smtp_credentials:
{blocks}{http}"""
    )
    return path


FOOTER = '    unsubscribe:\n      footer_text: "Not interested? %%UNSUBSCRIBE%%"\n'
S1 = "        dkim_selectors: [s1]\n"


@pytest.fixture
def dns(nsd: Nsd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Nsd:
    """NSD serving the test zones; the test runs in tmp_path."""
    monkeypatch.chdir(tmp_path)
    return nsd.serve(_zones(), broken=["down.example.org"])


def _doctor(capsys: pytest.CaptureFixture[str], dns: Nsd, *args: str) -> tuple[int, str, str]:
    return run_cli(capsys, "doctor", "--config", "c.yaml", "--nameserver", dns.address, *args)


def _lines_of(out: str, check: str) -> list[str]:
    """The printed lines of every finding of ``check``, with their publish lines."""
    lines, keep = [], False
    for line in out.splitlines():
        if line.startswith("  ") and not line.startswith(" " * 21):
            keep = line.split()[1] == check
        elif not line.startswith(" " * 21):
            keep = False
        if keep:
            lines.append(line.strip())
    return lines


class TestDoctorText:
    """The text output, finding by finding, and the exit code."""

    def test_good_setup_is_all_ok(self, dns: Nsd, capsys: pytest.CaptureFixture[str]) -> None:
        """A domain with MX, SPF, a 2048-bit key and DMARC, one-click and a footer: exit 0."""
        _config({"primary": "ada@good.example.com"}, unsubscribe=FOOTER, selectors=S1)
        code, out, err = _doctor(capsys, dns)
        assert (code, err) == (0, "")
        via = "(include:_spf.example.net in good.example.com)"
        assert out.splitlines() == [
            f"checked 1 domain(s) and 1 campaign(s); DNS from {dns.address}",
            "good.example.com (from_email of acme-q4/primary)",
            "  ok    mx           good.example.com receives mail at 10 mx.good.example.com",
            "  ok    spf          good.example.com: 'v=spf1 include:_spf.example.net -all'; "
            f"smtp_host {SMTP}: 192.0.2.25: pass {via}; 2001:db8::25: pass {via}; "
            "1 of 10 DNS lookups",
            "  ok    dkim         s1._domainkey.good.example.com: 2048-bit RSA key",
            "  ok    dmarc        _dmarc.good.example.com: p=quarantine, policy for "
            "good.example.com: quarantine; alignment aspf=relaxed, adkim=relaxed: SPF "
            "(MAIL FROM is the from_email) and DKIM keys under good.example.com align",
            "  ok    bulk-sender  Gmail and Yahoo (February 2024): SPF and DKIM aligned with "
            "good.example.com and DMARC present; one-click unsubscribe is checked per "
            "campaign below",
            "campaign acme-q4",
            "  ok    one-click    List-Unsubscribe: <mailto:...>, "
            "<https://mail.example.com/u/<token>> and List-Unsubscribe-Post: "
            "List-Unsubscribe=One-Click; the daemon's server answers the one-click POST "
            "(RFC 8058)",
            "  ok    footer       the unsubscribe link is in footer_text",
            "result: 7 ok, 0 warn, 0 fail: no check fails",
        ]

    def test_verp_domain_gets_its_own_checks(
        self, dns: Nsd, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With verp_domain, reports come back to it and receivers check its SPF: it gets
        MX and SPF checks, and the from domain says whether SPF still aligns for DMARC."""
        verp = "        verp_domain: bounces.good.example.com\n"
        _config({"primary": "ada@good.example.com"}, unsubscribe=FOOTER, selectors=S1 + verp)
        code, out, err = _doctor(capsys, dns)
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == f"checked 2 domain(s) and 1 campaign(s); DNS from {dns.address}"
        assert "bounces.good.example.com (verp_domain of acme-q4/primary)" in lines
        assert _lines_of(out, "spf-align") == [
            "ok    spf-align    verp_domain bounces.good.example.com: SPF passes there and "
            "aligns with good.example.com (relaxed)"
        ]
        # SPF is checked where receivers check it: at the envelope domain only.
        spf = _lines_of(out, "spf")
        assert len(spf) == 1
        assert spf[0].startswith("ok    spf          bounces.good.example.com:")
        assert _lines_of(out, "mx")[1] == (
            "ok    mx           bounces.good.example.com receives mail at 10 mx.good.example.com"
        )

    def test_verp_domain_without_mx_or_outside_the_from_domain(
        self, dns: Nsd, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A verp_domain that cannot receive reports fails; one outside the From's
        organizational domain warns that SPF cannot align."""
        verp = "        verp_domain: nowhere.example.org\n"
        _config({"primary": "ada@good.example.com"}, unsubscribe=FOOTER, selectors=S1 + verp)
        code, out, _ = _doctor(capsys, dns)
        assert code == 1
        assert "nowhere.example.org (verp_domain of acme-q4/primary)" in out.splitlines()
        assert _lines_of(out, "mx")[1] == (
            "fail  mx           nowhere.example.org does not exist in DNS: receivers refuse "
            "mail from a domain that does not exist, and replies and bounces cannot come "
            "back; check verp_domain"
        )
        assert _lines_of(out, "spf-align") == [
            "warn  spf-align    verp_domain nowhere.example.org is outside good.example.com's "
            "organizational domain: SPF is checked against nowhere.example.org and cannot "
            "align with the From domain, so DMARC passes only through DKIM; use a "
            "verp_domain under good.example.com (such as bounces.good.example.com) to have "
            "both"
        ]

    def test_missing_records_come_with_the_records_to_publish(
        self, dns: Nsd, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A domain with only an address record: each missing record, and what to publish."""
        _config({"primary": "ada@bare.example.org"}, http="")
        code, out, _ = _doctor(capsys, dns)
        assert code == 1
        assert _lines_of(out, "mx") == [
            "warn  mx           bare.example.org has no MX record: mail to it goes to its own "
            "address (203.0.113.7), which must run a mail server; publish an MX",
            "publish: bare.example.org. MX 10 <your inbound mail server>.",
        ]
        assert _lines_of(out, "spf") == [
            f"fail  spf          no SPF record at bare.example.org: receivers cannot tell that "
            f"smtp_host {SMTP} may send as it",
            'publish: bare.example.org. TXT "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 ~all"',
        ]
        assert _lines_of(out, "dkim")[0].startswith(
            "warn  dkim         no DKIM key found under the common selectors (google, "
            "selector1, selector2, default, k1, s1, s2, dkim, mail) of bare.example.org"
        )
        assert _lines_of(out, "dmarc") == [
            "fail  dmarc        no DMARC record at _dmarc.bare.example.org nor at its parent "
            "domains: Gmail and Yahoo require one of bulk senders (p=none at least); start "
            "with p=none and reports to an address you read",
            'publish: _dmarc.bare.example.org. TXT "v=DMARC1; p=none; '
            'rua=mailto:dmarc-reports@bare.example.org"',
        ]
        assert _lines_of(out, "one-click")[0].startswith(
            "fail  one-click    List-Unsubscribe has only a mailto: and there is no "
            "List-Unsubscribe-Post"
        )
        assert out.splitlines()[-1] == "result: 0 ok, 3 warn, 4 fail: some checks fail"

    def test_broken_records_are_named(self, dns: Nsd, capsys: pytest.CaptureFixture[str]) -> None:
        """Null MX, an SPF record without the host, bad keys and a bad DMARC policy fail."""
        selectors = "        dkim_selectors: [revoked, weak, old, gone]\n"
        _config({"primary": "ada@broken.example.com"}, unsubscribe=FOOTER, selectors=selectors)
        code, out, _ = _doctor(capsys, dns)
        assert code == 1
        assert _lines_of(out, "mx")[0].startswith(
            "fail  mx           broken.example.com publishes a null MX (RFC 7505)"
        )
        spf = _lines_of(out, "spf")
        assert spf[0].startswith(
            "fail  spf          broken.example.com: 'v=spf1 ip4:198.51.100.0/24 -all'; "
            f"smtp_host {SMTP}: 192.0.2.25: fail (-all in broken.example.com); "
            "2001:db8::25: fail (-all in broken.example.com); 0 of 10 DNS lookups: not "
            "authorised, so receivers see SPF fail"
        )
        assert spf[1] == (
            'publish: broken.example.com. TXT "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 '
            'ip4:198.51.100.0/24 -all"'
        )
        dkim = [line for line in _lines_of(out, "dkim") if not line.startswith("publish")]
        assert dkim == [
            "fail  dkim         revoked._domainkey.broken.example.com: revoked: p= is empty; "
            "mail signed with selector revoked fails DKIM. Publish the key your SMTP provider "
            "signs with",
            "fail  dkim         weak._domainkey.broken.example.com: 512-bit RSA key: receivers "
            "ignore RSA keys under 1024 bits (RFC 8301); have your provider make a 2048-bit "
            "key and publish it",
            "warn  dkim         old._domainkey.broken.example.com: 1024-bit RSA key; 2048 bits "
            "is recommended (RFC 8301)",
            "fail  dkim         no DKIM key at gone._domainkey.broken.example.com (selector "
            "gone is in dkim_selectors): mail your provider signs with it fails DKIM",
        ]
        assert _lines_of(out, "dmarc") == [
            "fail  dmarc        _dmarc.broken.example.com: 'v=DMARC1; p=maybe': p=maybe is not "
            "none, quarantine or reject, so receivers ignore it",
            'publish: _dmarc.broken.example.com. TXT "v=DMARC1; p=none; '
            'rua=mailto:dmarc-reports@broken.example.com"',
        ]
        assert _lines_of(out, "bulk-sender")[0].startswith("fail  bulk-sender")

    def test_spf_include_chain_over_ten_lookups(
        self, dns: Nsd, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An include chain of 12 lookups fails, with what each include costs."""
        _config({"primary": "ada@heavy.example.net"}, unsubscribe=FOOTER, selectors=S1)
        code, out, _ = _doctor(capsys, dns)
        assert code == 1
        spf = _lines_of(out, "spf")
        assert spf[0].startswith(
            "fail  spf          heavy.example.net: 'v=spf1 include:a.heavy.example.net "
            "include:b.heavy.example.net mx ~all' needs 12 DNS lookups "
            "(include:a.heavy.example.net 7, include:b.heavy.example.net 4, mx 1); RFC 7208 "
            "allows 10, so receivers answer permerror"
        )
        assert (
            spf[1]
            == 'publish: heavy.example.net. TXT "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 ~all"'
        )
        assert _lines_of(out, "bulk-sender")[0].startswith(
            "warn  bulk-sender  Gmail and Yahoo (February 2024): DKIM aligned and DMARC present"
        )

    @pytest.mark.parametrize(
        ("domain", "expected"),
        [
            (
                "spf-a.example.com",
                [
                    "ok    spf          spf-a.example.com: 'v=spf1 a:smtp.example.net -all'; "
                    f"smtp_host {SMTP}: 192.0.2.25: pass (a:smtp.example.net in "
                    "spf-a.example.com); 2001:db8::25: pass (a:smtp.example.net in "
                    "spf-a.example.com); 1 of 10 DNS lookups"
                ],
            ),
            (
                "spf-mx.example.com",
                [
                    "ok    spf          spf-mx.example.com: 'v=spf1 mx -all'; smtp_host "
                    f"{SMTP}: 192.0.2.25: pass (mx in spf-mx.example.com); 2001:db8::25: pass "
                    "(mx in spf-mx.example.com); 1 of 10 DNS lookups"
                ],
            ),
            (
                "spf-redirect.example.com",
                [
                    "ok    spf          spf-redirect.example.com: 'v=spf1 "
                    f"redirect=_spf.example.net'; smtp_host {SMTP}: 192.0.2.25: pass "
                    "(ip4:192.0.2.0/24 in _spf.example.net); 2001:db8::25: pass "
                    "(ip6:2001:db8::/32 in _spf.example.net); 1 of 10 DNS lookups"
                ],
            ),
            (
                "spf-exists.example.com",
                [
                    "fail  spf          spf-exists.example.com: 'v=spf1 "
                    f"exists:%{{i}}.allow.example.com ~all'; smtp_host {SMTP}: 192.0.2.25: "
                    "pass (exists:%{i}.allow.example.com in spf-exists.example.com); "
                    "2001:db8::25: softfail (~all in spf-exists.example.com); 1 of 10 DNS "
                    "lookups: not authorised, so receivers see SPF softfail; add the host's "
                    "addresses (or the include: your SMTP provider documents)",
                    'publish: spf-exists.example.com. TXT "v=spf1 ip6:2001:db8::25 '
                    'exists:%{i}.allow.example.com ~all"',
                ],
            ),
            (
                "spf-void.example.com",
                [
                    "fail  spf          spf-void.example.com: 'v=spf1 a:n1.example.com "
                    f"a:n2.example.com a:n3.example.com -all'; smtp_host {SMTP}: 192.0.2.25: "
                    "permerror (more than 2 lookups found nothing); 2001:db8::25: permerror "
                    "(more than 2 lookups found nothing); 3 of 10 DNS lookups: not authorised, "
                    "so receivers see SPF permerror; add the host's addresses (or the include: "
                    "your SMTP provider documents)",
                    'publish: spf-void.example.com. TXT "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 '
                    'a:n1.example.com a:n2.example.com a:n3.example.com -all"',
                ],
            ),
            (
                "spf-open.example.com",
                [
                    "fail  spf          spf-open.example.com: 'v=spf1 +all'; smtp_host "
                    f"{SMTP}: 192.0.2.25: pass (+all in spf-open.example.com); 2001:db8::25: "
                    "pass (+all in spf-open.example.com); 0 of 10 DNS lookups; +all authorises "
                    "every address on the internet to send as spf-open.example.com: end the "
                    "record with ~all or -all",
                    'publish: spf-open.example.com. TXT "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 '
                    '~all"',
                ],
            ),
        ],
    )
    def test_spf_mechanisms(
        self,
        dns: Nsd,
        capsys: pytest.CaptureFixture[str],
        domain: str,
        expected: list[str],
    ) -> None:
        """a, mx, redirect=, exists with a macro, void lookups and +all, address by address."""
        _config({"primary": f"ada@{domain}"}, unsubscribe=FOOTER)
        _, out, err = _doctor(capsys, dns)
        assert err == ""
        assert _lines_of(out, "spf") == expected

    def test_relay_on_this_machine_is_a_warning(
        self, dns: Nsd, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A loopback smtp_host: the address mail leaves from is unknown, so only a warning."""
        _config({"primary": "ada@good.example.com"}, smtp_host="127.0.0.1", selectors=S1)
        _, out, _ = _doctor(capsys, dns)
        assert _lines_of(out, "spf") == [
            "warn  spf          good.example.com: 'v=spf1 include:_spf.example.net -all'; "
            "smtp_host 127.0.0.1: 127.0.0.1: fail (-all in good.example.com); 1 of 10 DNS "
            "lookups; 127.0.0.1 is on this machine (a relay): the address your mail leaves "
            "from is not known here; check that the record authorises it"
        ]

    def test_dmarc_of_the_parent_domain_applies_its_sp(
        self, dns: Nsd, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A subdomain without DMARC gets its parent's sp=none: a warning, and exit 0."""
        _config({"primary": "ada@news.good.example.com"}, unsubscribe=FOOTER, selectors=S1)
        code, out, _ = _doctor(capsys, dns)
        assert code == 0
        dmarc = _lines_of(out, "dmarc")
        assert dmarc[0].startswith(
            "warn  dmarc        _dmarc.good.example.com (the parent domain's, sp= applies to "
            "news.good.example.com): p=quarantine, policy for news.good.example.com: none"
        )
        assert "p=none meets the Gmail and Yahoo minimum but only monitors" in dmarc[0]
        assert out.splitlines()[-1] == "result: 6 ok, 1 warn, 0 fail: no check fails"

    def test_campaign_argument(self, dns: Nsd, capsys: pytest.CaptureFixture[str]) -> None:
        """CAMPAIGN limits the check to one campaign; an unknown one is a usage error."""
        _config({"primary": "ada@good.example.com"}, unsubscribe=FOOTER, selectors=S1)
        code, out, _ = _doctor(capsys, dns, "acme-q4")
        assert code == 0
        assert "campaign acme-q4" in out.splitlines()
        code, out, err = _doctor(capsys, dns, "acme-q5")
        assert (code, out) == (2, "")
        assert (
            err == "error: no campaign acme-q5 in the config; did you mean acme-q4? "
            "(campaigns: acme-q4)\n"
        )


class TestDoctorDnsFailures:
    """A nameserver that does not answer, or answers SERVFAIL, is a finding: no traceback."""

    def test_dead_nameserver_times_out(
        self,
        silent_nameserver: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """No answer within --timeout: one clear finding per domain, exit 1."""
        monkeypatch.chdir(tmp_path)
        _config({"primary": "ada@good.example.com"}, unsubscribe=FOOTER)
        code, out, err = run_cli(
            capsys,
            "doctor",
            "--config",
            "c.yaml",
            "--nameserver",
            silent_nameserver,
            "--timeout",
            "0.2",
        )
        assert (code, err) == (1, "")
        assert out.splitlines()[1:3] == [
            "good.example.com (from_email of acme-q4/primary)",
            "  fail  dns          could not look up good.example.com: DNS lookup of MX "
            f"good.example.com failed: no answer from {silent_nameserver} within 0.2 s; check "
            "that it is up and reachable (--nameserver, --timeout), then run again; its MX, "
            "SPF, DKIM and DMARC checks were skipped",
        ]
        assert "Traceback" not in out + err

    def test_servfail_is_a_finding(self, dns: Nsd, capsys: pytest.CaptureFixture[str]) -> None:
        """A zone the server cannot serve answers SERVFAIL, said with what it likely means."""
        _config({"primary": "ada@down.example.org"}, unsubscribe=FOOTER)
        code, out, err = _doctor(capsys, dns)
        assert (code, err) == (1, "")
        assert _lines_of(out, "dns") == [
            "fail  dns          could not look up down.example.org: DNS lookup of MX "
            f"down.example.org failed: {dns.address} answered SERVFAIL (the domain's DNS is "
            "broken, or its servers cannot be reached from there); its MX, SPF, DKIM and "
            "DMARC checks were skipped"
        ]


class TestDoctorJson:
    """--json: one object for machines."""

    def test_shape(self, dns: Nsd, capsys: pytest.CaptureFixture[str]) -> None:
        """Domains and campaigns with their findings, the counts and the result."""
        _config(
            {"primary": "ada@good.example.com", "second": "bob@bare.example.org"},
            unsubscribe=FOOTER,
        )
        code, out, err = _doctor(capsys, dns, "--json")
        assert (code, err) == (1, "")
        report = json.loads(out)
        assert set(report) == {"nameserver", "domains", "campaigns", "counts", "result"}
        assert report["nameserver"] == dns.address
        assert [d["domain"] for d in report["domains"]] == ["good.example.com", "bare.example.org"]
        assert report["domains"][1]["used_by"] == ["acme-q4/second"]
        checks = [f["check"] for f in report["domains"][1]["findings"]]
        assert checks == ["mx", "spf", "dkim", "dmarc", "bulk-sender"]
        spf = report["domains"][1]["findings"][1]
        assert spf == {
            "check": "spf",
            "severity": "fail",
            "message": f"no SPF record at bare.example.org: receivers cannot tell that "
            f"smtp_host {SMTP} may send as it",
            "publish": ['bare.example.org. TXT "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 ~all"'],
            "change": None,
        }
        assert report["campaigns"][0]["campaign"] == "acme-q4"
        assert [f["check"] for f in report["campaigns"][0]["findings"]] == ["one-click", "footer"]
        counts = report["counts"]
        assert set(counts) == {"ok", "warn", "fail"}
        assert sum(counts.values()) == sum(
            len(group["findings"]) for group in report["domains"] + report["campaigns"]
        )
        assert report["result"] == "fail"


class TestDoctorSecrets:
    """doctor reads no secret: none is printed, and no key is needed."""

    def test_password_never_printed(self, dns: Nsd, capsys: pytest.CaptureFixture[str]) -> None:
        """The canary password of the config appears in no output, text or JSON."""
        _config({"primary": "ada@good.example.com", "second": "bob@bare.example.org"})
        for extra in ([], ["--json"]):
            _, out, err = _doctor(capsys, dns, *extra)
            assert traces_in(CANARY, [out, err]) == []

    def test_encrypted_config_without_a_key(
        self, dns: Nsd, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A SOPS-encrypted config is checked with no age key anywhere, as in clear."""
        path = _config({"primary": "ada@good.example.com"}, unsubscribe=FOOTER, selectors=S1)
        _, clear, _ = _doctor(capsys, dns)
        key = make_key(Path.cwd())
        code, _, err = run_cli(
            capsys, "secrets", "encrypt", "--age", key.recipient, "--in-place", str(path)
        )
        assert (code, err) == (0, "")
        key.path.unlink()
        assert CANARY not in path.read_text()
        for variable in ("MAILOPSD_AGE_KEY_FILE", "SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY"):
            monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv("HOME", str(Path.cwd()))
        assert _doctor(capsys, dns) == (0, clear, "")


class TestDoctorUsage:
    """Usage and config errors exit 2, as the message says."""

    def test_invalid_config(
        self,
        silent_nameserver: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A config error is printed at its place; nothing is looked up."""
        monkeypatch.chdir(tmp_path)
        _config({"primary": "ada@good.example.com"}, selectors="        dkim_selectors: [a_b]\n")
        code, out, err = run_cli(
            capsys, "doctor", "--config", "c.yaml", "--nameserver", silent_nameserver
        )
        assert (code, out) == (2, "")
        assert err.splitlines() == [
            "c.yaml:17:26: campaigns.acme-q4.smtp_credentials.primary.dkim_selectors.0: must be "
            "a DKIM selector: DNS labels of letters, digits and hyphens separated by dots, such "
            'as google, selector1 or s2048.mail (got "a_b")',
            "invalid: 1 error",
        ]

    @pytest.mark.parametrize(
        ("option", "message"),
        [
            (
                ["--nameserver", "ns.example.net"],
                "--nameserver must be IP[:PORT], such as 127.0.0.1:5353, ::1 or [::1]:5353 "
                "(got 'ns.example.net')",
            ),
            (["--nameserver", "127.0.0.1:0"], "(got '127.0.0.1:0')"),
            (
                ["--timeout", "0"],
                "--timeout must be a number of seconds above 0 and at most 60 (got '0')",
            ),
        ],
    )
    def test_bad_options(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        option: list[str],
        message: str,
    ) -> None:
        """A bad --nameserver or --timeout is a usage error, exit 2."""
        monkeypatch.chdir(tmp_path)
        _config({"primary": "ada@good.example.com"})
        code, out, err = run_cli(capsys, "doctor", "--config", "c.yaml", *option)
        assert (code, out) == (2, "")
        assert "usage: mailopsd doctor" in err
        assert message in err
