"""Recipient domains: their normal form, and the free-mail table a config extends."""

from __future__ import annotations

import pytest

from mailopsd.config.addresses import AddressError, lead_key
from mailopsd.config.domains import (
    FREE_MAIL_DOMAINS,
    domain_key,
    domain_of,
    free_mail,
    free_mail_entry,
)


class TestDomainKey:
    """A domain has the normal form of a lead's domain."""

    @pytest.mark.parametrize(
        ("given", "key"),
        [
            ("Example.COM", "example.com"),
            (" acme.example ", "acme.example"),
            ("bücher.de", "xn--bcher-kva.de"),
            ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ],
    )
    def test_normal_form_is_the_domain_of_a_lead_key(self, given: str, key: str) -> None:
        """Case, IDNA form and spaces around are those of the leads' keys."""
        assert domain_key(given) == key
        assert domain_of(lead_key(f"someone@{given.strip()}")) == key

    @pytest.mark.parametrize(
        ("given", "reason"),
        [
            ("ada@example.com", "a domain has no @"),
            ("", "it is empty"),
            ("localhost", "the domain is not valid"),
            ("exa mple.com", "the domain contains invalid characters"),
            ("intranet.test", "special-use or reserved"),
        ],
    )
    def test_refused_with_a_reason(self, given: str, reason: str) -> None:
        """What is not a domain mail can go to is refused, saying why."""
        with pytest.raises(AddressError, match=reason):
            domain_key(given)


class TestFreeMail:
    """The built-in table, extended by the config's free_mail_domains."""

    def test_every_builtin_entry_is_in_normal_form(self) -> None:
        """Each entry of the table reads as itself, once."""
        assert [free_mail_entry(entry) for entry in FREE_MAIL_DOMAINS] == list(FREE_MAIL_DOMAINS)
        assert len(set(FREE_MAIL_DOMAINS)) == len(FREE_MAIL_DOMAINS)

    @pytest.mark.parametrize(
        "domain",
        ["gmail.com", "googlemail.com", "outlook.com", "hotmail.fr", "yahoo.co.jp", "gmx.de"],
    )
    def test_builtin(self, domain: str) -> None:
        """The large consumer providers are free mail, name.* under any ending."""
        assert free_mail().covers(domain)

    @pytest.mark.parametrize("domain", ["acme.example", "gmx", "mail.gmail.com", "web.de.example"])
    def test_company_domains_are_not(self, domain: str) -> None:
        """A company domain is not free mail, nor a subdomain of a listed one."""
        assert not free_mail().covers(domain)

    def test_config_adds_domains_and_endings(self) -> None:
        """The config's entries add to the table."""
        table = free_mail([free_mail_entry("Mail.Example.org"), free_mail_entry("ISP.*")])
        assert table.covers("mail.example.org")
        assert table.covers("isp.co.uk")
        assert table.covers("gmail.com")

    @pytest.mark.parametrize(
        ("given", "reason"),
        [("a.b.*", "only one name may come before"), ("*.example.com", "may only end")],
    )
    def test_patterns_are_a_name_then_any_ending(self, given: str, reason: str) -> None:
        """Only name.* is a pattern."""
        with pytest.raises(AddressError, match=reason):
            free_mail_entry(given)
