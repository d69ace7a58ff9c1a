"""CSV downloads of the admin's lists: the header, then the rows a page at a time, each page
formatted in the CPU pool, so a list of any length streams without holding the event loop."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

from litestar.response import Stream

from csms.core.offload import run_cpu
from csms.csvexport import csv_text

BATCH = 1000


def csv_download(name: str, header: Sequence[str], query: Callable[[], Any],
                 format_rows: Callable[[list[dict[str, Any]]], str], *,
                 complete: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None) -> Stream:
    """An attachment ``{name}-YYYYmmdd-HHMM.csv``: ``query()`` gives a fresh, filtered and fully
    ordered Piccolo select (paged here); ``complete`` may add to a page's rows before
    ``format_rows`` turns them into CSV lines."""

    async def rows() -> AsyncIterator[str]:
        yield csv_text([list(header)])
        offset = 0
        while True:
            batch = await query().limit(BATCH).offset(offset)
            if batch:
                if complete is not None:
                    await complete(batch)
                yield await run_cpu(format_rows, batch)
            if len(batch) < BATCH:
                return
            offset += BATCH

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M")
    return Stream(rows(), media_type="text/csv; charset=utf-8",
                  headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.csv"'})
