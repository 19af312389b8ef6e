"""The one CSV writer of every export: spreadsheet formulas neutralised, a safe download name.

OWASP's CSV-injection advice: a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is a live formula in Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)`` in a
campaign name). Such a cell is written with a leading apostrophe, which spreadsheets show as text
and do not evaluate. Numbers (ints, floats, Decimals) are written as numbers: a negative profit stays
``-12.50``. The file name goes through Django's ``content_disposition_header`` (quoted, with an
RFC 5987 ``filename*`` when it is not plain ASCII) after anything but letters, digits, ``_-.`` is
replaced, so no id can add a header parameter or a path.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.http import HttpResponse
from django.utils.http import content_disposition_header

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9_.-]+")


def neutralise(value: Any) -> Any:
    """A cell value safe to open in a spreadsheet (text starting like a formula gets a leading ``'``)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_filename(name: str, *, extension: str = "csv", max_length: int = 150) -> str:
    stem = _UNSAFE_FILENAME.sub("_", name).strip("._") or "export"
    return f"{stem[:max_length]}.{extension}"


def csv_response(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], *, filename: str) -> HttpResponse:
    """A ``text/csv`` attachment of ``rows`` (only ``columns``, in that order)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([neutralise(c) for c in columns])
    writer.writerows([neutralise(row.get(c)) for c in columns] for row in rows)
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=safe_filename(filename))
    return response
