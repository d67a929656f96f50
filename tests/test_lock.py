"""The locked environment: requirements.lock pins every dependency of pyproject.toml (and
their dependencies) with hashes, and environment.yml installs from the same file."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].strip().lower())


def _lock() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of requirements.lock."""
    out, current = {}, None
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            current = _name(m[1])
            out[current] = (m[2], [])
        elif current and "--hash=sha256:" in line:
            out[current][1].append(line.split("--hash=sha256:")[1].strip(" \\"))
    return out


def test_lock_pins_every_dependency_with_hashes():
    lock = _lock()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra, reqs in project["optional-dependencies"].items():
        wanted += [r for r in reqs if not r.startswith("pcdeq[")]
    for req in wanted:
        assert _name(req) in lock, f"{req} (pyproject.toml) is not in requirements.lock"
    assert lock["torch"][0] == "2.14.1" and lock["torchvision"][0] == "0.29.1"
    assert all(len(h) == 64 for _, hashes in lock.values() for h in hashes)
    assert all(hashes for _, hashes in lock.values()), "a pin without a hash"
    assert len(lock) > 100  # the transitive closure, not only the direct dependencies


def test_lock_says_how_to_refresh_it_and_conda_uses_it():
    head = (ROOT / "requirements.lock").read_text().splitlines()[:3]
    assert any("uv pip compile pyproject.toml --extra all --generate-hashes" in l for l in head)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-r requirements.lock" in pip and "--require-hashes" in pip
    assert "pip install --require-hashes -r requirements.lock" in (ROOT / "README.md").read_text()
