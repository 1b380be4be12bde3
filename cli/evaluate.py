"""``bytepiece eval``: the evaluation harness (``run``) and a quick compression table (``compression``)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from .checks import check_outputs, usage_error
from .common import handle_errors
from .messages import err_console, fail, note
from .core import Command, Group

# Plain names (no numba, no numpy import at CLI start-up): kept equal to bytepiece.continuation.healing's by a test.
STRATEGIES = ("naive", "healing", "healing-d1", "healing-3", "soft", "exact-canonical", "exact-stable", "exact-all")
DEFAULT_SOFT_BIAS = 3.0
DEFAULT_GENERIC_CUTS = 2
_DATA = "Text"
_TOKENIZERS = "Tokenizers"
_EXPERIMENT = "Experiment"
_OUTPUT = "Output"
_LM = "Transformer LM (--lm transformer)"

eval_app = typer.Typer(
    name="eval",
    cls=Group,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Evaluate tokenizers: compression, bits/byte, continuation, sampling.",
)


#: how the harness's messages name ``eval run``'s options (see ``messages.in_cli_words``)
_RUN_SUBJECTS = {"vocab size": "--vocab-size", "order": "--order", "cuts": "--cuts", "passes": "--passes",
                 "seed": "--seed", "workers": "--workers", "alphas": "--alphas"}


def parse_floats(value: str, name: str) -> list[float]:
    """``"0.01,0.1,0.5,1"`` -> floats >= 0, with a one-line error naming the bad item."""
    out = []
    for item in value.split(","):
        item = item.strip()
        try:
            x = float(item)
        except ValueError:
            raise usage_error(f"{name}: {item!r} is not a number (expected a comma-separated list like "
                              "0.01,0.1,0.5,1)") from None
        if not math.isfinite(x) or x < 0:
            raise usage_error(f"{name}: {item!r} must be a finite number >= 0")
        out.append(x)
    if not out:
        raise usage_error(f"{name} is empty")
    return out


def parse_strategies(value: str) -> list[str]:
    """``"naive,exact-stable"`` -> names, with a one-line error naming an unknown or repeated one."""
    out = []
    for item in value.split(","):
        item = item.strip()
        if item not in STRATEGIES:
            raise usage_error(f"--strategies: unknown strategy {item!r} (choose from {', '.join(STRATEGIES)})")
        if item in out:
            raise usage_error(f"--strategies: {item!r} is listed twice")
        out.append(item)
    return out


def _table_console():
    """stdout console for tables: the terminal's width (or ``COLUMNS``), long titles and notes
    wrapped; 250 columns when stdout is a file or pipe without ``COLUMNS``, so no number is cut."""
    import os
    import sys

    from rich.console import Console

    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return Console(highlight=False)
    return Console(highlight=False, width=250)


def _check_files(paths: list[Path], what: str) -> None:
    from bytepiece.errors import InputError
    from bytepiece.io.read import check_file

    for p in paths:
        try:
            check_file(p, what=what, error=InputError)
        except InputError as e:
            raise fail(str(e)) from None


def _check_has_text(paths: list[Path], option: str) -> None:
    """Before any work: a file of nothing but line breaks would give tables of zeros (or a
    held-out slice of one newline) rather than an error (the library refuses it too, later)."""
    from bytepiece.compression import check_text_file
    from bytepiece.errors import InputError

    for p in paths:
        try:
            check_text_file(p, f"{option} {p}")
        except InputError as e:
            raise fail(str(e)) from None


@handle_errors
def run(
    train: Annotated[list[Path], typer.Option("--train", "-t", metavar="FILE", help="Training text (UTF-8) for the "
                                              "tokenizers and LMs; repeatable.", show_default=False,
                                              rich_help_panel=_DATA)],
    heldout: Annotated[list[Path], typer.Option("--heldout", "-H", metavar="FILE", help="Held-out text; a slice with "
                                                "no training line is taken from each; repeatable.",
                                                show_default=False, rich_help_panel=_DATA)],
    model: Annotated[Optional[list[Path]], typer.Option("--model", "-m", metavar="MODEL", help="Model file to "
                                                         "evaluate; repeatable.", show_default=False,
                                                         rich_help_panel=_TOKENIZERS)] = None,
    vocab_size: Annotated[Optional[list[int]], typer.Option("--vocab-size", "-v", metavar="N", help="Train a "
                                                             "tokenizer of this size on --train; repeatable.",
                                                             show_default=False, rich_help_panel=_TOKENIZERS)] = None,
    refine: Annotated[bool, typer.Option("--refine", help="Train them with --refine (large sizes need it).",
                                         rich_help_panel=_TOKENIZERS)] = False,
    workers: Annotated[int, typer.Option(metavar="N", help="Trainer threads.", rich_help_panel=_TOKENIZERS)] = 2,
    save_models: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Save the trained tokenizers here.",
                                                         show_default=False, rich_help_panel=_TOKENIZERS)] = None,
    heldout_bytes: Annotated[int, typer.Option(metavar="N", help="About N bytes of each held-out slice (whole lines: a long line can take it past N).",
                                               rich_help_panel=_DATA)] = 300_000,
    lm_train_bytes: Annotated[Optional[int], typer.Option(metavar="N", help="Train the LMs on the whole lines "
                                                           "that fit in N bytes (default: all).", show_default=False,
                                                           rich_help_panel=_DATA)] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of every random choice.", rich_help_panel=_DATA)] = 0,
    order: Annotated[int, typer.Option(metavar="N", help="Order of the token n-gram LM.",
                                       rich_help_panel=_EXPERIMENT)] = 4,
    cuts: Annotated[int, typer.Option(metavar="N", help="Cut points per held-out file.",
                                      rich_help_panel=_EXPERIMENT)] = 2000,
    alpha_train: Annotated[float, typer.Option(metavar="A", help="alpha of the sampled LM's training segmentations.",
                                               rich_help_panel=_EXPERIMENT)] = 0.1,
    passes: Annotated[int, typer.Option(metavar="N", help="Sampled passes for the sampled LM.",
                                        rich_help_panel=_EXPERIMENT)] = 1,
    alphas: Annotated[str, typer.Option(metavar="A,A,...", help="alphas of the sampling profile.",
                                        rich_help_panel=_EXPERIMENT)] = "0.01,0.1,0.5,1",
    strategies: Annotated[str, typer.Option(metavar="NAME,...", help="Continuation strategies: " + ", ".join(STRATEGIES)
                                            + ".", show_default=False, rich_help_panel=_EXPERIMENT)] = ",".join(STRATEGIES),
    soft_bias: Annotated[float, typer.Option(metavar="NATS", help="Bias of the soft strategy toward agreeing tokens.",
                                             rich_help_panel=_EXPERIMENT)] = DEFAULT_SOFT_BIAS,
    generic_cuts: Annotated[int, typer.Option(metavar="N", help="Cuts per file on which the exact strategies run "
                                              "again through the generic LM path (0: none).",
                                              rich_help_panel=_EXPERIMENT)] = DEFAULT_GENERIC_CUTS,
    lm: Annotated[Optional[list[str]], typer.Option("--lm", metavar="NAME", help="LMs to run: kn (default; always "
                                                   "run) and transformer (needs the lm extra); repeatable.",
                                                   show_default=False, rich_help_panel=_LM)] = None,
    device: Annotated[str, typer.Option(metavar="DEV", help="torch device of the transformer (cpu, cuda, cuda:1, ...).",
                                        rich_help_panel=_LM)] = "cpu",
    transformer_layers: Annotated[int, typer.Option(metavar="N", help="Transformer layers.", rich_help_panel=_LM)] = 2,
    transformer_width: Annotated[int, typer.Option(metavar="N", help="Transformer width.", rich_help_panel=_LM)] = 64,
    transformer_heads: Annotated[int, typer.Option(metavar="N", help="Attention heads.", rich_help_panel=_LM)] = 4,
    transformer_context: Annotated[int, typer.Option(metavar="N", help="Positions the transformer reads (BOS "
                                                     "included).", rich_help_panel=_LM)] = 128,
    transformer_train_bytes: Annotated[int, typer.Option(metavar="N", help="Bytes of text read in training, all "
                                                         "epochs together (the same for every vocabulary).",
                                                         rich_help_panel=_LM)] = 6_000_000,
    transformer_epochs: Annotated[int, typer.Option(metavar="N", help="Epochs (a fresh sample each for the sampled "
                                                    "model).", rich_help_panel=_LM)] = 1,
    transformer_softmax_head: Annotated[int, typer.Option(metavar="N", help="Most frequent ids in the adaptive "
                                                          "softmax's first cluster (0: a full softmax).",
                                                          rich_help_panel=_LM)] = 2048,
    transformer_ngrams: Annotated[int, typer.Option(metavar="N", help="n-gram input tables: the 2- to (N+1)-grams "
                                                    "ending at each position, each seen twice in training (0: "
                                                    "none).", rich_help_panel=_LM)] = 3,
    transformer_cuts: Annotated[int, typer.Option(metavar="N", help="Cuts per file for the transformer, spread over "
                                                  "--cuts.", rich_help_panel=_LM)] = 15,
    transformer_max_states: Annotated[int, typer.Option(metavar="N", help="State cap of the transformer's exact "
                                                        "strategies.", rich_help_panel=_LM)] = 64,
    transformer_processes: Annotated[Optional[int], typer.Option(
        metavar="N", help="Transformers run at once, a process each (default: a core each on a CPU; 1 runs "
        "them here).", show_default=False, rich_help_panel=_LM)] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", metavar="PATH", help="Write every number and the "
                                                     "configuration.", show_default=False, rich_help_panel=_OUTPUT)] = None,
    markdown: Annotated[Optional[Path], typer.Option("--markdown", metavar="PATH", help="Write the tables as markdown.",
                                                     show_default=False, rich_help_panel=_OUTPUT)] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", metavar="PATH", help="Save a PNG plot (needs matplotlib).",
                                                 show_default=False, rich_help_panel=_OUTPUT)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files.",
                                        rich_help_panel=_OUTPUT)] = False,
) -> None:
    """Run the whole experiment (train LMs, cut held-out text, score every strategy)."""
    alpha_list = parse_floats(alphas, "--alphas")
    strategy_list = parse_strategies(strategies)
    if not math.isfinite(soft_bias):
        raise usage_error(f"--soft-bias must be a finite number, got {soft_bias}")
    if not math.isfinite(alpha_train) or alpha_train < 0:
        raise usage_error(f"--alpha-train must be a finite number >= 0, got {alpha_train}")
    if not model and not vocab_size:
        raise usage_error("no tokenizer to evaluate; pass -m MODEL and/or --vocab-size N")
    _check_files(train, "--train")
    _check_files(heldout, "--heldout")
    _check_has_text(train, "--train")
    _check_has_text(heldout, "--heldout")
    _check_files(model or [], "--model")
    if plot is not None:
        _require_matplotlib()

    from bytepiece.io.atomic import atomic_write
    from bytepiece.errors import InputError
    from bytepiece.evaluation.runner import EvalConfig, run_evaluation

    config = EvalConfig(train=train, heldout=heldout, models=model or [], vocab_sizes=vocab_size or [], order=order,
                        cuts=cuts, alpha_train=alpha_train, passes=passes, alphas=alpha_list, seed=seed,
                        strategies=strategy_list, soft_bias=soft_bias, generic_cuts=generic_cuts,
                        heldout_bytes=heldout_bytes, lm_train_bytes=lm_train_bytes, workers=workers,
                        save_models=save_models, trainer_options={"refine": True} if refine else {},
                        lms=["kn", *(x for x in lm or [] if x != "kn")], transformer_cuts=transformer_cuts,
                        transformer_max_states=transformer_max_states, transformer_processes=transformer_processes,
                        transformer={"device": device, "layers": transformer_layers, "width": transformer_width,
                                     "heads": transformer_heads, "context": transformer_context,
                                     "train_bytes": transformer_train_bytes, "epochs": transformer_epochs,
                                     "softmax_head": transformer_softmax_head, "ngrams": transformer_ngrams})
    try:
        config.validate()
    except InputError as e:
        raise usage_error(str(e), _RUN_SUBJECTS | {f"transformer {name}": f"--transformer-{name.replace('_', '-')}"
                                                   for name in config.transformer}) from None
    saved = [p for p in config.saved_model_paths() if p.parent.is_dir()]  # a new directory holds nothing yet
    check_outputs([p for p in (json_out, markdown, plot) if p is not None] + saved, force)
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        from rich.markup import escape

        err_console.print(f"[dim]{time.perf_counter() - t0:7.1f}s[/] {escape(msg)}", markup=True, highlight=False)

    res = run_evaluation(config, on_progress=progress)
    if json_out is not None:
        import json

        atomic_write(json_out, json.dumps(res, indent=1, ensure_ascii=False) + "\n", overwrite=True)
        err_console.print(f"wrote {json_out}", markup=False, highlight=False)
    _render(res, markdown, plot)


def _render(res: dict, markdown: Path | None, plot: Path | None) -> None:
    from bytepiece.evaluation import report
    from bytepiece.evaluation.plot import plot as plot_results
    from bytepiece.io.atomic import atomic_write

    console = _table_console()
    for table in report.fit(report.heldout_table(res), console.width, aligned=True):
        console.print(report.to_rich(table))
    for table in report.all_tables(res, width=console.width, aligned=True):
        console.print(report.to_rich(table))
    for line in report.summary_lines(res):
        console.print(line, markup=False)
    for line in report.vocabulary_notes(res):
        note(line)
    if markdown is not None:
        atomic_write(markdown, report.markdown_report(res), overwrite=True)
        err_console.print(f"wrote {markdown}", markup=False, highlight=False)
    if plot is not None:
        plot_results(res, plot)
        err_console.print(f"wrote {plot}", markup=False, highlight=False)


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise fail("--plot needs matplotlib; install it with: pip install 'bytepiece-tk[plot]'") from None


@handle_errors
def show(
    results: Annotated[Path, typer.Argument(metavar="RESULTS", help="JSON written by bytepiece eval run --json.",
                                            show_default=False)],
    markdown: Annotated[Optional[Path], typer.Option("--markdown", metavar="PATH", help="Write the tables as "
                                                     "markdown.", show_default=False)] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", metavar="PATH", help="Save a PNG plot (needs matplotlib).",
                                                 show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")] = False,
) -> None:
    """Print the tables of a saved run again (and markdown or a plot)."""

    from bytepiece.evaluation.report import load_results

    _check_files([results], "results file")
    if plot is not None:
        _require_matplotlib()
    check_outputs([p for p in (markdown, plot) if p is not None], force)
    _render(load_results(results), markdown, plot)


@handle_errors
def compression(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Text files (UTF-8) to tokenize.",
                                                show_default=False)],
    model: Annotated[list[Path], typer.Option("--model", "-m", metavar="MODEL", help="bytepiece, sentencepiece "
                                              ".model or HF tokenizer.json; repeatable.", show_default=False)],
    raw: Annotated[bool, typer.Option("--raw", help="bytepiece models: no NFC normalization.")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", metavar="PATH", help="Write the numbers here.",
                                                     show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --json file.")] = False,
) -> None:
    """Compare tokenizers' compression (bytes and characters per token)."""
    _check_files(files, "text file")
    _check_files([m for m in model if not m.is_dir()], "model")
    if json_out is not None:
        check_outputs([json_out], force)

    from rich.markup import escape
    from rich.table import Table

    from bytepiece.evaluation.adapters import compression_report

    report = compression_report(files, model, normalization="none" if raw else "nfc")
    names = [f["name"] for f in report["files"]]
    rows = report["tokenizers"]
    table = Table(title="Compression (UTF-8 bytes per token / characters per token; higher is better)",
                  title_justify="left")
    table.add_column("tokenizer", no_wrap=True)
    table.add_column("kind")
    table.add_column("vocab", justify="right")
    for n in names + (["all"] if len(names) > 1 else []):
        table.add_column(escape(n), justify="right")
    best = {n: max(r["files"][n]["bytes_per_token"] for r in rows) for n in names}
    for r in rows:
        cells = []
        for n in names:
            f = r["files"][n]
            cell = f"{f['bytes_per_token']:.2f} / {f['chars_per_token']:.2f}"
            cells.append(f"[bold]{cell}[/]" if len(rows) > 1 and f["bytes_per_token"] == best[n] else cell)
        if len(names) > 1:
            cells.append(f"{r['all']['bytes_per_token']:.2f} / {r['all']['chars_per_token']:.2f}")
        table.add_row(escape(r["name"]), r["kind"], f"{r['vocab_size']:,}", *cells)
    notes = sorted({r["note"] for r in rows if r["note"]})
    if notes:
        table.caption = "; ".join(notes)
    _table_console().print(table)
    if json_out is not None:
        import json

        from bytepiece.io.atomic import atomic_write

        atomic_write(json_out, json.dumps(report, indent=1) + "\n", overwrite=True)
        err_console.print(f"wrote {json_out}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    eval_app.command("run", cls=Command)(run)
    eval_app.command("report", cls=Command)(show)
    eval_app.command("compression", cls=Command)(compression)
    app.add_typer(eval_app, name="eval")
