"""SPF records split into terms, and the macros of domain-specs (RFC 7208 5, 7)."""

from __future__ import annotations

import ipaddress

import pytest

from mailopsd.doctor.spfterms import MacroContext, SpfSyntaxError, expand, parse_record

SENDER = "strong-bad@email.example.com"
V4 = MacroContext(SENDER, ipaddress.ip_address("192.0.2.3"), "email.example.com")
V6 = MacroContext(SENDER, ipaddress.ip_address("2001:db8::cb01"), "email.example.com")


class TestParseRecord:
    """parse_record."""

    def test_terms_qualifiers_and_prefixes(self) -> None:
        """Each term keeps its qualifier (default +), value and prefix lengths."""
        terms = parse_record(
            "v=spf1 ip4:192.0.2.0/24 -ip6:2001:db8::/32 ~a:mail.example.com/28//64 "
            "mx//48 ?include:_spf.example.net exists:%{i}.x.example.com redirect=_spf.example.org "
            "foo=bar -all"
        )
        assert [(t.qualifier, t.name, t.value, t.cidr4, t.cidr6) for t in terms] == [
            ("+", "ip4", "192.0.2.0/24", 24, 24),
            ("-", "ip6", "2001:db8::/32", 32, 32),
            ("~", "a", "mail.example.com", 28, 64),
            ("+", "mx", "", 32, 48),
            ("?", "include", "_spf.example.net", 32, 128),
            ("+", "exists", "%{i}.x.example.com", 32, 128),
            ("", "redirect", "_spf.example.org", 32, 128),
            ("", "foo", "bar", 32, 128),
            ("-", "all", "", 32, 128),
        ]

    @pytest.mark.parametrize(
        ("record", "message"),
        [
            ("v=spf1 ipv4:192.0.2.1 -all", "'ipv4:192.0.2.1': unknown mechanism ipv4"),
            ("v=spf1 ip4:192.0.2.300 -all", "'ip4:192.0.2.300': not a valid ip4 network"),
            ("v=spf1 ip4:2001:db8::1 -all", "'ip4:2001:db8::1': not an IPv4 network"),
            ("v=spf1 ip6:192.0.2.1 -all", "'ip6:192.0.2.1': not a valid ip6 network"),
            ("v=spf1 include -all", "'include': include needs a domain, as in include:example.com"),
            ("v=spf1 all:example.com", "'all:example.com': all takes no argument"),
            ("v=spf1 a/33", "'a/33': prefix length out of range"),
            (
                "v=spf1 include:x.example.com/24",
                "'include:x.example.com/24': only a, mx, ip4 and ip6 take a prefix length",
            ),
            ("v=spf1 redirect=a.example redirect=b.example", "redirect= is given more than once"),
        ],
    )
    def test_errors(self, record: str, message: str) -> None:
        """A term that is not valid SPF is a syntax error (a permerror), said precisely."""
        with pytest.raises(SpfSyntaxError) as caught:
            parse_record(record)
        assert str(caught.value) == message


class TestExpand:
    """expand: the examples of RFC 7208 7.4."""

    @pytest.mark.parametrize(
        ("spec", "expanded"),
        [
            ("%{s}", "strong-bad@email.example.com"),
            ("%{o}", "email.example.com"),
            ("%{d}", "email.example.com"),
            ("%{d4}", "email.example.com"),
            ("%{d3}", "email.example.com"),
            ("%{d2}", "example.com"),
            ("%{d1}", "com"),
            ("%{dr}", "com.example.email"),
            ("%{d2r}", "example.email"),
            ("%{l}", "strong-bad"),
            ("%{l-}", "strong.bad"),
            ("%{lr}", "strong-bad"),
            ("%{lr-}", "bad.strong"),
            ("%{l1r-}", "strong"),
            ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
            ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
            ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
            ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
            ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
        ],
    )
    def test_rfc_examples_ipv4(self, spec: str, expanded: str) -> None:
        """Each example of the RFC expands as the RFC says."""
        assert expand(spec, V4) == expanded

    def test_rfc_example_ipv6(self) -> None:
        """An IPv6 address expands to its nibbles, and %{v} to ip6."""
        assert expand("%{ir}.%{v}._spf.%{d2}", V6) == (
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
        )

    @pytest.mark.parametrize("spec", ["%{x}.example.com", "%{d0}", "50%.example.com"])
    def test_bad_macros(self, spec: str) -> None:
        """A % that starts no valid macro is a syntax error."""
        with pytest.raises(SpfSyntaxError):
            expand(spec, V4)
