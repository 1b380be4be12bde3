"""One test (or a few) per defect of the reliability audit, plus their relatives.

Each test states the failure it guards against; they exercise public behaviour (CLI exit codes
and messages, files on disk, library exceptions) so they fail on the code before the fix.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import bytepiece
from bytepiece import InputError, ModelFormatError, Tokenizer, load_model
from bytepiece.model import Model
from bytepiece_cli.app import app

BASE = {bytes([b]): 1 + b % 5 for b in range(256)}


def _entries(counts: dict[bytes, object]) -> dict:
    ordered = sorted(counts, key=lambda p: (len(p), p))
    return {base64.b64encode(p).decode(): [i + 3, p.decode("utf-8", "ignore"), counts[p]] for i, p in enumerate(ordered)}


def _one_line_error(result, message: str, code: int = 1) -> None:
    """One line on stderr; exit status 1 for a failure, 2 for a command line that cannot run."""
    assert result.exit_code == code, result.output
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.fixture()
def model(tiny_model_file):
    return tiny_model_file


def _cli(*args: str, stdin: str = "", memory: int = 3 << 30) -> subprocess.CompletedProcess:
    """The CLI in a child process with a memory cap and a timeout: a regression that reads an
    endless device or blocks on a FIFO fails the test instead of eating the machine or hanging."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run([sys.executable, "-m", "bytepiece_cli.app", *args], input=stdin, capture_output=True,
                          text=True, timeout=120, preexec_fn=cap)


# -- defect 1: encode_batch in a forked child ------------------------------------------------
FORK_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from bytepiece import Tokenizer
    t = Tokenizer.from_counts({**{bytes([b]): 1 for b in range(256)}, b"he": 9, b"llo": 7})
    texts = ["hello world"] * 64
    expected = t.encode_batch(texts, num_threads=2)  # the parent's pool now exists
    pid = os.fork()
    if pid == 0:
        signal.alarm(60)  # a hung child dies instead of hanging the test
        ok = t.encode_batch(texts, num_threads=2) == expected
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status))
    import multiprocessing as mp
    with mp.get_context("fork").Pool(2) as pool:
        got = pool.map_async(t.encode_batch, [texts] * 4).get(timeout=60)
    print("pool", got == [expected] * 4)
""")


def test_encode_batch_works_in_a_forked_child():
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["child", "0", "pool", "True"]


# -- defect 2: -o never replaces devices or symlinks; existing files need --force -------------
def test_encode_output_to_device_symlink_and_existing_file(runner, model, tmp_path, device_node):
    null = device_node("null", 3)
    result = runner.invoke(app, ["encode", "-m", str(model), "-o", str(null)], input="ab\n")
    assert result.exit_code == 0, result.output
    assert stat.S_ISCHR(null.stat().st_mode)
    target = tmp_path / "ids.txt"
    target.write_text("keep")
    link = tmp_path / "link.txt"
    link.symlink_to(target.name)
    _one_line_error(runner.invoke(app, ["encode", "-m", str(model), "-o", str(link)], input="ab\n"), "--force")
    assert target.read_text() == "keep"
    result = runner.invoke(app, ["encode", "-m", str(model), "-o", str(link), "--force"], input="ab\n")
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and target.read_text().split() != ["keep"]
    _one_line_error(runner.invoke(app, ["decode", "-m", str(model), "-o", str(target)], input="100\n"), "--force")
    assert runner.invoke(app, ["decode", "-m", str(model), "-o", str(target), "--force"], input="100\n").exit_code == 0
    assert target.read_text() == "a\n"
    _one_line_error(runner.invoke(app, ["encode", "-m", str(model), "-f", "bin", "-o", str(null)], input="ab\n"),
                    "regular file", 2)
    assert stat.S_ISCHR(null.stat().st_mode) and not (tmp_path / "null.idx").exists()


def test_train_to_dev_full_streams_and_fails_cleanly(runner, tmp_path, device_node):
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc abd abe\n" * 50)
    full = device_node("full", 7)
    result = runner.invoke(app, ["train", str(corpus), "-v", "300", "-o", str(full), "--force"])
    _one_line_error(result, "No space left")
    assert stat.S_ISCHR(full.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "full"]  # no sidecar, no temporaries


# -- defect 3: read-only install, no writable cache ------------------------------------------
RO_SCRIPT = """
from bytepiece import Tokenizer
t = Tokenizer.from_counts({**{bytes([b]): 1 for b in range(256)}, b"ab": 5})
assert t.decode(t.encode("abab")) == "abab"
print("ok")
"""


@pytest.mark.slow
def test_read_only_install_without_cache_directory_still_works(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(Path(bytepiece.__file__).parent, site / "bytepiece", ignore=shutil.ignore_patterns("__pycache__"))
    for package_dir in [site / "bytepiece", *(p for p in (site / "bytepiece").iterdir() if p.is_dir())]:
        (package_dir / "__pycache__").write_text("a file, so no cache directory can be made here (even as root)")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(PYTHONPATH=str(site), HOME=str(blocker / "home"), XDG_CACHE_HOME=str(blocker / "cache"),
               PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, "-c", RO_SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
    assert done.stderr.count("no writable cache directory") == 1  # one notice, not one per kernel


# -- defect 4: counts that overflow or are not positive integers -----------------------------
@pytest.mark.parametrize(
    "counts",
    [{b"ab": 2**63 - 1}, {b"ab": 2**62, b"cd": 2**62}, {b"ab": 2**70}, {b"ab": 1e30}, {b"ab": float("inf")},
     {b"ab": float("nan")}, {b"ab": 1.5}, {b"ab": True}, {b"ab": "5"}, {b"ab": None}, {b"ab": 0}, {b"ab": -2}],
    ids=["one-2**63-1", "two-2**62", "2**70", "1e30", "inf", "nan", "1.5", "true", "string", "null", "zero", "neg"],
)
def test_bad_counts_are_model_format_errors_naming_the_entry(tmp_path, counts):
    data = _entries({**BASE, **counts})
    path = tmp_path / "m.model"
    path.write_text(json.dumps(data))  # inf and nan as JSON's Infinity / NaN
    with pytest.raises(ModelFormatError) as info:
        load_model(path)
    assert "b'ab'" in str(info.value) or "b'cd'" in str(info.value)
    with pytest.raises(ModelFormatError):
        Model.from_counts({**BASE, **counts})  # type: ignore[arg-type]


def test_count_overflow_on_the_cli_is_one_line(runner, tmp_path):
    path = tmp_path / "m.model"
    path.write_text(json.dumps(_entries({**BASE, b"ab": 2**70})))
    _one_line_error(runner.invoke(app, ["encode", "-m", str(path)], input="ab\n"), "2**63")


def test_large_valid_counts_still_encode_like_viterbi(tmp_path):
    counts = {**{bytes([b]): 1 for b in range(256)}, b"hello": 2**62, b" world": 2**61}
    tok = Tokenizer(_entries(counts))
    assert tok.encode("hello world") == [tok.piece_to_id(b"hello"), tok.piece_to_id(b" world")]
    assert Tokenizer(_entries({**BASE, b"ab": 7.0})).model.counts.max() == 7  # a whole float is a count


def test_model_instances_are_validated_too():
    bad = Model([bytes([b]) for b in range(256)], np.array([2**62] * 256, dtype=np.int64))
    with pytest.raises(ModelFormatError, match="2\\*\\*63"):
        Tokenizer(bad)


# -- defect 6: import validates before writing -----------------------------------------------
def _spm_bytes(tiny_tokenizer, **change) -> bytes:
    from bytepiece.interop import _proto as P
    from bytepiece.interop.sentencepiece import build_proto

    proto = build_proto(tiny_tokenizer, style="byte_fallback")
    piece = next(p for p in proto.pieces if p.piece == "ab")
    for key, value in change.items():
        setattr(piece, key, value)
    return P.ModelProto(proto.pieces, proto.trainer_spec, proto.normalizer_spec, proto.denormalizer_spec).serialize()


@pytest.mark.parametrize("change", [{"count": 0}, {"count": 2**63}, {"count": 2**64 - 1},
                                   {"count": None, "score": float("nan")}, {"count": None, "score": float("inf")}],
                         ids=["count-0", "count-2**63", "count-2**64-1", "nan-score", "inf-score"])
def test_import_refuses_what_could_not_be_loaded(runner, tmp_path, tiny_tokenizer, change):
    spm = tmp_path / "x.spm.model"
    spm.write_bytes(_spm_bytes(tiny_tokenizer, **change))
    out = tmp_path / "out.model"
    _one_line_error(runner.invoke(app, ["import", str(spm), "-o", str(out)]), "b'ab'")
    assert not out.exists()


# -- defect 7: check outputs first; commit sets all-or-nothing -------------------------------
def test_train_checks_the_output_location_before_training(runner, tmp_path, monkeypatch):
    from bytepiece.training.trainer import Trainer

    corpus = tmp_path / "c.txt"
    corpus.write_text("abc abd\n" * 20)

    def no_training(self, *args, **kwargs):
        raise AssertionError("trained before checking the output")

    monkeypatch.setattr(Trainer, "train", no_training)
    unwritable = "/proc" if os.geteuid() == 0 else "/"
    for output, message in ((f"{unwritable}/m.model", "not writable"), (tmp_path / "no" / "m.model", "does not exist"),
                            (tmp_path, "is a directory")):
        _one_line_error(runner.invoke(app, ["train", str(corpus), "-v", "300", "-o", str(output)]), message)


def test_failed_sidecar_keeps_the_previous_model(tmp_path):
    path = tmp_path / "m.model"
    Model.from_counts({**BASE, b"ab": 1}, {"version": 1}).save(path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    sidecar = tmp_path / "m.model.meta.json"
    sidecar.unlink()
    sidecar.mkdir()  # the sidecar cannot be written: the model must not be replaced either
    with pytest.raises(InputError):
        Model.from_counts({**BASE, b"ab": 2}, {"version": 2}).save(path)
    assert path.read_bytes() == before["m.model"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.model", "m.model.meta.json"]


def test_no_space_for_the_sidecar_keeps_the_previous_model(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True,
                      timeout=30).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        path = mount / "m.model"
        big = {"note": "x" * 150_000}  # room for a new model, not for a new sidecar beside the old set
        Model.from_counts({**BASE, b"ab": 1}, {**big, "version": 1}).save(path)
        before = path.read_bytes()
        with pytest.raises(OSError, match="No space"):
            Model.from_counts({**BASE, b"ab": 2}, {**big, "version": 2}).save(path)
        assert path.read_bytes() == before and load_model(path).metadata["version"] == 1
        assert sorted(p.name for p in mount.iterdir()) == ["m.model", "m.model.meta.json"]
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, timeout=30)


def test_several_sizes_commit_together(tmp_path, monkeypatch):
    from bytepiece.training.trainer import Trainer

    trainer = Trainer(max_vocab_size=[300, 400, 500])
    old = [Model.from_counts({**BASE, b"ab": 1}, {"version": 1}) for _ in range(3)]
    trainer.models = old
    paths = trainer.save(tmp_path / "m.model")
    trainer.models = [Model.from_counts({**BASE, b"ab": 2}, {"version": 2}) for _ in range(3)]
    (tmp_path / "m.500.model.meta.json").unlink()
    (tmp_path / "m.500.model.meta.json").mkdir()  # the last member fails
    with pytest.raises(InputError):
        trainer.save(tmp_path / "m.model", overwrite=True)
    assert [load_model(p).counts[-1] for p in paths] == [1, 1, 1]  # b"ab" still has the old count
    assert [load_model(tmp_path / f"m.{size}.model").metadata["version"] for size in (300, 400)] == [1, 1]


# -- defect 8: tracebacks and hangs on hostile model paths and inputs -------------------------
def test_deeply_nested_model_and_sidecars(runner, tmp_path):
    nested = tmp_path / "nested.model"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    _one_line_error(runner.invoke(app, ["encode", "-m", str(nested)], input="ab\n"), "nested too deeply")
    good = tmp_path / "good.model"
    Model.from_counts(BASE).save(good)
    (tmp_path / "good.model.meta.json").write_text("[" * 100_000)
    assert load_model(good).metadata == {}  # informational sidecar: ignored, not a crash
    (tmp_path / "good.model.meta.json").write_text("[1, 2]")
    assert load_model(good).metadata == {}


@pytest.mark.parametrize("args, message", [
    (["encode", "-m", "/dev/zero"], "character device"),
    (["inspect", "/dev/zero"], "character device"),
    (["decode", "-m", "{model}", "/dev/zero"], "character device"),
    (["export", "{model}", "--to", "hf", "-o", "{tmp}/t.json", "--verify", "/dev/zero"], "character device"),
    (["import", "/dev/zero", "-o", "{tmp}/m.model"], "character device"),
])
def test_endless_device_as_model_or_input(model, tmp_path, args, message):
    done = _cli(*[a.format(model=model, tmp=tmp_path) for a in args], stdin="ab\n")
    assert done.returncode == 1, done.stderr[-2000:]
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_model_path_limits(tmp_path, monkeypatch):
    import bytepiece.model as model_module

    monkeypatch.setattr(model_module, "MAX_MODEL_BYTES", 1000)
    big = tmp_path / "big.model"
    big.write_text(" " * 2000)
    with pytest.raises(ModelFormatError, match=r"is 2\.0 KiB, more than the 1,000 B a model file can be"):
        load_model(big)


FIFO_SCRIPT = """
import sys
from bytepiece import ModelFormatError, Tokenizer, load_model
for load in (load_model, Tokenizer):
    try:
        load(sys.argv[1])
    except ModelFormatError as e:
        print("refused:", e)
"""


def test_fifo_model_path_is_refused_at_once(tmp_path):
    """A FIFO nobody writes to used to block ``open`` (and then wait 30 s): a model must be a
    regular file, so it is refused before anything is read."""
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-c", FIFO_SCRIPT, str(fifo)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all("FIFO (named pipe), not a regular file" in line for line in lines), done.stdout


def test_fifo_model_path_on_the_command_line(tmp_path):
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-m", "bytepiece_cli.app", "encode", "-m", str(fifo)], input="abc\n",
                          capture_output=True, text=True, timeout=30)  # a regression hangs: TimeoutExpired
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "must be a regular file" in done.stderr


def test_pipe_model_path_is_refused(tmp_path, tiny_model_file):
    """``-m <(curl ...)`` is refused with a message that says what to do: a model is read from a
    regular file only (a pipe cannot be checked, sized or hashed before it is consumed)."""
    shell = (f"{sys.executable} -c 'import sys; from bytepiece import Tokenizer, ModelFormatError\n"
             "try:\n    Tokenizer(sys.argv[1])\nexcept ModelFormatError as e:\n    print(e)' ")
    done = subprocess.run(["bash", "-c", shell + f'<(cat "{tiny_model_file}")'], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "not a regular file" in done.stdout and "save it to disk first" in done.stdout


def test_unexpected_errors_are_one_line(runner, model, monkeypatch):
    from bytepiece.tokenizer import DocumentEncoder

    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(DocumentEncoder, "start", broken)
    _one_line_error(runner.invoke(app, ["encode", "-m", str(model)], input="ab\n"), "ZeroDivisionError")


# -- defect 9: open_bin trusts its sidecar ---------------------------------------------------
def _bin(tmp_path: Path) -> Path:
    from bytepiece.tokens.binfile import BinWriter

    path = tmp_path / "c.bin"
    with BinWriter(path, vocab_size=300) as w:
        w.write_documents([[5, 6, 7], [8], []])
    return path


@pytest.mark.parametrize(
    "field, value, message",
    [("index.file", "/etc/passwd", "plain file name"), ("index.file", "../c.bin.idx", "plain file name"),
     ("index.file", 7, "plain file name"), ("index", "c.bin.idx", "index"), ("n_tokens", "4", "n_tokens"),
     ("n_tokens", -1, "n_tokens"), ("n_documents", 2.5, "n_documents"), ("dtype", "float64", "dtype"),
     ("dtype", ["uint16"], "dtype"), ("vocab_size", 70000, "vocab_size"), ("vocab_size", True, "vocab_size"),
     ("version", "1", "version"), ("byteorder", "big", "byteorder"), ("index.entries", 99, "entries")],
)
def test_open_bin_validates_its_sidecar(tmp_path, field, value, message):
    from bytepiece.tokens.binfile import open_bin

    path = _bin(tmp_path)
    side = tmp_path / "c.bin.json"
    meta = json.loads(side.read_text())
    if "." in field:
        outer, inner = field.split(".")
        meta[outer][inner] = value
    else:
        meta[field] = value
    side.write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match=message):
        open_bin(path)


def test_open_bin_checks_offsets_and_verify_checks_ids(tmp_path):
    from bytepiece.tokens.binfile import open_bin

    path = _bin(tmp_path)
    tokens, offsets = open_bin(path, verify=True)
    assert tokens.tolist() == [5, 6, 7, 8] and offsets.tolist() == [0, 3, 4, 4]
    idx = tmp_path / "c.bin.idx"
    good_idx = idx.read_bytes()
    idx.write_bytes(np.array([0, 3, 1, 4], dtype="<i8").tobytes())
    for verify in (False, True):  # sizes and ends agree: every offset is read, with or without verify
        with pytest.raises(ModelFormatError, match="decrease at document 1"):
            open_bin(path, verify=verify)
    idx.write_bytes(np.array([1, 3, 4, 4], dtype="<i8").tobytes())
    with pytest.raises(ModelFormatError, match="offsets must run from 0"):
        open_bin(path)
    idx.write_bytes(good_idx)
    path.write_bytes(np.array([5, 6, 300, 8], dtype="<u2").tobytes())
    with pytest.raises(ModelFormatError, match="token 2 has id 300"):
        open_bin(path, verify=True)


# -- defect 10 (the CLI and atomic parts) ----------------------------------------------------
@pytest.mark.parametrize("ids", ["1_0", "+5", "-3", "0x10", "5 ٣", "1e3"])
def test_decode_accepts_only_plain_decimal_ids(runner, model, ids):
    _one_line_error(runner.invoke(app, ["decode", "-m", str(model)], input=ids + "\n"), "not a token id")


@pytest.mark.parametrize(
    "args, message",
    [(["--seed", "4"], "--seed only applies"), (["--sample", "alpha=0.1,seed=3", "--seed", "4"], "twice"),
     (["--sample", "alpha=0.1,alpha=0.2"], "alpha is given twice"), (["--sample", "0.1", "--seed", "1_0"], "--seed")],
)
def test_sampling_options_are_unambiguous(runner, model, args, message):
    _one_line_error(runner.invoke(app, ["encode", "-m", str(model), *args], input="ab\n"), message, 2)


def test_sampling_seed_from_either_place_is_the_same(runner, model):
    a = runner.invoke(app, ["encode", "-m", str(model), "--sample", "alpha=0.5,seed=3"], input="abcdabcd\n" * 20)
    b = runner.invoke(app, ["encode", "-m", str(model), "--sample", "alpha=0.5", "--seed", "3"], input="abcdabcd\n" * 20)
    assert a.exit_code == b.exit_code == 0 and a.stdout == b.stdout


def test_export_directory_does_not_overwrite_user_files(runner, model, tmp_path):
    directory = tmp_path / "hf"
    directory.mkdir()
    config = directory / "tokenizer_config.json"
    config.write_text('{"mine": true}')
    _one_line_error(runner.invoke(app, ["export", str(model), "--to", "hf", "-o", str(directory)]), "--force")
    assert config.read_text() == '{"mine": true}' and not (directory / "tokenizer.json").exists()
    assert runner.invoke(app, ["export", str(model), "--to", "hf", "-o", str(directory), "--force"]).exit_code == 0
    assert json.loads(config.read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    from bytepiece.interop.hf import export_hf

    with pytest.raises(FileExistsError):
        export_hf(Tokenizer(model), directory, overwrite=False)
