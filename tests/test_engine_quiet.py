"""What the Dask engine keeps from the user: asyncio's reports of Dask's abandoned futures, and
nothing else (CI once saw 'Future exception was never retrieved ... TimeoutError' after the
one-line lost-workers error)."""

from __future__ import annotations

import asyncio
import gc
import logging

from bytepiece.engine.quiet import hide_internal_errors


def test_unread_timeouts_are_hidden_and_other_errors_kept(caplog):
    hide_internal_errors()

    async def abandon() -> None:
        loop = asyncio.get_running_loop()
        timed_out = loop.create_future()
        timed_out.set_exception(TimeoutError("Timeout"))
        other = loop.create_future()
        other.set_exception(ValueError("a real error"))
        del timed_out, other

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(abandon())
        gc.collect()
    shown = [r.getMessage() + repr(r.exc_info[1] if r.exc_info else None) for r in caplog.records]
    assert not any("TimeoutError" in m for m in shown), shown
    assert any("a real error" in m for m in shown), shown
