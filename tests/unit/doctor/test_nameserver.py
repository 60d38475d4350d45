"""--nameserver: IP, IP:PORT or [IPv6]:PORT, and nothing else."""

from __future__ import annotations

import pytest

from mailopsd.doctor.resolver import Nameserver, parse_nameserver


class TestParseNameserver:
    """parse_nameserver."""

    @pytest.mark.parametrize(
        ("text", "expected", "shown"),
        [
            ("127.0.0.1", Nameserver("127.0.0.1", 53), "127.0.0.1:53"),
            ("127.0.0.1:5353", Nameserver("127.0.0.1", 5353), "127.0.0.1:5353"),
            ("::1", Nameserver("::1", 53), "[::1]:53"),
            ("[::1]:5353", Nameserver("::1", 5353), "[::1]:5353"),
            ("[2001:db8::53]", Nameserver("2001:db8::53", 53), "[2001:db8::53]:53"),
        ],
    )
    def test_forms(self, text: str, expected: Nameserver, shown: str) -> None:
        """Each form gives the address and port, shown as host:port."""
        assert parse_nameserver(text) == expected
        assert str(expected) == shown

    @pytest.mark.parametrize(
        "text",
        ["ns.example.net", "127.0.0.1:", "127.0.0.1:70000", "[::1]:x", "[::1]5353", "1.2.3", ""],
    )
    def test_refused(self, text: str) -> None:
        """A host name, a bad port or a bad address is refused, with the forms shown."""
        with pytest.raises(ValueError, match=r"--nameserver must be IP\[:PORT\]"):
            parse_nameserver(text)
