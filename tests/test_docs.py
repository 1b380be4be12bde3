"""Every fenced code block of README.md and docs/ runs, each as its own test named after its file
and line (``test_doc_block[docs/x.md:12]``); the runner itself is tested on blocks that must fail.

How blocks are run, and the files they find, is the contract in docs/CONTRIBUTING.md ("How
documentation examples are run"); tests/docrunner.py implements it. ``BYTEPIECE_DOCS_ROOT``
points the collection at another tree (the end-to-end self-test uses it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from docrunner import (
    Block,
    DocBlockFailed,
    build_assets,
    console_script,
    doc_environment,
    find_blocks,
    parse_blocks,
    run_block,
)

REPO = Path(__file__).resolve().parents[1]
ROOT = Path(os.environ.get("BYTEPIECE_DOCS_ROOT", REPO))

# The one place that could hold a documentation file back from the strict run (a file being
# rewritten); empty: every file runs.
NOT_RUN_YET: dict[str, str] = {}

BLOCKS = find_blocks(ROOT)


def _param(block: Block):
    reason = NOT_RUN_YET.get(block.source) or (f"no-run: {block.no_run}" if block.no_run else None)
    return pytest.param(block, id=block.name, marks=[pytest.mark.skip(reason=reason)] if reason else [])


@pytest.fixture(scope="session")
def doc_env() -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    if shutil.which("bytepiece", path=str(bin_dir)) is None:
        pytest.fail(f"no 'bytepiece' command in {bin_dir}: install the project first (pip install -e '.[test]')")
    return doc_environment(bin_dir)


@pytest.fixture(scope="session")
def doc_assets(tmp_path_factory) -> Path:
    """The shared files, made once per session (training my.model is the slow part)."""
    directory = tmp_path_factory.mktemp("doc-assets")
    build_assets(directory, REPO)
    return directory


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_doc_block(block: Block, doc_assets: Path, doc_env: dict[str, str], tmp_path: Path):
    work = tmp_path / "work"
    shutil.copytree(doc_assets, work)
    failure = None
    try:
        run_block(block, work, tmp_path / "scripts", env=doc_env)
    except DocBlockFailed as e:
        failure = str(e)
    if failure is not None:  # outside the except clause: the report shows the block once
        pytest.fail(failure, pytrace=False)


# -- the runner itself --------------------------------------------------------------------------

SAMPLE = textwrap.dedent("""\
    # Title

    ```python
    print("one")
    ```

    ~~~bash title="x"
    echo two
    ~~~

    ````markdown
    ```python
    not a block of its own
    ```
    ````

    1. In a list:

       ```console
       $ echo three
       three
       ```

    <!-- no-run: needs a cluster -->

    ```sh
    exit 1
    ```

    ```text
    exit 1
    ```

    ```
    no language
    ```

    ```pycon
    >>> 1 + 1
    2
    ```

    ```bash
    never closed
    """)


def test_parser_finds_fences_languages_lines_and_markers():
    blocks = parse_blocks(SAMPLE, "docs/sample.md")
    assert [(b.line, b.lang) for b in blocks] == [
        (3, "python"), (7, "bash"), (11, "markdown"), (19, "console"), (26, "sh"), (30, "text"), (34, ""),
        (38, "pycon"), (43, "bash")]
    by_line = {b.line: b for b in blocks}
    assert by_line[3].code == 'print("one")\n'
    assert by_line[11].code == '```python\nnot a block of its own\n```\n'
    assert by_line[19].code == "$ echo three\nthree\n"  # the list item's indentation is removed
    assert by_line[26].no_run == "needs a cluster" and by_line[7].no_run is None
    assert by_line[43].problem is not None and all(b.problem is None for b in blocks[:-1])
    assert [b.line for b in blocks if b.runs] == [3, 7, 19, 26, 38, 43]
    assert by_line[19].name == "docs/sample.md:19"


def test_no_run_marker_without_reason_and_only_right_before_the_fence():
    text = "<!-- no-run -->\n\n```bash\nx\n```\n<!-- no-run -->\nprose\n```bash\ny\n```\n"
    first, second = parse_blocks(text, "a.md")
    assert first.no_run == "marked <!-- no-run -->" and second.no_run is None


def test_console_script_keeps_commands_on_their_lines():
    code = "$ echo a \\\n> b\na b\n$ true\n(output)\n"
    assert console_script(code).split("\n") == ["echo a \\", "b", "", "true", "", ""]


def _run_md(text: str, tmp_path: Path, **kwargs):
    (block,) = [b for b in parse_blocks(text, "docs/t.md") if b.runs]
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return run_block(block, work, tmp_path / "scripts", env=doc_environment(), **kwargs)


@pytest.mark.parametrize(("text", "where"), [
    ("x\n\n```python\nimport sys\n\nraise SystemExit('boom')\n```\n", "boom"),
    ("```python\nvalue = 1\nassert value == 2\n```\n", 't.md", line 3'),
    ("```bash\ntrue\nfalse\necho never\n```\n", "docs: line 3 failed"),
    ("```sh\nfalse | cat\n```\n", "docs: line 2 failed"),
    ("```console\n$ echo fine\nfine\n$ ls does-not-exist\n```\n", "docs: line 4 failed"),
    ("```pycon\n>>> 1 + 1\n3\n```\n", 'File "docs/t.md", line 2'),
    ("```python\n>>> sorted('ba')\n['a', 'b']\n>>> 2 * 2\n5\n```\n", 'File "docs/t.md", line 4'),
    ("```console\nonly output, no prompt\n```\n", "needs '$ ' command lines"),
    ("```bash\nnever closed\n", "never closed"),
], ids=["python-exit", "python-assert", "bash", "sh-pipefail", "console", "pycon", "python-doctest",
        "console-without-prompt", "unclosed"])
def test_failing_blocks_fail_and_point_at_their_line(tmp_path, text, where):
    with pytest.raises(DocBlockFailed) as failure:
        _run_md(text, tmp_path)
    assert where in str(failure.value)
    assert "docs/t.md:" in str(failure.value)


def test_passing_blocks_run_in_the_work_directory_with_the_venv_first(tmp_path):
    _run_md("```python\nfrom pathlib import Path\nPath('made.txt').write_text('x')\n```\n", tmp_path)
    assert (tmp_path / "work" / "made.txt").read_text() == "x"
    assert not list((tmp_path / "work").glob("*.md")), "the script must not land among the block's files"
    result = _run_md("```bash\ncommand -v python\ncommand -v bytepiece\n```\n", tmp_path)
    bin_dir = str(Path(sys.executable).parent)
    assert [str(Path(p).parent) for p in result.stdout.split()] == [bin_dir, bin_dir]
    _run_md("```pycon\n>>> print('a   b')\na b\n>>> list(range(20))\n[0, 1, ..., 19]\n```\n", tmp_path)
    _run_md("```python\nopen('helper.py', 'w').write('X = 3')\nimport helper\nassert helper.X == 3\n```\n", tmp_path)


def test_a_block_that_hangs_is_killed_with_its_children(tmp_path):
    started = time.monotonic()
    with pytest.raises(DocBlockFailed, match="timed out after 1 s"):
        _run_md("```bash\nsleep 60 | cat\n```\n", tmp_path, timeout=1)
    assert time.monotonic() - started < 30


def test_assets_are_the_documented_set(doc_assets):
    names = sorted(p.name for p in doc_assets.iterdir())
    assert names == ["corpus.jsonl", "corpus.jsonl.gz", "corpus.txt", "default.model", "docs.txt", "heldout.txt",
                     "ids.txt", "my.model"]
    contributing = (REPO / "docs" / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in contributing for name in names), "docs/CONTRIBUTING.md must describe every asset"


def test_doc_run_reports_a_failing_block_under_its_name(tmp_path):
    """End to end through pytest: a tree whose docs hold a passing, a failing and a no-run block."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "bad.md").write_text(
        "```bash\ntest -s corpus.txt\n```\n\n```python\nraise RuntimeError('drifted')\n```\n\n"
        "<!-- no-run: needs a cluster -->\n```bash\nexit 1\n```\n", encoding="utf-8")
    env = {**os.environ, "BYTEPIECE_DOCS_ROOT": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(Path(__file__)), "-k", "test_doc_block", "-v", "-rs",
         "-p", "no:cacheprovider"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    assert "test_doc_block[docs/bad.md:1] PASSED" in out
    assert "test_doc_block[docs/bad.md:5] FAILED" in out and "RuntimeError: drifted" in out
    assert "test_doc_block[docs/bad.md:10] SKIPPED" in out and "no-run: needs a cluster" in out
