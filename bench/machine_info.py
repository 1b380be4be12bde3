"""What machine a benchmark ran on, recorded the same way by every benchmark's JSON."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    """CPU model, cores and OS (``docs/performance.md`` reads the core count back from it)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
