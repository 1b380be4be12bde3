"""``bytepiece eval``: the evaluation harness (``run``) and a quick compression table (``compression``)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import err_console, fail, handle_errors, out_console

# Plain names (no numba, no numpy import at CLI start-up): kept equal to bytepiece.healing's by a test.
STRATEGIES = ("naive", "healing", "healing-d1", "healing-3", "soft", "exact")
DEFAULT_SOFT_BIAS = 3.0

eval_app = typer.Typer(
    name="eval",
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Evaluate tokenizers: compression, LM bits per byte, mid-token continuation with token healing, sampling.",
)


def parse_floats(value: str, name: str) -> list[float]:
    """``"0.01,0.1,0.5,1"`` -> floats >= 0, with a one-line error naming the bad item."""
    out = []
    for item in value.split(","):
        item = item.strip()
        try:
            x = float(item)
        except ValueError:
            raise fail(f"{name}: {item!r} is not a number (expected a comma-separated list like 0.01,0.1,0.5,1)") from None
        if not math.isfinite(x) or x < 0:
            raise fail(f"{name}: {item!r} must be a finite number >= 0")
        out.append(x)
    if not out:
        raise fail(f"{name} is empty")
    return out


def parse_strategies(value: str) -> list[str]:
    """``"naive,exact"`` -> names, with a one-line error naming an unknown or repeated one."""
    out = []
    for item in value.split(","):
        item = item.strip()
        if item not in STRATEGIES:
            raise fail(f"--strategies: unknown strategy {item!r} (choose from {', '.join(STRATEGIES)})")
        if item in out:
            raise fail(f"--strategies: {item!r} is listed twice")
        out.append(item)
    return out


def _table_console():
    """stdout console; wide when stdout is not a terminal (files, pipes) so that no number is cut."""
    import os

    from rich.console import Console

    if out_console.is_terminal or "COLUMNS" in os.environ:
        return out_console
    return Console(highlight=False, width=250)


def _check_files(paths: list[Path], what: str) -> None:
    for p in paths:
        if not p.is_file():
            raise fail(f"{what} {p}: no such file")


@handle_errors
def run(
    train: Annotated[list[Path], typer.Option("--train", "-t", help="Training text (UTF-8); repeat for several files. "
                                              "Trains the --vocab-size tokenizers and the LMs.", show_default=False)],
    heldout: Annotated[list[Path], typer.Option("--heldout", "-H", help="Held-out text file; repeat for several. A "
                                                "slice without any training line is taken from each.", show_default=False)],
    model: Annotated[Optional[list[Path]], typer.Option("--model", "-m", help="Tokenizer model file to evaluate "
                                                         "(repeatable).", show_default=False)] = None,
    vocab_size: Annotated[Optional[list[int]], typer.Option("--vocab-size", "-v", help="Train a tokenizer of this size "
                                                             "on --train (repeatable).", show_default=False)] = None,
    order: Annotated[int, typer.Option(help="Order of the token n-gram LM.")] = 4,
    cuts: Annotated[int, typer.Option(help="Continuation cut points per held-out file.")] = 2000,
    alpha_train: Annotated[float, typer.Option(help="alpha of the sampled segmentations the second LM trains on.")] = 0.1,
    passes: Annotated[int, typer.Option(help="Sampled passes over the training text for the sampled LM.")] = 1,
    alphas: Annotated[str, typer.Option(help="Comma-separated alphas for the sampling profile.")] = "0.01,0.1,0.5,1",
    seed: Annotated[int, typer.Option(help="Seed of every random choice (slices, cuts, sampling).")] = 0,
    strategies: Annotated[str, typer.Option(help="Comma-separated continuation strategies, from: "
                                            "naive, healing, healing-d1, healing-3, soft, exact.")] = ",".join(STRATEGIES),
    soft_bias: Annotated[float, typer.Option(help="Nats the soft strategy adds to the tokens that agree with the "
                                             "backed-off bytes.")] = DEFAULT_SOFT_BIAS,
    heldout_bytes: Annotated[int, typer.Option(help="Size of each held-out slice in bytes.")] = 300_000,
    lm_train_bytes: Annotated[Optional[int], typer.Option(help="Use at most this many bytes of the training text for "
                                                           "the LMs (default: all).", show_default=False)] = None,
    workers: Annotated[int, typer.Option(help="Trainer threads.")] = 2,
    refine: Annotated[bool, typer.Option("--refine", help="Train the --vocab-size tokenizers with the trainer's "
                                         "--refine stage (large sizes need it: the faithful BNLM stops growing).")] = False,
    save_models: Annotated[Optional[Path], typer.Option(help="Directory to save the trained tokenizers in.",
                                                         show_default=False)] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write every number and the configuration here.",
                                                     show_default=False)] = None,
    markdown: Annotated[Optional[Path], typer.Option("--markdown", help="Write the tables as markdown here.",
                                                     show_default=False)] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Save a PNG plot (needs matplotlib).",
                                                 show_default=False)] = None,
) -> None:
    """Run the whole experiment: compression, bits/byte, continuation (every strategy, det vs sampled LM), sampling."""
    alpha_list = parse_floats(alphas, "--alphas")
    strategy_list = parse_strategies(strategies)
    if not math.isfinite(soft_bias):
        raise fail(f"--soft-bias must be a finite number, got {soft_bias}")
    if not math.isfinite(alpha_train) or alpha_train < 0:
        raise fail(f"--alpha-train must be a finite number >= 0, got {alpha_train}")
    if not model and not vocab_size:
        raise fail("no tokenizer to evaluate; pass -m MODEL and/or --vocab-size N")
    _check_files(train, "--train")
    _check_files(heldout, "--heldout")
    _check_files(model or [], "--model")
    if plot is not None:
        _require_matplotlib()

    from bytepiece.evaluation.runner import EvalConfig, run_evaluation
    from bytepiece.atomic import atomic_write

    config = EvalConfig(train=train, heldout=heldout, models=model or [], vocab_sizes=vocab_size or [], order=order,
                        cuts=cuts, alpha_train=alpha_train, passes=passes, alphas=alpha_list, seed=seed,
                        strategies=strategy_list, soft_bias=soft_bias,
                        heldout_bytes=heldout_bytes, lm_train_bytes=lm_train_bytes, workers=workers,
                        save_models=save_models, trainer_options={"refine": True} if refine else {})
    config.validate()
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        err_console.print(f"[dim]{time.perf_counter() - t0:7.1f}s[/] {msg}", markup=True, highlight=False)

    res = run_evaluation(config, on_progress=progress)
    if json_out is not None:
        import json

        atomic_write(json_out, json.dumps(res, indent=1, ensure_ascii=False) + "\n", overwrite=True)
        err_console.print(f"wrote {json_out}")
    _render(res, markdown, plot)


def _render(res: dict, markdown: Path | None, plot: Path | None) -> None:
    from bytepiece.evaluation import report
    from bytepiece.atomic import atomic_write

    console = _table_console()
    for table in report.fit(report.heldout_table(res)):
        console.print(report.to_rich(table))
    for table in report.all_tables(res):
        console.print(report.to_rich(table))
    for line in report.summary_lines(res):
        console.print(line)
    if markdown is not None:
        atomic_write(markdown, report.markdown_report(res), overwrite=True)
        err_console.print(f"wrote {markdown}")
    if plot is not None:
        report.plot(res, plot)
        err_console.print(f"wrote {plot}")


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise fail("--plot needs matplotlib; install it with pip install 'bytepiece-tk[plot]'") from None


@handle_errors
def show(
    results: Annotated[Path, typer.Argument(help="JSON written by bytepiece eval run --json.", show_default=False)],
    markdown: Annotated[Optional[Path], typer.Option("--markdown", help="Write the tables as markdown here.",
                                                     show_default=False)] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Save a PNG plot (needs matplotlib).",
                                                 show_default=False)] = None,
) -> None:
    """Print the tables of a saved run again (and write markdown / a plot) without re-running it."""
    import json

    if not results.is_file():
        raise fail(f"{results}: no such file")
    if plot is not None:
        _require_matplotlib()
    try:
        res = json.loads(results.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise fail(f"{results} is not a JSON file ({e})") from None
    if not isinstance(res, dict) or res.get("format") != "bytepiece-eval/1":
        raise fail(f"{results} is not the JSON of bytepiece eval run --json")
    _render(res, markdown, plot)


@handle_errors
def compression(
    files: Annotated[list[Path], typer.Argument(help="Text files (UTF-8) to tokenize.", show_default=False)],
    model: Annotated[list[Path], typer.Option("--model", "-m", help="Model file: bytepiece, sentencepiece .model or HF "
                                              "tokenizer.json (repeatable).", show_default=False)],
    raw: Annotated[bool, typer.Option("--raw", help="bytepiece models: no NFC normalization.")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the numbers here.", show_default=False)] = None,
) -> None:
    """Which tokenizer compresses these files better? UTF-8 bytes and characters per token."""
    _check_files(files, "text file")
    for m in model:
        if not m.exists():
            raise fail(f"--model {m}: no such file")

    from rich.table import Table

    from bytepiece.evaluation.adapters import compression_rows, load_counting_tokenizer
    from bytepiece.evaluation.corpus import read_text

    toks = [load_counting_tokenizer(m, normalization="none" if raw else "nfc") for m in model]
    names: list[str] = []
    for f in files:  # unique column names
        name, k = f.name, 2
        while name in names:
            name, k = f"{f.name}#{k}", k + 1
        names.append(name)
    texts = [(n, read_text(f)) for n, f in zip(names, files)]
    rows = compression_rows(toks, texts)
    table = Table(title="Compression (UTF-8 bytes per token / characters per token; higher is better)",
                  title_justify="left")
    table.add_column("tokenizer", no_wrap=True)
    table.add_column("kind")
    table.add_column("vocab", justify="right")
    for n in names + (["all"] if len(names) > 1 else []):
        table.add_column(f"{n}", justify="right")
    best = {n: max(r["files"][n]["bytes_per_token"] for r in rows) for n in names}
    for r in rows:
        cells = []
        for n in names:
            f = r["files"][n]
            cell = f"{f['bytes_per_token']:.2f} / {f['chars_per_token']:.2f}"
            cells.append(f"[bold]{cell}[/]" if len(rows) > 1 and f["bytes_per_token"] == best[n] else cell)
        if len(names) > 1:
            cells.append(f"{r['all']['bytes_per_token']:.2f} / {r['all']['chars_per_token']:.2f}")
        table.add_row(r["name"], r["kind"], f"{r['vocab_size']:,}", *cells)
    notes = sorted({r["note"] for r in rows if r["note"]})
    if notes:
        table.caption = "; ".join(notes)
    _table_console().print(table)
    if json_out is not None:
        import json

        from bytepiece.atomic import atomic_write

        payload = {"files": [{"name": n, "path": str(f)} for n, f in zip(names, files)], "tokenizers": rows}
        atomic_write(json_out, json.dumps(payload, indent=1) + "\n", overwrite=True)
        err_console.print(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    eval_app.command("run")(run)
    eval_app.command("report")(show)
    eval_app.command("compression")(compression)
    app.add_typer(eval_app, name="eval")
