"""What ``pip install .`` puts in the wheel: every package of the source tree (a package left
out of pyproject's list works in an editable install and breaks in every real one)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    for name, folder in config["package-dir"].items():
        root = REPO / folder
        found = {".".join([name, *init.parent.relative_to(root).parts]) for init in root.rglob("__init__.py")}
        assert found <= listed, f"not in [tool.setuptools] packages: {sorted(found - listed)}"
