"""The examples of docs/interop.md that need packages outside the test extras (transformers,
datasets) are marked no-run for the documentation run (tests/test_docs.py); this module runs
them, with the documentation run's files, wherever those packages are installed."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from docrunner import Block, build_assets, doc_environment, parse_blocks, run_block

REPO = Path(__file__).resolve().parents[1]
SOURCE = "docs/interop.md"
#: the reason a block gives in its <!-- no-run: ... --> marker -> the module it needs
NEEDS = {"needs transformers": "transformers", "needs the datasets package": "datasets"}
BLOCKS = [b for b in parse_blocks((REPO / SOURCE).read_text(encoding="utf-8"), SOURCE) if b.runs and b.no_run]
#: a pipeline with worker processes, or transformers' first import, can take a while
TIMEOUT_S = 300.0


def test_every_marked_block_is_run_here():
    assert {b.no_run for b in BLOCKS} == set(NEEDS), "a no-run block of docs/interop.md that nothing runs"


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    if not any(importlib.util.find_spec(module) for module in NEEDS.values()):
        pytest.skip(f"none of {', '.join(NEEDS.values())} is installed")
    directory = tmp_path_factory.mktemp("interop-doc-assets")
    build_assets(directory, REPO)
    return directory


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
def test_marked_block_runs_where_its_package_is_installed(block: Block, assets: Path, tmp_path: Path):
    pytest.importorskip(NEEDS[block.no_run or ""])
    work = tmp_path / "work"
    shutil.copytree(assets, work)
    env = doc_environment()
    # nothing from the network, nothing written under the home directory
    env.update(HF_HOME=str(tmp_path / "hf"), HF_DATASETS_CACHE=str(tmp_path / "hf" / "datasets"),
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    run_block(block, work, tmp_path / "scripts", env=env, timeout=TIMEOUT_S)
