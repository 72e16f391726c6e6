"""Read the shipped systemd units (deploy/systemd/) and run their commands as the
units would: their Environment=, Group= and UMask=, with paths moved into
temporary directories."""

from __future__ import annotations

import grp
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .conftest import ROOT

UNITS = ROOT / "deploy" / "systemd"


@dataclass
class Unit:
    """One unit file: each (section, key) with its values in file order."""

    name: str
    keys: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def all(self, key: str, section: str = "Service") -> list[str]:
        return self.keys.get((section, key), [])

    def one(self, key: str, section: str = "Service") -> str:
        values = self.all(key, section)
        assert len(values) == 1, f"{self.name}: [{section}] {key}= given {len(values)} times"
        return values[0]

    def environment(self) -> dict[str, str]:
        """Every Environment= assignment (one VAR=value each in the shipped units)."""
        return dict(value.split("=", 1) for value in self.all("Environment"))


def read_unit(name: str) -> Unit:
    """Parse deploy/systemd/``name``: [Section] headers, ``Key=value`` lines, # comments."""
    unit = Unit(name)
    section = ""
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        unit.keys.setdefault((section, key.strip()), []).append(value.strip())
    return unit


def gid_of(group: str) -> int:
    """The id of ``group`` on this machine (the test fails if it does not exist)."""
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise AssertionError(f"group {group!r} does not exist on this machine") from None


def run_unit(unit: Unit, moves: dict[str, Path], gid: int, log: Path) -> subprocess.Popen[bytes]:
    """Start ``unit``'s ExecStart=habitat-http ... as systemd would, but as our own user.

    ``moves`` maps the unit's directories (/run/habitat, /var/lib/habitat) to test
    directories, in the command line and the environment. The process gets the
    group ``gid`` alone (no supplementary groups) and the unit's UMask=.
    """
    argv = shlex.split(unit.one("ExecStart"))
    assert argv[0].endswith("/habitat-http"), argv
    env = unit.environment()
    for old, new in moves.items():
        argv = [arg.replace(old, str(new)) for arg in argv]
        env = {key: value.replace(old, str(new)) for key, value in env.items()}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "habitat_http", *argv[1:]],
            cwd=ROOT,
            env={**os.environ, **env},
            group=gid,
            extra_groups=[],
            umask=int(unit.one("UMask"), 8),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
