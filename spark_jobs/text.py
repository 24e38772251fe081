"""Caption cleaning and normalisation, keyword tags and source video ids, in Python and as Spark columns.

Both forms must agree exactly: Spark dedups and filters on the normalised caption, and the split (pandas)
groups clips by it, so a caption that normalised differently in the two would leak across splits. The
character-level work (cleaning and NFKC) is one Python function that Spark runs as a pandas UDF, so the two
forms cannot drift apart; what Spark does natively afterwards (lower case, one regular expression) is
checked against the Python form by the tests.

Cleaning (``clean_text``, from ``adfame.text``, the one implementation the REST API's prompts share) is
what a caption or prompt is stored as: control characters become spaces, Unicode format characters (zero-
width, bidi controls, the BOM) and variation selectors are removed, whitespace runs become one space, both
ends are trimmed. Removing the invisible characters before NFKC makes look-alikes normalise alike too.
Normalising (``normalize_caption``) the cleaned text means Unicode NFKC, lower case, every run of
characters that are not letters, marks or digits (punctuation, symbols, whitespace) turned into one space,
and no space at either end. Keywords match whole words: on the normalised text, " keyword " inside
" caption ".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from functools import cache

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

from adfame.text import clean_text, text_cleaner

# Java regex (Spark) for the characters the Python form replaces by category: not L (letter), M, N.
_SPARK_NON_WORD = r"[^\p{L}\p{M}\p{N}]+"
_KEPT_CATEGORIES = frozenset("LMN")
# C0 and C1 control characters other than the whitespace ones (tab, newline, vertical tab, form feed, CR).
# Written with escapes so that Python's re, Java (Spark) and RE2 (DuckDB) read the same character class.
CONTROL_CHARACTERS = r"[\x00-\x08\x0e-\x1f\x7f-\x9f]"
_EXTENSION = re.compile(r"\.[A-Za-z0-9]+$")
SOURCE_ID_LENGTH = 11  # YouTube ids: "{11-char id}_{clip index}.mp4"

# Tag vocabulary: category -> keywords. Tags read "category:keyword" so stats can group by category.
DEFAULT_TAG_VOCABULARY: Mapping[str, tuple[str, ...]] = {
    "brand": (
        "nike", "adidas", "puma", "reebok", "under armour", "new balance", "asics", "converse", "vans",
        "lululemon", "fila",
    ),
    "activity": (
        "running", "jogging", "sprinting", "basketball", "football", "soccer", "tennis", "yoga", "workout",
        "fitness", "training", "skateboarding", "skateboard", "cycling", "swimming", "dancing", "walking",
        "hiking", "climbing", "boxing", "stretching", "surfing",
    ),
    "setting": (
        "beach", "city", "street", "gym", "park", "stadium", "court", "studio", "track", "field", "mountain",
        "forest", "office", "kitchen", "home", "indoors", "outdoors", "night", "sunset", "snow", "rain",
        "skatepark", "pool",
    ),
}  # fmt: skip


def has_control_character(text: str | None) -> bool:
    """Whether the text holds a control character that :func:`clean_text` turns into a space."""
    return text is not None and re.search(CONTROL_CHARACTERS, text) is not None


def has_control_character_col(column: Column | str) -> Column:
    """Spark form of :func:`has_control_character` (null: false)."""
    return F.coalesce(
        (F.col(column) if isinstance(column, str) else column).rlike(CONTROL_CHARACTERS), F.lit(False)
    )


def normalize_caption(text: str | None) -> str | None:
    """The comparable form of a caption, cleaned first (see the module doc); None stays None."""
    if text is None:
        return None
    lowered = unicodedata.normalize("NFKC", clean_text(text)).lower()
    spaced = "".join(ch if unicodedata.category(ch)[0] in _KEPT_CATEGORIES else " " for ch in lowered)
    return " ".join(spaced.split())


@cache
def _text_udf(nfkc: bool) -> Callable[[Column], Column]:
    """A vectorised UDF running :func:`clean_text` (then NFKC when ``nfkc``; Spark has no NFKC function).
    Defined inside a function so that it is pickled by value, with the cleaner it closes over."""
    cleaner = text_cleaner()

    @pandas_udf("string")
    def clean(values: pd.Series) -> pd.Series:
        cleaned = values.map(cleaner, na_action="ignore")
        return cleaned.str.normalize("NFKC") if nfkc else cleaned

    return clean


def clean_text_col(column: Column | str) -> Column:
    """Spark form of :func:`clean_text`."""
    return _text_udf(False)(F.col(column) if isinstance(column, str) else column)


def normalize_caption_col(column: Column | str) -> Column:
    """Spark form of :func:`normalize_caption`."""
    nfkc = _text_udf(True)(F.col(column) if isinstance(column, str) else column)
    return F.trim(F.regexp_replace(F.lower(nfkc), _SPARK_NON_WORD, " "))


def normalize_keywords(keywords: Iterable[str]) -> tuple[str, ...]:
    """Keywords in caption form, deduplicated in order; empty ones dropped (they would match everything)."""
    seen: dict[str, None] = {}
    for keyword in keywords:
        normalized = normalize_caption(keyword)
        if normalized:
            seen.setdefault(normalized, None)
    return tuple(seen)


def has_keyword(caption_norm: str | None, keywords: Iterable[str]) -> bool:
    """Whether a normalised caption contains any keyword as whole words."""
    if not caption_norm:
        return False
    padded = f" {caption_norm} "
    return any(f" {keyword} " in padded for keyword in normalize_keywords(keywords))


def has_keyword_col(caption_norm: Column, keywords: Iterable[str]) -> Column:
    """Spark form of :func:`has_keyword` (null caption: false)."""
    padded = F.concat(F.lit(" "), caption_norm, F.lit(" "))
    condition = F.lit(False)
    for keyword in normalize_keywords(keywords):
        condition = condition | padded.contains(f" {keyword} ")
    return F.coalesce(condition, F.lit(False))


def _tag_pairs(vocabulary: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    return [
        (f"{category}:{keyword}", keyword)
        for category, words in vocabulary.items()
        for keyword in normalize_keywords(words)
    ]


def extract_tags(
    caption_norm: str | None, vocabulary: Mapping[str, Iterable[str]] = DEFAULT_TAG_VOCABULARY
) -> list[str]:
    """``category:keyword`` for each vocabulary keyword the normalised caption holds, in vocabulary order."""
    if not caption_norm:
        return []
    padded = f" {caption_norm} "
    return [tag for tag, keyword in _tag_pairs(vocabulary) if f" {keyword} " in padded]


def extract_tags_col(
    caption_norm: Column, vocabulary: Mapping[str, Iterable[str]] = DEFAULT_TAG_VOCABULARY
) -> Column:
    """Spark form of :func:`extract_tags`: an ``array<string>``, empty (never null) when nothing matches."""
    padded = F.concat(F.lit(" "), F.coalesce(caption_norm, F.lit("")), F.lit(" "))
    candidates = [
        F.when(padded.contains(f" {keyword} "), F.lit(tag)) for tag, keyword in _tag_pairs(vocabulary)
    ]
    if not candidates:
        return F.array().cast("array<string>")
    return F.array_compact(F.array(*candidates))


def source_video_id(video_name: str | None) -> str | None:
    """The source video a clip was cut from: ``abcdefghijk_3.mp4`` -> ``abcdefghijk``.

    A name with "_" right after the 11-character id keeps the id (its clip part may hold more "_");
    any other name drops its last "_" part; a name without "_" is its own source.
    """
    if video_name is None:
        return None
    stem = _EXTENSION.sub("", video_name.rsplit("/", 1)[-1])
    if len(stem) > SOURCE_ID_LENGTH and stem[SOURCE_ID_LENGTH] == "_":
        return stem[:SOURCE_ID_LENGTH]
    if "_" in stem:
        return stem.rsplit("_", 1)[0]
    return stem


def source_video_id_col(video: Column | str) -> Column:
    """Spark form of :func:`source_video_id`."""
    column = F.col(video) if isinstance(video, str) else video
    stem = F.regexp_replace(F.regexp_extract(column, r"([^/]*)$", 1), _EXTENSION.pattern, "")
    return (
        F.when(column.isNull(), F.lit(None))
        .when(
            (F.length(stem) > SOURCE_ID_LENGTH) & (F.substring(stem, SOURCE_ID_LENGTH + 1, 1) == "_"),
            F.substring(stem, 1, SOURCE_ID_LENGTH),
        )
        .when(stem.contains("_"), F.regexp_extract(stem, r"^(.*)_[^_]*$", 1))
        .otherwise(stem)
    )
