"""What input may contain, written once: the external-id alphabet, text the database can store, JSON limits.

Every write path calls these: model field validators (so the admin, ModelForms and ModelSerializers
check them), the event row validator (API batches and ``import_events``), the JSON parser (every
string and key of every API body) and ``RequestGuardMiddleware`` (paths and query strings).
See docs/api.md, "Bad input".
"""

from __future__ import annotations

import base64
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.urls import register_converter

# External ids (campaign_id, customer_id, merchant_id, offer_id, event_id): ASCII letters and digits,
# then also "_", "-", ".", ":", "@" and "+"; 1-64 characters. The first character is a letter or
# digit, so "." and ".." (which browsers fold out of a URL) cannot be ids; no "/", "?", "#", "%",
# space or control character, so an id is always one URL path segment and one CSV field as is.
EXTERNAL_ID_MAX_LENGTH = 64
EXTERNAL_ID_ALPHABET = "A-Z a-z 0-9 _ - . : @ +"
EXTERNAL_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,63}")
EXTERNAL_ID_RULE = (
    f"1-{EXTERNAL_ID_MAX_LENGTH} characters of {EXTERNAL_ID_ALPHABET}, starting with a letter or digit"
)

validate_external_id = RegexValidator(
    regex=rf"\A{EXTERNAL_ID_RE.pattern}\Z", message=f"An external id is {EXTERNAL_ID_RULE}.", code="invalid_id"
)


class ExternalIdConverter:
    """Path converter ``<extid:...>`` of the dashboard's pages: every stored id gets a URL that resolves.

    A valid id is its own path segment. An id stored before the alphabet existed (``camp/1``,
    ``..``, one with a space, ``?`` or a control character) is written ``~`` + its UTF-8 in base64url:
    ``~`` cannot start a valid id, the token is all URL-safe, and ``to_python`` gives the view the
    stored id back. So pages never build a URL that fails for such rows while
    ``manage.py fix_external_ids`` has not replaced them yet (docs/operations.md).
    """

    regex = r"[^/]+"
    PREFIX = "~"

    def to_python(self, value: str) -> str:
        if not value.startswith(self.PREFIX):
            return value
        token = value[len(self.PREFIX):]
        try:
            return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8", "surrogatepass")
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"{value[:40]!r} is not an encoded id") from None  # the resolver answers 404

    def to_url(self, value: str) -> str:
        value = str(value)
        if EXTERNAL_ID_RE.fullmatch(value):
            return value
        return self.PREFIX + base64.urlsafe_b64encode(value.encode("utf-8", "surrogatepass")).decode().rstrip("=")


register_converter(ExternalIdConverter, "extid")


def external_id_problem(value: str) -> str | None:
    """Why ``value`` is not an external id (``None`` when it is one)."""
    if EXTERNAL_ID_RE.fullmatch(value):
        return None
    if len(value) > EXTERNAL_ID_MAX_LENGTH:
        return f"is longer than {EXTERNAL_ID_MAX_LENGTH} characters"
    return f"{value[:80]!r} is not an external id: {EXTERNAL_ID_RULE}"


# Characters no text field may hold: NUL (PostgreSQL text cannot store it), the other C0 controls
# except tab, newline and carriage return, and lone UTF-16 surrogates (not encodable as UTF-8).
_FORBIDDEN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (``None`` when it can)."""
    found = _FORBIDDEN_TEXT.search(value)
    if found is None:
        return None
    char = found.group()
    kind = "a lone UTF-16 surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
    return f"contains {kind} (U+{ord(char):04X}) at position {found.start()}"


def validate_text(value: str) -> None:
    """A model/form validator: no NUL, control characters or lone surrogates."""
    problem = text_problem(value)
    if problem:
        raise ValidationError(f"The text {problem}.", code="invalid_text")


# JSON bodies: nesting beyond this is refused before any view sees it (the deepest real body, an
# event batch in {"events": [...]} or an A/B test's variants, nests 3 deep).
MAX_JSON_DEPTH = 20
# Integers from JSON or a query string must fit the database's 64-bit columns; int columns are bounded
# by their serializer fields (``INT32_MAX``).
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


def row_number(text: str | None) -> int | None:
    """A primary key from a form or query value: ASCII digits within 64 bits, else ``None``
    (``"²".isdigit()`` is true but ``int("²")`` fails; a 30-digit key overflows the column)."""
    text = (text or "").strip()
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if number <= INT64_MAX else None


class BadJSON(ValueError):
    """A parsed JSON body that no endpoint accepts (too deep, or a string the database cannot store)."""


# In JSON text a control character or a lone surrogate can only arrive as a \u escape (strict parsing
# refuses raw control characters, UTF-8 decoding refuses surrogates), and an integer out of the 64-bit
# range has 19+ digits: one scan of the text tells whether the per-string walk is needed at all.
_SUSPECT_TEXT = re.compile(r"\\u(?:00[01]|007[fF]|[dD][89a-fA-F])|\d{19}")
# The same without the integers, for a parse that checked them itself (``JsonInts``): a search that
# starts with a literal is a fast substring scan, while ``\d{19}`` is tried at every digit of the text
# (26 ms against 0.3 ms for a 5,000-event batch, about a tenth of the API's time per batch).
_SUSPECT_ESCAPE = re.compile(r"\\u(?:00[01]|007[fF]|[dD][89a-fA-F])")


class JsonInts:
    """A ``parse_int`` for ``json.loads`` that notes whether an integer does not fit 64 bits
    (``out_of_range``), for ``check_json(..., ints_in_range=not ints.out_of_range)``."""

    def __init__(self) -> None:
        self.out_of_range = False

    def __call__(self, digits: str) -> int:
        value = int(digits)
        if not -INT64_MAX - 1 <= value <= INT64_MAX:
            self.out_of_range = True
        return value


def check_json(data: Any, text: str | None = None, *, max_depth: int = MAX_JSON_DEPTH,
               ints_in_range: bool = False) -> None:
    """Check a parsed JSON body (``text``: its source, for the fast paths). Raises ``BadJSON``.

    Depth is at most ``max_depth``; every string and key is storable text; integers fit 64 bits.
    ``ints_in_range``: the parse found every integer within 64 bits already (``JsonInts``), so the text
    is scanned only for the escapes that may hide text the database cannot store.
    """
    if text is None or not _shallow(data, text, max_depth):
        depth = _depth(data, max_depth)
        if depth > max_depth:
            raise BadJSON(f"the body is nested deeper than {max_depth} levels")
    if text is None or (_SUSPECT_ESCAPE if ints_in_range else _SUSPECT_TEXT).search(text):
        _check_leaves(data)


def _shallow(data: Any, text: str, max_depth: int) -> bool:
    """True when the text itself proves the depth small: a flat list of flat objects (an event batch)
    has one bracket pair per object plus the list's (brackets inside strings only add to the count)."""
    containers = text.count("{") + text.count("[")
    if containers <= max_depth:
        return True
    return type(data) is list and containers == len(data) + 1


def _depth(data: Any, limit: int) -> int:
    level, depth = [data], 0
    while level and depth <= limit:
        depth += 1
        below: list = []
        for node in level:
            if type(node) is dict:
                below += [v for v in node.values() if type(v) is dict or type(v) is list]
            elif type(node) is list:
                below += [v for v in node if type(v) is dict or type(v) is list]
        level = below
    return depth + (1 if level else 0)


def _check_leaves(data: Any) -> None:
    stack: list[tuple[Any, str]] = [(data, "$")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            problem = text_problem(node)
            if problem:
                raise BadJSON(f"{where}: the string {problem}")
        elif isinstance(node, int) and not isinstance(node, bool):
            if not -INT64_MAX - 1 <= node <= INT64_MAX:
                raise BadJSON(f"{where}: the integer is out of range (at most 19 digits)")
        elif isinstance(node, dict):
            for key, value in node.items():
                problem = text_problem(key)
                if problem:
                    raise BadJSON(f"{where}: a key {problem}")
                stack.append((value, f"{where}.{key[:40]}"))
        elif isinstance(node, list):
            stack.extend((value, f"{where}[{i}]") for i, value in enumerate(node))
