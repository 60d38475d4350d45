"""Strict scalar values of the configuration, each checked on its own.

A scalar is checked strictly (YAML ``true`` is not the integer 1, ``"100"`` is not 100)
and fails with a message a person can act on; the loader adds file, line and column.
The ``Annotated`` types at the end are what the schema (:mod:`mailopsd.config.models`)
declares its fields with. Secrets become ``SecretStr`` and their values never appear
in an error. Pure: no I/O, no environment.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import PlainSerializer, PlainValidator, SecretStr, Strict
from pydantic_core import PydanticCustomError

from mailopsd.config import addresses, domains, periods, suggest
from mailopsd.config.periods import Period, PeriodSyntaxError, parse_period

__all__ = [
    "CONTROL_CHARACTERS",
    "ID_PATTERN",
    "IMAP_IMPLICIT_TLS_PORT",
    "MIN_POLL_SECONDS",
    "MIN_SIGNING_KEY_CHARS",
    "REDACTED",
    "REQUEST_TIMEOUT_SECONDS",
    "SMTP_IMPLICIT_TLS_PORT",
    "WEEKDAYS",
    "BaseUrl",
    "BounceRoute",
    "ClockTime",
    "DashboardSession",
    "Domain",
    "Email",
    "FileList",
    "Flag",
    "Folders",
    "FreeMailDomain",
    "Host",
    "Id",
    "IpAddress",
    "Line",
    "ListenAddress",
    "PeriodValue",
    "PollInterval",
    "Port",
    "PositiveInt",
    "Ratio",
    "RequestTimeout",
    "Secret",
    "Sha256Hex",
    "SigningKey",
    "Text",
    "TimeZone",
    "Timestamp",
    "TlsMode",
    "Url",
    "Weekday",
    "aware_moment",
    "check_period",
    "describe",
    "failure",
    "is_loopback_host",
    "one_of",
    "resolve_tls",
]

REDACTED = "**********"
MIN_SIGNING_KEY_CHARS = 32
MIN_POLL_SECONDS = 10
REQUEST_TIMEOUT_SECONDS = (1, 300)
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_CLOCK = re.compile(r"([01]?\d|2[0-4]):([0-5]\d)\Z")
_GOT_MAX = 60
_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")
# What a base URL may hold: it is put as is into headers and HTML attributes.
_URL_CHARS = re.compile(r"[A-Za-z0-9._~:/%@!$&()*+,;=\[\]?#-]+\Z")
_LISTEN_EXAMPLE = "host:port, such as 127.0.0.1:8025 or [::1]:8025"


def failure(message: str, *, field: str | None = None) -> PydanticCustomError:
    """Return a validation error whose text is exactly ``message``.

    Args:
        message: What is wrong, as a person should read it.
        field: For a check on a whole model, the dotted path (below the model) of the
            value the message is about.

    Returns:
        The error to raise from a validator.
    """
    context: dict[str, str] = {"message": message}
    if field is not None:
        context["field"] = field
    return PydanticCustomError("mailopsd", "{message}", context)


def describe(value: object) -> str:
    """Render a YAML value for an error message: ``0``, ``"100"``, ``true``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= _GOT_MAX else text[: _GOT_MAX - 2] + '…"'
    return repr(value)


def _kind(value: object) -> str:
    """Name the type of a value without showing it (for secrets)."""
    if value in ("", None):
        return "nothing"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    return describe(value) if isinstance(value, dict | list) else type(value).__name__


def _must(expectation: str, value: object) -> PydanticCustomError:
    return failure(f"must be {expectation} (got {describe(value)})")


def _integer_at_least(minimum: int) -> Callable[[object], int]:
    def validate(value: object) -> int:
        if type(value) is not int or value < minimum:
            raise _must(f"an integer ≥ {minimum}", value)
        return value

    return validate


def _port(value: object) -> int:
    if type(value) is not int or not 1 <= value <= 65535:
        raise _must("a port number from 1 to 65535", value)
    return value


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _must("a non-empty string", value)
    return value


# Control characters other than tab (Unicode Cc, line and paragraph separators): a header
# cannot hold them, so a name or subject with one would fail every message it is sent in.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def _line(value: object) -> str:
    text = _text(value)
    if "\r" in text or "\n" in text:
        raise failure(f"must be a single line (got {describe(text)})")
    found = CONTROL_CHARACTERS.search(text)
    if found is not None:
        raise failure(
            f"must not hold control character U+{ord(found.group()):04X} (got {describe(text)})"
        )
    return text


def _identifier(value: object) -> str:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise failure(
            f"invalid id {describe(value)}: use 1 to 63 lowercase letters, digits and "
            "dashes, starting with a letter or digit"
        )
    return value


def _secret(value: object) -> SecretStr:
    if not isinstance(value, str) or not value:
        raise failure(f"must be a non-empty string (got {_kind(value)}; value not shown)")
    return SecretStr(value)


def _redacted(_: SecretStr) -> str:
    return REDACTED


def _is_ip(text: str) -> bool:
    if ":" not in text and not text[:1].isdigit():
        return False  # neither IPv6 nor dotted IPv4: a name (cheap, it is the common case)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _host(value: object) -> str:
    if type(value) is str:
        return _host_text(value)
    return _host_text(_text(value))  # not text: _text says so


@functools.lru_cache(maxsize=4096)
def _host_text(value: str) -> str:
    """A host name checked once: thousands of credentials name a few servers."""
    text = _text(value)
    if "://" in text:
        raise failure(f"must be a host name, not a URL (got {describe(text)})")
    labels = text.rstrip(".").split(".")
    if not _is_ip(text) and (
        len(text) > 253 or not all(_HOST_LABEL.match(label) for label in labels)
    ):
        raise _must("a host name or IP address", value)
    return text


def is_loopback_host(host: str) -> bool:
    """Tell whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _email(value: object) -> str:
    """An address of the configuration, checked as leads are; kept as sent on the wire."""
    text = _line(value)
    try:
        return addresses.wire_form(text)
    except addresses.AddressError as err:
        reason = addresses.refusal(err)
        raise failure(f"must be an email address (got {describe(text)}): {reason}") from err


def _bounce_route(value: object) -> str:
    if value in ("from", "drop"):
        return str(value)
    if isinstance(value, str) and "@" in value:
        return _email(value)
    raise _must('"from", "drop" or an email address', value)


def _ip_address(value: object) -> str:
    text = _text(value)
    if not _is_ip(text):
        raise _must("an IP address", value)
    return text


def one_of(*choices: str) -> Callable[[object], str]:
    """Return a validator accepting exactly one of ``choices`` (a string, case as given)."""

    def validate(value: object) -> str:
        if not isinstance(value, str) or value not in choices:
            raise _must("one of " + ", ".join(choices), value)
        return value

    return validate


def check_period(value: object) -> Period:
    """Check a period as every period field does: text such as ``"90 seconds"``.

    Raises:
        PydanticCustomError: It is not one, with the reason and the syntax.
    """
    if type(value) is int:
        reason = f'a number needs a unit, e.g. "{value} minutes"'
    elif not isinstance(value, str):
        reason = "must be a period written as text"
    else:
        try:
            return parse_period(value)
        except PeriodSyntaxError as err:
            if not err.about_syntax:
                raise failure(f"{err} (got {describe(value)})") from err
            reason = str(err)
    raise failure(f"{reason} (got {describe(value)}); {periods.SYNTAX}")


def _poll_interval(value: object) -> Period:
    period = check_period(value)
    if period.approx_seconds < MIN_POLL_SECONDS:
        raise failure(f"must be at least {MIN_POLL_SECONDS} seconds (got {describe(value)})")
    return period


def _request_timeout(value: object) -> Period:
    period = check_period(value)
    low, high = REQUEST_TIMEOUT_SECONDS
    if period.months or not low <= period.seconds <= high:
        raise failure(f"must be from {low} second to {high // 60} minutes (got {describe(value)})")
    return period


DASHBOARD_SESSION_SECONDS = (300, 30 * 86_400)


def _dashboard_session(value: object) -> Period:
    period = check_period(value)
    low, high = DASHBOARD_SESSION_SECONDS
    if period.months or not low <= period.seconds <= high:
        raise failure(f"must be from 5 minutes to 30 days (got {describe(value)})")
    return period


def _folders(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise _must("a non-empty list of folder names such as [INBOX, Junk]", value)
    for item in value:
        text = _line(item)
        if any(ord(char) < 32 for char in text) or '"' in text or "\\" in text:
            raise _must("folder names without quotes or backslashes", item)
    if len(set(value)) != len(value):
        raise failure("lists a folder twice")
    return tuple(value)


def _file_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise _must("a non-empty list of file paths such as [suppress/do-not-contact.txt]", value)
    for item in value:
        _text(item)
    if len(set(value)) != len(value):
        raise failure("lists a file twice")
    return tuple(value)


def _free_mail_domain(value: object) -> str:
    text = _line(value)
    try:
        return domains.free_mail_entry(text)
    except addresses.AddressError as err:
        raise failure(
            f"must be a domain such as mail.example.org, or name.* such as gmx.* "
            f"(got {describe(text)}): {err}"
        ) from err


def _domain(value: object) -> str:
    """A domain mail is sent to or from, in its normal form (lower case, A-labels)."""
    text = _line(value)
    try:
        return domains.domain_key(text)
    except addresses.AddressError as err:
        raise failure(
            f"must be a domain such as bounces.example.com (got {describe(text)}): {err}"
        ) from err


def _ratio(value: object) -> float:
    ratio: float | None = None
    if isinstance(value, str) and value.endswith("%"):
        try:
            ratio = float(value[:-1]) / 100
        except ValueError:
            ratio = None
    elif type(value) in (int, float):
        ratio = float(value)  # type: ignore[arg-type]  # checked just above
    if ratio is None or not 0 < ratio <= 1:
        raise _must('a rate above 0 and at most 1, such as 0.05 or "5%"', value)
    return ratio


def _timezone(value: object) -> str:
    text = _text(value)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as err:
        meant = suggest.closest_zone(text)
        hint = f"; did you mean {meant}?" if meant else ""
        expected = "an IANA time zone such as Europe/Paris or UTC"
        raise failure(f"must be {expected} (got {describe(value)}){hint}") from err
    return text


def _clock(value: object) -> str:
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None or (match.group(1) == "24" and match.group(2) != "00"):
        raise _must('a time of day "HH:MM" from "00:00" to "24:00"', value)
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def aware_moment(value: object, *, date_alone_is_utc: bool = False) -> datetime | None:
    """``value`` as a time-zone-aware moment, or ``None`` when it is not one.

    Args:
        value: A datetime, or an ISO 8601 string.
        date_alone_is_utc: Take a date alone (``2026-11-23``) as its 00:00 UTC.
    """
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        if date_alone_is_utc and moment.tzinfo is None and len(value) == 10:
            moment = moment.replace(tzinfo=UTC)
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        return None
    return moment


def _timestamp(value: object) -> datetime:
    moment = aware_moment(value)
    if moment is None:
        raise _must("a timestamp with a time zone, such as 2026-11-23T12:00:00Z", value)
    return moment


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _url(value: object) -> str:
    text = _line(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _must("an http or https URL", value)
    return text


def _listen(value: object) -> str:
    text = value if isinstance(value, str) else ""
    host, colon, port = text.rpartition(":")
    if not colon or not host or not (port.isascii() and port.isdigit()):
        raise _must(_LISTEN_EXAMPLE, value)
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as err:
            raise _must("an IPv6 address inside the brackets", value) from err
    elif ":" in host:
        raise failure(f"write an IPv6 address in brackets, as in [::1]:8025 (got {describe(text)})")
    else:
        _host(host)
    if int(port) != 0:  # 0: any free port, which the daemon logs and shows in its status
        _port(int(port))
    return text


def _base_url(value: object) -> str:
    text = _url(value)
    parts = urlsplit(text)
    if not text.isascii():
        raise failure(f"must be ASCII; write a domain in its xn-- form (got {describe(text)})")
    if not _URL_CHARS.match(text):
        raise failure(
            f"must not hold spaces, quotes, backslashes or angle brackets (got {describe(text)})"
        )
    if "?" in text or "#" in text:
        raise failure(f"must not have a query or fragment (got {describe(text)})")
    if "@" in parts.netloc:
        raise failure(f"must not hold a user name or password (got {describe(text)})")
    try:
        parts.port  # noqa: B018 - reading it checks it
    except ValueError as err:
        raise failure(f"has an invalid port (got {describe(text)})") from err
    return text.rstrip("/")


def _signing_key(value: object) -> SecretStr:
    secret = _secret(value)
    if len(secret.get_secret_value()) < MIN_SIGNING_KEY_CHARS:
        raise failure(
            f"must be at least {MIN_SIGNING_KEY_CHARS} characters long (value not shown); "
            "use a random one, e.g. from: openssl rand -base64 48"
        )
    return secret


def _sha256(value: object) -> str:
    if not isinstance(value, str) or not _SHA256_HEX.match(value):
        raise _must("64 lowercase hex digits (the sha256 printed by mailopsd apikey new)", value)
    return value


Id = Annotated[str, PlainValidator(_identifier)]
PositiveInt = Annotated[int, PlainValidator(_integer_at_least(1))]
Port = Annotated[int, PlainValidator(_port)]
Text = Annotated[str, PlainValidator(_text)]
Line = Annotated[str, PlainValidator(_line)]
Host = Annotated[str, PlainValidator(_host)]
Email = Annotated[str, PlainValidator(_email)]
Secret = Annotated[SecretStr, PlainValidator(_secret), PlainSerializer(_redacted, return_type=str)]
PeriodValue = Annotated[Period, PlainValidator(check_period), PlainSerializer(str)]
PollInterval = Annotated[Period, PlainValidator(_poll_interval), PlainSerializer(str)]
RequestTimeout = Annotated[Period, PlainValidator(_request_timeout), PlainSerializer(str)]
DashboardSession = Annotated[Period, PlainValidator(_dashboard_session), PlainSerializer(str)]
Folders = Annotated[
    tuple[str, ...], PlainValidator(_folders), PlainSerializer(list, return_type=list[str])
]
FileList = Annotated[
    tuple[str, ...], PlainValidator(_file_list), PlainSerializer(list, return_type=list[str])
]
FreeMailDomain = Annotated[str, PlainValidator(_free_mail_domain)]
Domain = Annotated[str, PlainValidator(_domain)]
Ratio = Annotated[float, PlainValidator(_ratio)]
TlsMode = Annotated[
    Literal["auto", "starttls", "implicit", "none"],
    PlainValidator(one_of("auto", "starttls", "implicit", "none")),
]
SMTP_IMPLICIT_TLS_PORT = 465  # RFC 8314: SMTP submission over implicit TLS
IMAP_IMPLICIT_TLS_PORT = 993  # RFC 8314: IMAP over implicit TLS


def resolve_tls(mode: str, port: int, implicit_port: int) -> str:
    """``implicit``, ``starttls`` or ``none``: ``auto`` is implicit TLS on ``implicit_port``."""
    if mode == "auto":
        return "implicit" if port == implicit_port else "starttls"
    return mode


Flag = Annotated[bool, Strict()]
Weekday = Annotated[str, PlainValidator(one_of(*WEEKDAYS))]
Timestamp = Annotated[
    datetime, PlainValidator(_timestamp), PlainSerializer(_rfc3339, return_type=str)
]

BounceRoute = Annotated[str, PlainValidator(_bounce_route)]
IpAddress = Annotated[str, PlainValidator(_ip_address)]
TimeZone = Annotated[str, PlainValidator(_timezone)]
ClockTime = Annotated[str, PlainValidator(_clock)]
Url = Annotated[str, PlainValidator(_url)]
ListenAddress = Annotated[str, PlainValidator(_listen)]
BaseUrl = Annotated[str, PlainValidator(_base_url)]
SigningKey = Annotated[
    SecretStr, PlainValidator(_signing_key), PlainSerializer(_redacted, return_type=str)
]
Sha256Hex = Annotated[str, PlainValidator(_sha256)]
