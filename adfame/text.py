"""Text cleaning: what a caption or a prompt is stored as, one rule for the curation and for serving.

Why in the core: the Spark jobs clean captions and curated prompts with it, and the REST API and the
workers validate marketers' prompts with it (``adfame.schemas.PromptRequest``); serving must not import
``spark_jobs``, so the one implementation lives here and ``spark_jobs.text`` builds its Spark columns
on it.

Cleaning (``clean_text``): control characters (C0 and C1, NUL included) become spaces, Unicode format
characters (category Cf: zero-width joiners and spaces, soft hyphens, bidi embeddings, overrides and
isolates, the BOM) and variation selectors are removed, runs of whitespace become one space, and no
space is left at either end. Format characters are invisible, so ``Ni\u200dke`` and ``Nike`` look
alike, and a bidi override shows text in another order than it is stored in; removing them makes
what is stored the text a reader sees.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import cache

_WHITESPACE_RUN = re.compile(r"[ \t\n\x0b\x0c\r\u2028\u2029]+")
# Variation selectors are marks (Mn), not format characters, but as invisible as them: an emoji's VS16
# would otherwise survive normalisation as a token of its own.
_VARIATION_SELECTORS = (range(0xFE00, 0xFE10), range(0xE0100, 0xE01F0), range(0x180B, 0x1810))


def _removal_table() -> dict[int, str | None]:
    """``str.translate`` table: control characters to a space, format characters and variation selectors
    to nothing. Built from this interpreter's Unicode database (a few tenths of a second), once."""
    table: dict[int, str | None] = {code: " " for code in (*range(0x00, 0x20), *range(0x7F, 0xA0))}
    table.update((code, None) for code in range(0x110000) if unicodedata.category(chr(code)) == "Cf")
    table.update((code, None) for block in _VARIATION_SELECTORS for code in block)
    return table


@cache
def text_cleaner() -> Callable[[str | None], str | None]:
    """Build :func:`clean_text` once, on first use (importing this module stays cheap).

    It is made inside this function, with its table and pattern as closure values, so that Spark
    pickles it by value: executors need the standard library only, not this package.
    """
    table = _removal_table()
    whitespace = _WHITESPACE_RUN

    def clean_text(text: str | None) -> str | None:
        """A caption or prompt as it is stored (see the module doc); None stays None."""
        if text is None:
            return None
        return whitespace.sub(" ", text.translate(table)).strip(" ")

    return clean_text


def clean_text(text: str | None) -> str | None:
    """A caption or prompt as it is stored (see the module doc); None stays None."""
    return text_cleaner()(text)
