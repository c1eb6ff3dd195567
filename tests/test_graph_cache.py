"""The model cache on real files: entries that do not load are rebuilt, an unusable cache costs one
conversion per graph and leaves nothing behind, a kept precision verdict is checked before it is
trusted. Each damaged cache is used by a fresh process (its own cache state)."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from server.model import graph_cache
from server.model.precision import compare, verdict_error

ROOT = Path(__file__).resolve().parents[1]
VARIANT = "MSD_musicnn"


def test_a_kept_verdict_is_checked_before_it_is_trusted():
    import numpy as np

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), 40).astype(np.float32)
    tags = rng.random((40, 50)).astype(np.float32)
    good = compare((probs, tags, ["music"] * 40), (probs + 0.001, tags, ["music"] * 40))
    assert good["passed"] is True and verdict_error(good) is None
    assert verdict_error({**good, "passed": "no"}) == "'passed' is 'no', not true or false"
    assert "its figures say False" in verdict_error({**good, "decided_agreement": 0.5})
    assert "its figures say True" in verdict_error({**good, "passed": False})
    assert verdict_error({**good, "max_prob_diff": "0.01"}) == "'max_prob_diff' is '0.01'"
    assert verdict_error({**good, "windows": -1}).startswith("'windows' is -1")
    assert verdict_error({**good, "agreement": 1.5}) == "'agreement' is 1.5"
    assert verdict_error({k: v for k, v in good.items() if k != "max_tag_diff"}) == "'max_tag_diff' is None"
    assert verdict_error([good]) == "not an object: list"


def _run(cache_home: str, script: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, XDG_CACHE_HOME=cache_home, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    code = "import logging; logging.basicConfig(level=logging.WARNING, format='LOG %(message)s')\n"
    r = subprocess.run([sys.executable, "-c", code + textwrap.dedent(script)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    return r


def _printed(r: subprocess.CompletedProcess, key: str) -> list[str]:
    return next(line.split()[1:] for line in r.stdout.splitlines() if line.startswith(key + " "))


def _logs(r: subprocess.CompletedProcess) -> list[str]:
    return [line[4:] for line in (r.stdout + r.stderr).splitlines() if line.startswith("LOG ")]


USE_GRAPHS = f"""
    import numpy as np
    from server.model import fast, graph_cache, quantized
    for precision in ("float", "int8", "float"):  # asked again: found, not rebuilt
        backbone = fast.FastBackbone({VARIANT!r}, threads=1, precision=precision)
        out = backbone(np.zeros((1, 187, 96), np.float32))
        assert all(np.isfinite(v).all() for v in out.values())
    print("PATHS", *graph_cache.split_model({VARIANT!r}), quantized.int8_timbral_path({VARIANT!r}))
"""


def _cache_copy(home: Path) -> dict[str, Path]:
    """A copy of this machine's cached graphs of ``VARIANT`` (converted when there are none) in ``home``."""
    parts = {"norm": ("norm", "npz"), "timbral": ("timbral", "onnx"), "rest": ("rest", "onnx")}
    before = os.environ.get("XDG_CACHE_HOME")
    try:
        os.environ["XDG_CACHE_HOME"] = str(home)
        names = {k: Path(graph_cache.cache_path(VARIANT, *v)) for k, v in parts.items()}
        from server.model import quantized

        names["int8"] = Path(graph_cache.cache_path(
            VARIANT, f"timbral-int8-q{quantized.QUANT_VERSION}-ort{quantized.ort_version()}", "onnx"))
    finally:
        if before is None:
            del os.environ["XDG_CACHE_HOME"]
        else:
            os.environ["XDG_CACHE_HOME"] = before
    mine = Path(graph_cache.cache_dir())
    for path in names.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        if (mine / path.name).is_file():
            shutil.copy(mine / path.name, path)
    return names


@pytest.mark.slow
def test_cache_entries_that_do_not_load_are_rebuilt_once(tmp_path):
    names = _cache_copy(tmp_path)
    _run(str(tmp_path), USE_GRAPHS)  # whatever was missing is converted now
    good = {k: p.read_bytes() for k, p in names.items()}
    names["int8"].write_bytes(good["int8"][: len(good["int8"]) // 2])  # cut short
    names["timbral"].write_bytes(good["timbral"][:-100])
    with open(names["norm"], "r+b") as f:  # a cut .npz
        f.truncate(len(good["norm"]) // 2)
    r = _run(str(tmp_path), USE_GRAPHS)
    logs = _logs(r)
    assert len([x for x in logs if "does not load" in x and "rebuilding" in x]) == 2, logs  # float set, int8
    assert all(p.is_file() for p in names.values())
    paths = _printed(r, "PATHS")
    assert paths == [str(names[k]) for k in ("norm", "timbral", "rest", "int8")]  # rewritten in place
    assert not list(tmp_path.glob("genre-monitor/*.part")) and not list(tmp_path.glob("genre-monitor/.*"))
    # A folder where the rest graph should be: rebuilt beside it, in this run's own folder.
    names["rest"].unlink()
    names["rest"].mkdir()
    r = _run(str(tmp_path), USE_GRAPHS)
    logs = _logs(r)
    assert [x for x in logs if "is not a file" in x and "rebuilding" in x], logs
    assert [x for x in logs if "unusable" in x], logs
    assert names["rest"].is_dir()  # left as it was: not ours to remove


@pytest.mark.slow
def test_an_unusable_cache_converts_each_graph_once_and_leaves_nothing_behind(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "genre-monitor").write_text("a file where the cache folder should be")
    stale = Path(tempfile.mkdtemp(prefix=f"{graph_cache.FALLBACK_PREFIX}999999999-"))  # a killed run's
    r = _run(str(home), USE_GRAPHS + """
    import glob, tempfile
    own = glob.glob(tempfile.gettempdir() + "/genre-monitor-cache-%d-*" % __import__("os").getpid())
    print("OWN", *own)
    """)
    logs = _logs(r)
    assert len([x for x in logs if "unusable" in x]) == 1, logs
    assert not [x for x in logs if "rebuilding" in x], logs  # converted once, then found
    own = _printed(r, "OWN")
    assert len(own) == 1 and not os.path.exists(own[0])  # removed at exit
    assert not stale.exists()
    paths = _printed(r, "PATHS")
    assert all(p.startswith(own[0]) for p in paths)
