"""One CSV writer for every back-office download (door list, exports).

`cell` neutralises a value a spreadsheet would run as a formula; `stream` turns a header and an
iterable of rows into a generator of encoded lines, so a view can hand a generator over a query
(yield_per) to a streamed response and never build the whole file in memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

DANGEROUS_FIRST = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"  # spreadsheets then read the file as UTF-8 (non-Latin names)


def cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ (or tab, CR) would start a
    formula there, so such a value gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in DANGEROUS_FIRST else text


def _line(row: Sequence[object]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow([cell(v) for v in row])
    return out.getvalue()


def stream(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """The file as a generator of lines: BOM + header first, then one line per row as it comes."""
    yield BOM + _line(header)
    for row in rows:
        yield _line(row)


def render(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The whole file as one string (small files, e.g. the door list)."""
    return "".join(stream(header, rows))
