"""What ``pip install`` ships: the product's packages, never the tests or their helpers."""

import tomllib
from fnmatch import fnmatchcase
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shipped(package: str) -> bool:
    """Whether setuptools' package finding (pyproject.toml) takes ``package``."""
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    return (any(fnmatchcase(package, p) for p in find.get("include", ["*"]))
            and not any(fnmatchcase(package, p) for p in find.get("exclude", [])))


def test_the_product_ships_and_the_tests_do_not():
    assert shipped("server") and shipped("server.model") and shipped("bench")
    assert not [p for p in ("tests", "tests.support") if shipped(p)]
