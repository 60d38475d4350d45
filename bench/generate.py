"""Generate large, valid configs: N campaigns x M credentials, with leads and a template.

python -m bench.generate OUT_DIR [--campaigns 1000] [--credentials 10]

:func:`generate` writes one file with every field of every credential, for the loading
benchmarks; :func:`generate_fleet` writes campaigns, one file each, that really send, to
an SMTP relay on 127.0.0.1, for the daemon under load; :func:`write_leads` writes leads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

PER_CAMPAIGN = 10

_CAMPAIGN = """\
  camp-{c:05d}:
    name: Generated campaign {c}
    account: acct-{account}
    timezone: Europe/Paris
    send_window: {{days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}}
    leads: leads.csv
    sequence:
      - subject: "Quick question, {{{{ first_name }}}}"
        body: |
          Hi {{{{ first_name }}}}, is {{{{ company }}}} still hiring?
      - delay: 3 days
        body_file: step2.txt
      - delay: 4 days 12:00:00
        body: "Last note, {{{{ first_name }}}}."
    bounce_threshold: 5%
    bounce_min_sends: 20
    bounce_window: 7 days
    smtp_credentials:
"""
_CREDENTIAL = """\
      box-{n:02d}:
        label: Mailbox {n}
        smtp_host: smtp{n}.example.com
        smtp_port: 587
        smtp_username: {user}
        smtp_password: {password}
        from_name: Sender {n}
        from_email: sender{n}.c{c}@example.com
        daily_limit: {limit}
        imap_host: imap{n}.example.com
        imap_port: 993
        imap_username: {user}
        imap_password: {password}
        status: allowed
        enabled: true
        rate_limit: {{value: 20, period: "1 hour"}}
        min_interval: 90 seconds
        tls: auto
"""


# Shaped like SOPS values; opaque to the loader until secrets are decrypted.
_CIPHERTEXT_A = (
    "ENC[AES256_GCM,data:dXNlcm5hbWUtZm9yLWJlbmNo,iv:aXYtaXYtaXYtaXY=,tag:dGFnLXRhZw==,type:str]"
)
_CIPHERTEXT_B = (
    "ENC[AES256_GCM,data:cGFzc3dvcmQtYmVuY2g=,iv:aXYtaXYtaXYtaXY=,tag:dGFnLXRhZw==,type:str]"
)


_FLEET_CAMPAIGN = """\
campaigns:
  camp-{c:05d}:
    name: Fleet campaign {c}
    leads: leads-{c:05d}.csv
    sequence:
      - subject: "Quick question, {{{{ first_name }}}}"
        body: "Hi {{{{ first_name }}}}, is {{{{ company }}}} hiring?"
    smtp_credentials:
"""
_FLEET_CREDENTIAL = """\
      box-{n:05d}:
        smtp_host: 127.0.0.1
        smtp_port: {port}
        smtp_username: user{n}
        smtp_password: password-{n}-fleet
        from_name: Box {n}
        from_email: box{n}.c{c}@sender.example.com
        daily_limit: {limit}
        tls: none
"""


def write_leads(path: Path, count: int, *, start: int = 0, append: bool = False) -> None:
    """Write (or append) ``count`` leads ``lead{i}@example.net`` with two more columns."""
    with path.open("a" if append else "w") as stream:
        if not append:
            stream.write("email,first_name,company\n")
        for first in range(start, start + count, 10_000):
            stream.write(
                "".join(
                    f"lead{i}@example.net,Name{i},Co {i % 977}\n"
                    for i in range(first, min(first + 10_000, start + count))
                )
            )


def generate_fleet(
    out: Path, *, campaigns: int, credentials: int, leads: int, smtp_port: int
) -> list[Path]:
    """Write campaigns that send, each in its own file with its own leads file.

    Every credential sends, without TLS or login, to the relay on 127.0.0.1:``smtp_port``
    (which mailopsd allows only on loopback), with a daily limit no campaign reaches, no
    rate limit and no send window: what is due goes out at the pace of the daemon and the
    relay. Secrets are in clear (run with ``--allow-plaintext-secrets``).

    Args:
        out: The directory to write into (the daemon's ``--config``).
        campaigns: How many campaigns.
        credentials: How many credentials in all, shared evenly among the campaigns.
        leads: How many leads in all, shared evenly; every address is different.
        smtp_port: The relay's port on 127.0.0.1.

    Returns:
        The campaign files, in order.
    """
    out.mkdir(parents=True, exist_ok=True)
    per_campaign, per_leads = max(1, credentials // campaigns), leads // campaigns
    paths = []
    for c in range(campaigns):
        write_leads(out / f"leads-{c:05d}.csv", per_leads, start=c * per_leads)
        parts = [_FLEET_CAMPAIGN.format(c=c)]
        parts.extend(
            _FLEET_CREDENTIAL.format(n=n, c=c, port=smtp_port, limit=max(1, per_leads))
            for n in range(per_campaign)
        )
        path = out / f"camp-{c:05d}.yaml"
        path.write_text("".join(parts))
        paths.append(path)
    return paths


def generate(out: Path, *, campaigns: int, credentials: int, plain_secrets: bool = False) -> Path:
    """Write ``campaigns.yaml``, ``leads.csv`` and ``step2.txt`` into ``out``.

    Args:
        out: The directory to write into.
        campaigns: How many campaigns.
        credentials: How many credentials per campaign.
        plain_secrets: Write secrets in clear (to be encrypted by the caller) instead of
            opaque ``ENC[…]`` placeholders.

    Returns:
        The config file's path.
    """
    user, password = (
        ("bench-user@example.com", "bench-password-1234")
        if plain_secrets
        else (_CIPHERTEXT_A, _CIPHERTEXT_B)
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "leads.csv").write_text("email,first_name,company\na@example.com,Ann,Acme\n")
    (out / "step2.txt").write_text("Hi {{ first_name }}, following up.\n")
    parts = ["campaigns:\n"]
    for c in range(campaigns):
        parts.append(_CAMPAIGN.format(c=c, account=c % 7))
        parts.extend(
            _CREDENTIAL.format(
                n=n, c=c, limit=50 + n, user=_login(user, n, c, plain_secrets), password=password
            )
            for n in range(credentials)
        )
    path = out / "campaigns.yaml"
    path.write_text("".join(parts))
    return path


def _login(user: str, n: int, c: int, plain: bool) -> str:
    """Each mailbox its own login, as in a real config.

    One login in several places is a warning that ``validate`` locates in the file.
    """
    return user.replace("@", f"{n}.c{c}@") if plain else user


def generate_credentials(out: Path, credentials: int, *, plain_secrets: bool = False) -> Path:
    """Like :func:`generate`, sized by the total: campaigns of ``PER_CAMPAIGN`` credentials."""
    return generate(
        out,
        campaigns=max(1, credentials // PER_CAMPAIGN),
        credentials=min(credentials, PER_CAMPAIGN),
        plain_secrets=plain_secrets,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--campaigns", type=int, default=1000)
    parser.add_argument("--credentials", type=int, default=10)
    args = parser.parse_args()
    path = generate(args.out, campaigns=args.campaigns, credentials=args.credentials)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
