"""The real sops binary (installed by the test command), test keys, and the vectors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyrage import x25519

from mailopsd.secrets import IdentitySet, parse_identities

VECTORS = Path(__file__).resolve().parent / "data" / "sops"
KEYS = VECTORS / "keys"


def sops_binary() -> Path:
    """Return the sops executable installed beside this Python (never skipped)."""
    beside = Path(sys.executable).parent / "sops"
    found = beside if beside.exists() else shutil.which("sops")
    assert found, "the sops binary is missing: the test command installs sops-binary"
    return Path(found)


@dataclass(frozen=True)
class AgeKey:
    """A throwaway age identity written to a key file."""

    path: Path
    recipient: str

    def identities(self) -> IdentitySet:
        return parse_identities(self.path.read_text(), str(self.path))


def make_key(directory: Path, name: str = "key.txt") -> AgeKey:
    """Generate an age identity into ``directory/name`` (mode 0600)."""
    identity = x25519.Identity.generate()
    path = directory / name
    path.write_text(f"# test key\n# public key: {identity.to_public()}\n{identity}\n")
    path.chmod(0o600)
    return AgeKey(path, str(identity.to_public()))


def run_sops(
    args: list[str], key_file: Path, *, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real sops with ``key_file`` as its only identity source."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(key_file.parent),
        "SOPS_AGE_KEY_FILE": str(key_file),
        "SOPS_DISABLE_VERSION_CHECK": "1",
    }
    return subprocess.run(
        [str(sops_binary()), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=60,
    )


CliRun = Callable[..., tuple[int, str, str]]
