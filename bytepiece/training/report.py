"""What a training run did, as data: ``Trainer.report`` after ``train()``.

The command line prints it, benchmarks record it, and every model's ``.meta.json`` sidecar
keeps a copy (:meth:`TrainingReport.as_dict`), so a model says how it was made.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PhaseReport:
    """One phase of a run (``count n-grams``, ``prune n-grams``, ``count pieces``, ...)."""

    wall_s: float
    peak_rss_mb: float  # this process, during the phase
    spilled_bytes: int = 0
    partitions: int = 0
    worker_peak_rss_mb: dict[str, float] = field(default_factory=dict)  # Dask workers, by address


@dataclass
class TrainingReport:
    """Sizes, phases, memory and time of a training run."""

    corpus: str = ""  # the inputs as shown to users ("a.txt, b.jsonl", "3 texts")
    texts: int = 0  # lines or records read
    bytes: int = 0  # UTF-8 bytes of text after normalization
    invalid_utf8: int = 0  # sequences replaced by U+FFFD
    ngrams_kept: int = 0
    positions: int | None = None  # chunk positions counted in the n-gram pass
    ngram_table_bytes: int = 0
    pieces_counted: int = 0
    distinct_pieces: int = 0
    phases: dict[str, PhaseReport] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)  # engine, workers, memory budget, shards
    spilled_bytes: int = 0
    compile_s: float = 0.0  # kernels compiled (or loaded from numba's cache) before the phases
    refine: dict[int, dict[str, Any]] = field(default_factory=dict)  # per vocabulary size, with --refine
    notices: list[str] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        """Seconds of the phases (compiling excluded)."""
        return sum(p.wall_s for p in self.phases.values())

    @property
    def peak_rss_mb(self) -> float:
        return max((p.peak_rss_mb for p in self.phases.values()), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (what a model's sidecar keeps)."""
        data = dataclasses.asdict(self)
        data.update(total_s=round(self.total_s, 3), peak_rss_mb=round(self.peak_rss_mb, 1),
                    refine={str(k): v for k, v in self.refine.items()})
        return data
