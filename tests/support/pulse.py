"""A private PulseAudio daemon with a null sink, for real capture tests.

Audio played into the sink ``gm_test`` (``paplay --device=gm_test``) comes back
on its monitor source, which is the daemon's default source, so PortAudio's
ALSA ``pulse`` device records it. Each daemon lives in its own runtime dir and
clients find it through ``PULSE_SERVER``, so parallel test runs don't collide.

The ``pulse`` fixture is registered for every test module by ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from tests.support.processes import pid_alive
from tests.support.wait import poll

SINK = "gm_test"

requires_pulseaudio = pytest.mark.skipif(
    shutil.which("pulseaudio") is None or shutil.which("pactl") is None,
    reason="PulseAudio (pulseaudio, pactl) is not installed; apt-get install pulseaudio pulseaudio-utils")


class PulseServer:
    """Handle on a running daemon: ``env`` for subprocesses, ``play(path)``, ``stop()``."""

    def __init__(self, runtime_dir: str):
        self.runtime_dir = runtime_dir
        self.socket = os.path.join(runtime_dir, "pulse", "native")
        self.server = f"unix:{self.socket}"
        self.env = dict(os.environ, XDG_RUNTIME_DIR=runtime_dir, HOME=runtime_dir,
                        PULSE_SERVER=self.server)
        self.pid: int | None = None

    def pactl(self, *args: str) -> str:
        out = subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def play(self, path) -> subprocess.Popen:
        """Start ``paplay`` into the null sink; returns the process."""
        return subprocess.Popen(["paplay", f"--device={SINK}", str(path)], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        poll(lambda: not pid_alive(self.pid), 5)
        if pid_alive(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.pid = None


def start_pulse(runtime_dir: str) -> PulseServer:
    """Start a daemon in ``runtime_dir`` and wait until it answers."""
    srv = PulseServer(runtime_dir)
    cmd = ["pulseaudio", "-n", "--daemonize=yes", "--exit-idle-time=-1", "--system=false",
           "--disallow-exit", "--disallow-module-loading=no", "--use-pid-file=yes",
           "--log-target=file:" + os.path.join(runtime_dir, "pulse.log"),
           f"--load=module-null-sink sink_name={SINK} rate=44100",
           "--load=module-native-protocol-unix auth-anonymous=1"]
    out = subprocess.run(cmd, env=srv.env, capture_output=True, text=True, timeout=20)
    if out.returncode != 0:
        raise RuntimeError(f"pulseaudio failed to start: {out.stderr.strip()}")
    pidfile = os.path.join(runtime_dir, "pulse", "pid")
    deadline = time.monotonic() + 10
    while True:
        try:
            srv.pid = int(open(pidfile).read().strip())
            srv.pactl("info")
            break
        except (OSError, ValueError, RuntimeError):
            if time.monotonic() > deadline:
                srv.stop()
                raise RuntimeError("pulseaudio started but does not answer on " + srv.socket) from None
            time.sleep(0.1)
    srv.pactl("set-default-sink", SINK)
    srv.pactl("set-default-source", f"{SINK}.monitor")
    return srv


@contextlib.contextmanager
def pulse_server():
    """Run a daemon for the duration of the block, with ``PULSE_SERVER`` pointing at
    it in this process (the ALSA pulse plugin reads it on each stream open)."""
    runtime_dir = tempfile.mkdtemp(prefix="gm-pulse-")
    os.chmod(runtime_dir, 0o700)
    saved = {k: os.environ.get(k) for k in ("PULSE_SERVER",)}
    srv = None
    try:
        srv = start_pulse(runtime_dir)
        os.environ["PULSE_SERVER"] = srv.server
        # PortAudio enumerated devices at import; list the 'pulse' device now.
        from server.audio import devices
        devices.rescan()
        yield srv
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if srv is not None:
            srv.stop()
        shutil.rmtree(runtime_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def pulse():
    """A running PulseAudio daemon with the null sink ``gm_test`` (module-scoped)."""
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        pytest.skip("PulseAudio (pulseaudio, pactl) is not installed")
    with pulse_server() as srv:
        yield srv
