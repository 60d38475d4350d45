"""A real DNS server for tests: NSD, authoritative for the zones a test writes, on 127.0.0.1.

Each test starts its own (``nsd`` fixture: ``nsd.serve({"example.com": RECORDS})``):
NSD starts in tens of milliseconds, and a test's zones are then all it answers for. The
records are zone-file lines relative to the zone (``@ MX 10 mx``); the fixture adds the
SOA and NS records, checks every zone with ``nsd-checkzone`` first (a typo in a test
zone is an error here, not a SERVFAIL later), and waits until the server answers. A
zone listed in ``broken`` is declared without a file: NSD answers SERVFAIL for it.
``silent_nameserver`` is a UDP port that takes queries and never answers (a dead
nameserver). Nothing listens beyond 127.0.0.1. The server is stopped by its pid, and
its log is printed at the end of the test (pytest shows it when the test fails).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

NSD = shutil.which("nsd") or "/usr/sbin/nsd"
NSD_CHECKZONE = shutil.which("nsd-checkzone") or "/usr/sbin/nsd-checkzone"
START_TIMEOUT_S = 15.0
QUERY_TIMEOUT_S = 1.0
# The first waits for an answer while NSD starts: a query sent before it listens gets no
# answer at all (UDP), so each wait is short at first and doubles up to QUERY_TIMEOUT_S.
FIRST_WAIT_S = 0.02

_CONFIG = """\
server:
    ip-address: 127.0.0.1@{port}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{dir}"
    pidfile: "{dir}/nsd.pid"
    database: ""
    logfile: "{dir}/nsd.log"
    xfrdfile: "{dir}/xfrd.state"
    zonelistfile: "{dir}/zone.list"
    xfrdir: "{dir}"
    server-count: 1
    verbosity: 1
    reuseport: no
remote-control:
    control-enable: no
"""
_HEAD = """\
$ORIGIN {zone}.
$TTL 300
@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 300
@ IN NS ns.{zone}.
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Nsd:
    """One NSD instance, serving the zones of one test."""

    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    zones: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        """What ``--nameserver`` takes: ``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    def serve(self, zones: Mapping[str, str], *, broken: Sequence[str] = ()) -> Nsd:
        """Write ``zones`` (name: records) and start the server on a free port."""
        config = []
        for zone, records in zones.items():
            path = self.directory / f"{zone}.zone"
            path.write_text(_HEAD.format(zone=zone) + records)
            checked = subprocess.run(
                [NSD_CHECKZONE, zone, str(path)], capture_output=True, text=True, check=False
            )
            assert checked.returncode == 0, f"test zone {zone} is invalid: {checked.stderr}"
            config.append(f"zone:\n    name: {zone}\n    zonefile: {zone}.zone\n")
        config.extend(
            f"zone:\n    name: {zone}\n    zonefile: missing-{zone}.zone\n" for zone in broken
        )
        self.zones = [*zones, *broken]
        self._start("".join(config))
        return self

    def _start(self, zone_config: str, tries: int = 5) -> None:
        for _ in range(tries):
            self.port = _free_port()
            conf = self.directory / "nsd.conf"
            conf.write_text(_CONFIG.format(port=self.port, dir=self.directory) + zone_config)
            process = subprocess.Popen([NSD, "-d", "-c", str(conf)])
            deadline = time.monotonic() + START_TIMEOUT_S
            wait_s = FIRST_WAIT_S
            while process.poll() is None and time.monotonic() < deadline:
                if self._answers(wait_s):
                    self.process = process
                    return
                wait_s = min(2 * wait_s, QUERY_TIMEOUT_S)
                time.sleep(0.01)
            if process.poll() is None:
                process.kill()
                process.wait()
                raise RuntimeError(
                    f"nsd gave no answer in {START_TIMEOUT_S:g} s; its log:\n{self.log()}"
                )
            # It exited: most likely the port was taken meanwhile; try another.
        raise RuntimeError(f"nsd failed to start {tries} times; its log:\n{self.log()}")

    def _answers(self, timeout_s: float) -> bool:
        query = dns.message.make_query(self.zones[0], "SOA")
        try:
            reply = dns.query.udp(query, "127.0.0.1", timeout=timeout_s, port=self.port)
        except (OSError, dns.exception.DNSException):
            return False
        return reply.rcode() in (dns.rcode.NOERROR, dns.rcode.SERVFAIL)

    def stop(self) -> None:
        """Stop the server by its pid and wait until it is gone."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(15)
            self.process = None

    def log(self) -> str:
        """What NSD logged."""
        path = self.directory / "nsd.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"


@pytest.fixture
def nsd() -> Iterator[Nsd]:
    """An NSD for this test; ``nsd.serve(zones)`` starts it."""
    if shutil.which("nsd") is None:
        pytest.fail("nsd is not installed; the README's test command (scripts/test) installs it")
    server = Nsd(Path(tempfile.mkdtemp(prefix="nsd-", dir="/tmp")))
    try:
        yield server
    finally:
        server.stop()
        print(f"nsd log:\n{server.log()}")
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def silent_nameserver() -> Iterator[str]:
    """A loopback UDP port that takes DNS queries and never answers: ``127.0.0.1:PORT``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
