"""Scale-out through Redis: leases, the registry, and two workers + two web processes.

Everything runs against a real ``redis-server`` (tests/support/redis_server.py); the end-to-end
test adds a real PostgreSQL history when the server binaries are there.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf

from server.cluster import leases, registry, shared_settings, state
from server.cluster.redis_conn import ClusterError, connect
from server.cluster.remote_engine import RemoteEngine
from server.engine import EngineError
from server.monitor.alerts import validate_rules
from server.subprocesses import stop_process
from tests.support.audio import make_music
from tests.support.wait import wait_until
from tests.support.web import free_port

pytestmark = pytest.mark.slow  # end to end: see pyproject.toml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def r(redis_url):
    client = connect(redis_url)
    client.flushdb()
    return client


# --- leases ------------------------------------------------------------------------------------------
def test_lease_claim_is_exclusive_and_renewed_by_its_owner_only(r):
    assert leases.claim(r, "s1", "w1", ttl=5)
    assert not leases.claim(r, "s1", "w2", ttl=5)
    assert leases.owners(r, ["s1", "s2"]) == {"s1": "w1", "s2": None}
    assert leases.renew(r, "s1", "w1", ttl=5)
    assert not leases.renew(r, "s1", "w2", ttl=5)
    assert r.pttl(leases.key("s1")) > 4000


def test_lease_expires_and_another_worker_reclaims_it(r):
    assert leases.claim(r, "s1", "w1", ttl=0.3)
    # The dead owner renews no more.
    wait_until(lambda: leases.owners(r, ["s1"])["s1"] is None, 5, message="lease never expired")
    assert leases.claim(r, "s1", "w2", ttl=5)
    assert leases.renew_many(r, ["s1"], "w1", ttl=5) == {"s1": False}  # the old owner learns it lost it
    assert not leases.release(r, "s1", "w1")
    assert leases.owners(r, ["s1"])["s1"] == "w2"
    assert leases.release(r, "s1", "w2")
    assert leases.owners(r, ["s1"])["s1"] is None


def test_a_lapsed_lease_nobody_took_is_taken_back_on_renewal(r):
    assert leases.claim(r, "s1", "w1", ttl=0.2)
    while leases.owners(r, ["s1"])["s1"] is not None:
        time.sleep(0.05)
    assert leases.renew(r, "s1", "w1", ttl=5)
    assert leases.owners(r, ["s1"])["s1"] == "w1"


def test_connect_refuses_bad_urls_and_absent_servers():
    with pytest.raises(ClusterError, match="not a Redis URL"):
        connect("http://127.0.0.1:1")
    with pytest.raises(ClusterError, match="cannot reach Redis"):
        connect(f"redis://127.0.0.1:{free_port()}/0", timeout=1)


# --- the registry and the web tier's engine ----------------------------------------------------------
def test_remote_engine_registers_lists_and_removes_sources(r, redis_url):
    engine = RemoteEngine(redis_url)
    sid = engine.start_source({"kind": "stream", "url": "https://radio.example/live.mp3"})
    assert sid == "stream-radio-example-live-mp3"
    assert engine.start_source({"kind": "demo", "id": "lobby"}) == "lobby"
    with pytest.raises(EngineError, match="already running"):
        engine.start_source({"kind": "demo", "id": "lobby"})
    assert engine.source_ids() == ["lobby", sid]
    listed = {s["id"]: s for s in engine.status()["sources"]}
    assert listed[sid]["state"] == "starting" and listed[sid]["notice"] == "waiting for a worker"
    assert registry.specs(r)[sid]["hop"] == 1.0
    assert engine.status()["model"]["error"] == "no worker is running"
    engine.restart_source(sid)
    assert registry.restarts(r)[sid] == 1
    engine.stop_source("lobby")
    assert engine.source_ids() == [sid]
    with pytest.raises(EngineError, match="no source"):
        engine.stop_source("lobby")


@pytest.mark.parametrize("spec, message", [
    ({"kind": "radio"}, "unknown source kind"),
    ({"kind": "file"}, "needs a 'path'"),
    ({"kind": "stream", "url": "ftp://x/y"}, "http"),
    ({"kind": "demo", "hop": 9}, "hop must be"),
    ({"kind": "demo", "id": "bad id!"}, "letters, digits"),
])
def test_remote_engine_refuses_bad_specs_with_a_message(r, redis_url, spec, message):
    with pytest.raises(EngineError, match=message):
        RemoteEngine(redis_url).start_source(spec)
    assert registry.ids(r) == []


def test_shared_settings_are_validated_and_stored_for_workers(r, redis_url):
    engine = RemoteEngine(redis_url)
    out = engine.set_monitoring(smoothing={"kind": "median", "n": 3}, segments={"min_duration": 5})
    assert out["smoothing"] == {"kind": "median", "n": 3}
    assert shared_settings.read(r)["segments"] == {"min_duration": 5}
    with pytest.raises(EngineError, match="invalid monitoring"):
        engine.set_monitoring(segments={"colour": 1})
    engine.start_source({"kind": "demo", "id": "x"})
    with pytest.raises(EngineError, match="still loading"):  # no worker has a model yet
        engine.set_rules("x", [{"type": "silence", "for": 10}])
    state.publish_worker(r, "w1", {"sources": 0, "capacity": 2, "devices": [{"index": 0, "name": "line"}],
                                   "model": {"name": "m", "labels": ["jazz", "rock"], "ready": True}})
    rules = engine.set_rules("x", [{"type": "unexpected_genre", "expected": ["jazz"], "for": 30}])
    assert shared_settings.read(r)["rules"] == {"x": rules} and engine.rules("x") == rules
    kept = engine.set_rules("x", [{"type": "unexpected_genre", "expected": ["polka"], "for": 30}])
    assert kept[0]["expected"] == ["polka"] and engine.rules("x") == kept  # a genre the model lacks stays
    with pytest.raises(EngineError, match="non-empty list"):
        engine.set_rules("x", [{"type": "unexpected_genre", "expected": [], "for": 30}])
    assert engine.list_devices() == [{"index": 0, "name": "line", "worker": "w1"}]
    assert engine.status()["model"]["ready"] is True


READY = {"sources": 0, "capacity": 2, "devices": [], "model": {"name": "m", "labels": ["jazz", "rock"], "ready": True}}
SILENCE = [{"type": "silence", "for": 10}]


def test_a_deleted_sources_rules_go_with_it_and_are_never_set_for_an_unknown_source(r, redis_url):
    engine = RemoteEngine(redis_url)
    state.publish_worker(r, "w1", READY)
    for sid in ("a", "b"):
        engine.start_source({"kind": "demo", "id": sid})
        engine.set_rules(sid, SILENCE)
    engine.stop_source("a")
    assert set(shared_settings.read(r)["rules"]) == {"b"}  # as the single process deletes them
    with pytest.raises(EngineError, match="no source with id 'a'"):
        engine.set_rules("a", SILENCE)
    assert set(shared_settings.read(r)["rules"]) == {"b"}
    engine.start_source({"kind": "demo", "id": "a"})  # the same id again starts without the old rules
    assert engine.rules("a") == [] and engine.rules("b") == validate_rules(SILENCE)


def test_a_starting_web_tier_sweeps_rules_left_by_deleted_sources(r, redis_url):
    engine = RemoteEngine(redis_url)
    state.publish_worker(r, "w1", READY)
    engine.start_source({"kind": "demo", "id": "kept"})
    engine.set_rules("kept", SILENCE)
    # As an earlier version left them: rules of a source no longer registered.
    shared_settings.update(r, rules={**shared_settings.read(r)["rules"], "gone": validate_rules(SILENCE)})
    later = RemoteEngine(redis_url)
    later.start(start_task=lambda fn: None)  # the registry follower is not needed here
    assert set(shared_settings.read(r)["rules"]) == {"kept"}
    assert later.rules("kept") == validate_rules(SILENCE)
    assert shared_settings.sweep_rules(r) == []  # nothing left to sweep


def test_rules_edited_while_sources_are_deleted_never_outlive_them(r, redis_url):
    import threading

    engines = [RemoteEngine(redis_url), RemoteEngine(redis_url)]  # two web processes
    state.publish_worker(r, "w1", READY)
    ids = [engines[0].start_source({"kind": "demo", "id": f"s{i}"}) for i in range(30)]
    doomed, kept = ids[::2], ids[1::2]
    go = threading.Barrier(2)

    def edit():
        go.wait()
        for _ in range(5):
            for sid in ids:
                try:
                    engines[0].set_rules(sid, SILENCE)
                except EngineError:  # deleted meanwhile
                    pass

    def delete():
        go.wait()
        for sid in doomed:
            engines[1].stop_source(sid)

    threads = [threading.Thread(target=edit), threading.Thread(target=delete)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert registry.ids(r) == sorted(kept)
    assert sorted(shared_settings.read(r)["rules"]) == sorted(kept)


def test_the_web_tier_refuses_the_201st_source_and_too_many_rules_and_deletes_rules_over_http(r, redis_url, tmp_path):
    from server.config import MAX_SOURCES
    from server.schemas import MAX_RULES

    port = free_port()
    web = Proc("web", ["serve", "--redis", redis_url, "--port", str(port), "--upload-dir", str(tmp_path / "up")],
               tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait("the web process", lambda: _get(url + "/healthz"), 60, [web])
        for i in range(MAX_SOURCES - 1):
            registry.add(r, {"kind": "demo", "id": f"s{i}"})
        status, body = _call("POST", url + "/api/sources", {"kind": "demo"})  # the 200th
        assert status == 200, body
        last = body["id"]
        status, body = _call("POST", url + "/api/sources", {"kind": "demo"})
        assert status == 400 and f"too many sources: {MAX_SOURCES} are running" in body["error"], body
        assert len(registry.ids(r)) == MAX_SOURCES

        state.publish_worker(r, "w1", READY)
        status, body = _call("PUT", f"{url}/api/sources/{last}/rules", {"rules": SILENCE * (MAX_RULES + 1)})
        assert status == 400 and "rules" in body["error"], body
        status, body = _call("PUT", f"{url}/api/sources/{last}/rules", {"rules": SILENCE * MAX_RULES})
        assert status == 200 and len(shared_settings.read(r)["rules"][last]) == MAX_RULES, body
        status, body = _call("DELETE", f"{url}/api/sources/{last}")
        assert status == 200, body
        assert last not in registry.ids(r) and last not in shared_settings.read(r)["rules"]
        assert _post(url + "/api/sources", {"kind": "demo"})["id"] == last  # room again
    finally:
        web.end()


def _call(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


# --- end to end: two workers, two web processes --------------------------------------------------------
class Proc:
    def __init__(self, name: str, args: list[str], workdir: Path):
        self.name, self.log_path = name, workdir / f"{name}.log"
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        env.setdefault("GENRE_MONITOR_DATA", str(workdir / "data"))  # a worker locks its data directory
        env.pop("GENRE_MONITOR_TOKEN", None)
        with open(self.log_path, "wb") as log:
            self.p = subprocess.Popen([sys.executable, "-m", "server.cluster", *args], cwd=ROOT, env=env,
                                      stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def end(self) -> None:
        stop_process(self.p, grace=20)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _post(url: str, body: dict):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _wait(what: str, check, timeout: float, procs=()):
    """``wait_until(check)``, failing at once if one of ``procs`` exits; an unreachable server reads as not yet."""
    def ready():
        for p in procs:
            if p.p.poll() is not None:
                raise AssertionError(f"{p.name} exited ({p.p.returncode}) while waiting for {what}:\n{p.log()}")
        try:
            return check()
        except OSError:
            return None

    return wait_until(ready, timeout, 0.3,
                      lambda: f"waiting for {what}\n" + "\n".join(f"--- {p.name}\n{p.log()}" for p in procs))


@contextlib.contextmanager
def _history_url():
    """A PostgreSQL database for the shared history, or None when the server is not installed."""
    from tests.support.postgres import create_database, running_postgres

    if importlib.util.find_spec("psycopg") is None:
        yield None
        return
    with running_postgres() as (url, _why):
        yield create_database(url) if url else None


@pytest.mark.timeout(600)
def test_two_workers_two_web_processes_and_a_worker_killed(r, redis_url):
    import socketio

    workdir = Path(tempfile.mkdtemp(prefix="gm-cluster-"))
    media = workdir / "media"
    media.mkdir()
    files = []
    for i in range(2):  # distinct generated music, long enough to outlast the test
        path = media / f"station-{i}.wav"
        sf.write(path, make_music(sr=22050, seconds=240.0, seed=i, bpm=100.0 + 30 * i), 22050)
        files.append(str(path))
    procs: list[Proc] = []
    store = None
    client = socketio.Client(reconnection=False)
    with _history_url() as history:
        try:
            hist = ["--history-url", history] if history else []
            workers = {w: Proc(w, ["worker", "--redis", redis_url, "--capacity", "2", "--worker-id", w, *hist],
                               workdir) for w in ("w1", "w2")}
            ports = [free_port(), free_port()]
            webs = [Proc(f"web{i}", ["serve", "--redis", redis_url, "--port", str(port), "--media-dir", str(media),
                                     "--upload-dir", str(workdir / f"uploads{i}"), *hist], workdir)
                    for i, port in enumerate(ports)]
            procs += [*workers.values(), *webs]
            url_a, url_b = (f"http://127.0.0.1:{p}" for p in ports)
            for url in (url_a, url_b):
                _wait(f"{url} up", lambda url=url: _get(url + "/healthz"), 60, procs)
            # Both workers have loaded the model (TensorFlow start-up on a shared machine: generous).
            _wait("both workers' models", lambda: len([w for w in state.live_workers(r, 3).values()
                                                       if (w.get("model") or {}).get("ready")]) == 2, 400, procs)

            received: list[tuple[float, str, float]] = []  # (arrival, source, stream time)
            client.on("prediction", lambda p: received.append((time.monotonic(), p["source"], p["t"])))
            client.connect(url_b, wait_timeout=20)
            ids = [_post(url_a + "/api/sources", {"kind": "file", "path": f, "label": f"Station {i}"})["id"]
                   for i, f in enumerate(files)]

            def owners():
                o = leases.owners(r, ids)
                return o if all(o.values()) else None

            def both_predicting(since=0.0):
                return {s for t, s, _ in list(received) if t > since} >= set(ids)

            _wait("predictions from both sources on web B", both_predicting, 60, procs)
            owned = owners()
            assert set(owned.values()) == {"w1", "w2"}, f"sources not spread over both workers: {owned}"
            listed = {s["id"]: s for s in _get(url_b + "/api/sources")["sources"]}
            assert {listed[i]["worker"] for i in ids} == {"w1", "w2"}
            assert all(listed[i]["state"] == "running" for i in ids)

            victim_source = ids[0]
            if history:  # let the victim's first windows reach the shared history before it dies
                from server.sinks.history import open_store

                store = open_store(history)
                _wait("the victim's rows in the history",
                      lambda: len(store.windows(victim_source, t_from=time.time() - 600)) >= 3, 30, procs)
            victim = workers[owned[victim_source]]
            survivor = "w2" if victim.name == "w1" else "w1"
            victim.p.kill()  # SIGKILL: no goodbye, its leases must lapse
            killed = time.monotonic()
            victim.p.wait(10)
            procs.remove(victim)
            # The survivor starts the source afresh: its stream time begins again near 0. Events the
            # victim sent just before dying may still arrive after the kill; they count as "before".
            t_killed = max(st for t, s, st in list(received) if s == victim_source and t <= killed)

            def resumed():
                return [t for t, s, st in list(received) if s == victim_source and t > killed and st < t_killed]

            after = _wait("the killed worker's source to resume", resumed, 60, procs)[0]
            gap = after - max(t for t, s, st in list(received) if s == victim_source and t < after)
            print(f"takeover: last prediction before the kill → first after: {gap:.2f} s")
            assert gap < 10.0, f"predictions of {victim_source} stopped for {gap:.1f} s"
            assert leases.owners(r, [victim_source])[victim_source] == survivor
            _wait("the other source still predicting", lambda: both_predicting(after), 30, procs)

            if store is not None:  # the shared history shows no gap longer than the takeover
                resumed_wall = time.time() - (time.monotonic() - after)

                def walls():  # wait until the survivor's rows after the takeover are committed
                    found = [w["wall"] for w in store.windows(victim_source, t_from=time.time() - 600)]
                    return found if found and found[-1] > resumed_wall + 3 else None

                walls = _wait("history rows after the takeover", walls, 30)
                assert walls[0] < resumed_wall - gap, "the killed worker's rows are missing"
                worst = max(b - a for a, b in zip(walls, walls[1:]))
                print(f"history: {len(walls)} windows of {victim_source}, largest gap {worst:.2f} s")
                assert worst < 10.0
        finally:
            client.disconnect()
            if store is not None:
                store.close()
            for p in procs:
                p.end()


@pytest.mark.timeout(600)
def test_a_workers_rule_alert_is_posted_to_the_webhook_in_its_settings(r, redis_url, tmp_path):
    import numpy as np

    from tests.support.webhook import Receiver

    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(22050 * 30, np.float32), 22050)
    sid = registry.add(r, {"kind": "file", "path": str(quiet), "id": "quiet"})
    shared_settings.update(r, rules={sid: [{"type": "silence", "for": 2, "threshold_db": -50}]})
    receiver = Receiver()
    data = tmp_path / "data"
    data.mkdir()
    (data / "settings.json").write_text(json.dumps({"webhook": receiver.url}))
    worker = Proc("worker", ["worker", "--redis", redis_url, "--data-dir", str(data), "--fast"], tmp_path)
    try:
        _wait("the silence alert at the webhook", lambda: [b for b in receiver.bodies if b.get("source") == sid],
              400, [worker])  # TensorFlow start-up on a shared machine: generous
        alert = receiver.bodies[0]
        assert alert["type"] == "silence" and alert["state"] == "firing" and alert["rule"] == 0, alert
    finally:
        worker.end()
        receiver.close()
