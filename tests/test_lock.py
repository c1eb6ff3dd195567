"""The locked install: requirements*.lock pin every package of requirements*.txt, with hashes.

make installs the lock files (never requirements*.txt directly), the build tools first and
everything after built with them; `make lock` writes them. A requirement edited without `make
lock`, a lock entry without a hash, a runtime or build pin that differs from the tested one, an
install step that would let pip fetch build tools unchecked, or a venv that drifted from the
lock fails here, by name.
"""

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(lock: str) -> dict[str, tuple[str, int]]:
    """``{name: (version, number of hashes)}`` of a lock file."""
    found, current = {}, None
    for line in (ROOT / lock).read_text().splitlines():
        m = _ENTRY.match(line)
        if m:
            current = canonicalize_name(m.group(1))
            found[current] = (m.group(2), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, n = found[current]
            found[current] = (version, n + 1)
        elif not line.startswith(" "):
            current = None
    return found


def requirements(path: str) -> list[Requirement]:
    out = []
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(Requirement(line))
    return out


def test_every_requirement_is_pinned_in_range_with_hashes():
    for lock, sources in (("requirements.lock", ["requirements.txt"]),
                          ("requirements-build.lock", ["requirements-build.txt"]),
                          ("requirements-test.lock", ["requirements.txt", "requirements-test.txt",
                                                      "requirements-build.txt"])):
        locked = pins(lock)
        assert locked, lock
        unhashed = [name for name, (_, n) in locked.items() if n == 0]
        assert not unhashed, f"{lock}: no hash for {unhashed}"
        for path in sources:
            for req in requirements(path):
                name = canonicalize_name(req.name)
                assert name in locked, f"{req} ({path}) is not in {lock}: run `make lock`"
                version = locked[name][0]
                assert req.specifier.contains(version, prereleases=True), \
                    f"{lock} pins {name}=={version}, outside {req} ({path}): run `make lock`"


def test_the_runtime_lock_is_the_tested_set_less_the_test_tools():
    runtime, tested = pins("requirements.lock"), pins("requirements-test.lock")
    differ = {n: (v, tested.get(n, (None,))[0]) for n, (v, _) in runtime.items() if tested.get(n, (None,))[0] != v}
    assert not differ, f"runtime pins that differ from the tested ones (runtime, tested): {differ}"
    assert "gunicorn" in runtime and "pytest" not in runtime and "pytest" in tested


def test_the_build_tools_are_pinned_as_in_the_tested_set():
    build, tested = pins("requirements-build.lock"), pins("requirements-test.lock")
    assert {"setuptools", "wheel"} <= set(build)
    differ = {n: (v, tested.get(n, (None,))[0]) for n, (v, _) in build.items() if tested.get(n, (None,))[0] != v}
    assert not differ, f"build pins that differ from the tested ones (build, tested): {differ}"


def install_steps() -> list[str]:
    """The Makefile's ``pip install`` commands, in order, with its variables written out."""
    text = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^([A-Z_]+)\s*:?=\s*(.*)$", text, re.M))
    steps = []
    for line in text.splitlines():
        for _ in range(5):
            line = re.sub(r"\$\(([A-Z_]+)\)", lambda m: variables.get(m.group(1), m.group(0)), line)
        if line.startswith("\t") and "pip install" in line:
            steps.append(line.strip())
    return steps


def test_make_installs_the_build_tools_first_and_builds_everything_else_with_them():
    steps = install_steps()
    assert "requirements-build.lock" in steps[0], steps
    assert "--require-hashes" in steps[0] and "--only-binary :all:" in steps[0], steps[0]
    for step in steps[1:]:  # pip's build isolation would fetch setuptools and wheel unchecked
        assert "--no-build-isolation" in step, step
        assert "--require-hashes" in step or step.endswith("-e ."), step
    assert any(s.endswith("-e .") for s in steps) and any("requirements-nodeps.lock" in s for s in steps)


def test_musicnn_is_pinned_with_its_hash_apart():
    assert pins("requirements-nodeps.lock") == {"musicnn": ("0.1.0", 1)}


def test_this_venv_holds_the_locked_versions():
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    locked = {**pins("requirements-test.lock"), **pins("requirements-build.lock"), **pins("requirements-nodeps.lock")}
    drift = {n: (v, installed.get(n)) for n, (v, _) in locked.items() if installed.get(n) != v}
    assert not drift, f"installed versions differ from the lock (locked, installed): {drift}; run `make setup`"
