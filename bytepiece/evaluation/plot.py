"""The evaluation plot: compression, mid-token share, next-character match and log-loss against
vocabulary size, one line per strategy and LM (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

from ..errors import InputError
from .report import strategies_of


def plot(res: dict, path) -> None:
    """Compression, mid-token share, next-character match and log-loss per strategy against
    vocabulary size (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib; install it with pip install 'bytepiece-tk[plot]' "
                         "(or pip install matplotlib)") from None
    toks = sorted(res["tokenizers"], key=lambda t: t["vocab_size"])
    xs = [t["vocab_size"] for t in toks]
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    ax = axes[0, 0]
    for h in res["heldout"]:
        ax.plot(xs, [t["heldout"][h["name"]]["compression"]["bytes_per_token"] for t in toks], "o-", label=h["name"])
    ax.set_title("compression")
    ax.set_ylabel("UTF-8 bytes per token")
    ax.legend()
    ax = axes[0, 1]
    ax.plot(xs, [t["pooled"]["continuation"]["mid_token_fraction"] for t in toks], "o-", color="k")
    ax.set_title("cuts that fall inside a token")
    ax.set_ylabel("fraction of cuts")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric, title in ((axes[1, 0], "next_char", "next-character exact match, all cuts"),
                              (axes[1, 1], "logloss_bits", "log-loss of the next character (bits)")):
        for k, s in enumerate(strategies_of(res)):
            for lm, style in (("det", "o-"), ("sampled", "s--"), ("transformer-det", "^:"),
                              ("transformer-sampled", "v-.")):
                ys = [t["pooled"]["continuation"]["conditions"].get(f"{s}/{lm}", {}).get("all", {}).get(metric)
                      for t in toks]
                if any(y is not None for y in ys):
                    ax.plot(xs, [float("nan") if y is None else y for y in ys], style, color=colors[k % len(colors)],
                            label=f"{s}, {lm} LM")
        ax.set_title(title)
    handles, labels = axes[1, 0].get_legend_handles_labels()
    # the transformer's labels are long: fewer columns, and room below the plots for every row
    ncol = 6 if max((len(x) for x in labels), default=0) <= 26 else 4
    rows = -(-len(labels) // ncol)
    fig.set_size_inches(12, 8 + 0.2 * rows)
    legend_room = (0.02 + 0.2 * rows) / (8 + 0.2 * rows) + 0.03
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8)
    for ax in axes.flat:
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:,}" for x in xs])  # log axes label minor ticks too: "3×10³4×10³"
        ax.minorticks_off()
        ax.set_xlabel("vocabulary size")
        ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, legend_room, 1, 1))
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
