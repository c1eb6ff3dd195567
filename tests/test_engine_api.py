"""The web tier's engine interface: the local engine and a cluster's remote engine both answer it."""

import inspect

import pytest

from server.cluster.remote_engine import RemoteEngine
from server.engine import Engine
from server.web.engine_api import EngineAPI

METHODS = sorted(name for name, value in vars(EngineAPI).items() if inspect.isfunction(value) and not name.startswith("_"))


def params(fn) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values() if p.name != "self"]


def test_the_interface_names_what_the_web_tier_calls():
    assert {"status", "start_source", "stop_source", "restart_source", "set_rules", "set_monitoring",
            "select_model", "add_sink"} <= set(METHODS)


@pytest.mark.parametrize("cls", [Engine, RemoteEngine])
@pytest.mark.parametrize("name", METHODS)
def test_both_engines_answer_every_method_as_the_interface_calls_it(cls, name):
    impl = getattr(cls, name, None)
    assert callable(impl), f"{cls.__name__} lacks {name}"
    assert params(impl) == params(getattr(EngineAPI, name)), f"{cls.__name__}.{name} takes other arguments"


def test_a_local_engine_is_an_engine_api():
    engine: EngineAPI = Engine()
    status = engine.status()
    assert set(status) == {"sources", "model"} and status["sources"] == [] and status["model"]["ready"] is False
