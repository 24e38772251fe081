"""Caption cleaning, normalisation and tagging: the Python and the Spark forms agree on tricky text."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_jobs.text import (
    clean_text,
    clean_text_col,
    extract_tags,
    extract_tags_col,
    has_control_character,
    has_control_character_col,
    has_keyword,
    has_keyword_col,
    normalize_caption,
    normalize_caption_col,
    normalize_keywords,
    source_video_id,
    source_video_id_col,
)

# "adidas hoodie" in full-width letters and an ideographic space: NFKC folds them to ASCII.
FULL_WIDTH = "\uff41\uff44\uff49\uff44\uff41\uff53\u3000\uff28\uff4f\uff4f\uff44\uff49\uff45"
TRICKY = [
    "A Man, running in NIKE shoes!!",
    FULL_WIDTH,
    "Café  au\tlait\n",
    "don't—stop… now",
    "™ brand® ½",
    "under-armour tracksuit at the BEACH",
    "İstanbul ΣΊΣΥΦΟΣ",
    "emoji 😀 run_fast",
    "Ni\u200dke hood\u00adie \u202eeikooh\u202c \u2764\ufe0f",  # zero-width joiner, soft hyphen, bidi, VS16
    "nul\x00byte\x1bescape\x7fdel\x85next",  # C0 and C1 control characters
    "line one\r\nline two\n\tend\u2028",
    "\u200b\u2060\ufeff",  # nothing but format characters
    "",
    "   ",
    None,
]
VIDEOS = [
    "abcdefghijk_3.mp4",
    "abc_def-123_5.mp4",
    "Ub1V3J7Hu0I_31_0to139.mp4",
    "celebv_MbLq-HNwcfA_0.mp4",
    "dir/sub/xyz_1.mp4",
    "noindex.mp4",
    None,
]
KEYWORDS = ("nike", "under armour", "vans")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A Man, running in NIKE shoes!!", "a man running in nike shoes"),
        ("  A  man running\tin Nike shoes. ", "a man running in nike shoes"),
        (FULL_WIDTH, "adidas hoodie"),
        ("™ brand® ½", "tm brand 1 2"),
        ("...", ""),
        (None, None),
    ],
)
def test_normalize_caption(text: str | None, expected: str | None) -> None:
    assert normalize_caption(text) == expected


@pytest.mark.parametrize(
    ("text", "cleaned", "normalized"),
    [
        ("Ni\u200dke", "Nike", "nike"),  # a zero-width joiner no longer splits the word
        ("Ni\u00adke  ru\u200bnner", "Nike runner", "nike runner"),
        ("\u202eNIKE\u202c", "NIKE", "nike"),
        ("I \u2764\ufe0f Adidas", "I \u2764 Adidas", "i adidas"),  # no stray variation-selector token
        ("caption\x00with NUL", "caption with NUL", "caption with nul"),
        ("two\r\nlines\n\n", "two lines", "two lines"),
        ("\ufeff\u200d", "", ""),
        (None, None, None),
    ],
)
def test_clean_text_removes_invisible_characters_before_nfkc(
    text: str | None, cleaned: str | None, normalized: str | None
) -> None:
    assert clean_text(text) == cleaned
    assert normalize_caption(text) == normalized
    assert clean_text(cleaned) == cleaned  # cleaning twice changes nothing


def test_lookalike_captions_normalise_alike() -> None:
    plain = "A runner in Nike shoes, at the beach."
    lookalikes = [
        "a runner in NI\u200dKE shoes at the beach",
        "\uff21 runner in Nike shoes; at the beach!",  # a full-width letter
        "A run\u00adner in Nike\ufe0f shoes, at the \u200ebeach\u200f.",
    ]
    assert {normalize_caption(text) for text in lookalikes} == {normalize_caption(plain)}
    assert extract_tags(normalize_caption(lookalikes[0])) == ["brand:nike", "setting:beach"]


def test_control_characters_are_found() -> None:
    assert has_control_character("a\x00b") and has_control_character("\x9b")
    assert not has_control_character("tab\tnew\nline\r") and not has_control_character(None)


def test_keywords_match_whole_words_only() -> None:
    assert has_keyword("white vans on a skateboard", KEYWORDS)
    assert not has_keyword("caravans parked by the sea", KEYWORDS)
    assert has_keyword(normalize_caption("Under-Armour hoodie"), KEYWORDS)
    assert not has_keyword(None, KEYWORDS)
    assert normalize_keywords(["Nike", "nike ", "", "!!"]) == ("nike",)


def test_extract_tags_by_category() -> None:
    caption = normalize_caption("Nike runners: running at the beach, then yoga in the gym")
    assert extract_tags(caption) == [
        "brand:nike",
        "activity:running",
        "activity:yoga",
        "setting:beach",
        "setting:gym",
    ]
    assert extract_tags("a cat on a sofa") == []
    assert extract_tags(caption, {"brand": ["adidas"]}) == []


def test_source_video_id() -> None:
    assert [source_video_id(v) for v in VIDEOS] == [
        "abcdefghijk",
        "abc_def-123",
        "Ub1V3J7Hu0I",
        "celebv_MbLq-HNwcfA",
        "xyz",
        "noindex",
        None,
    ]


def test_spark_forms_equal_python_forms(spark: SparkSession) -> None:
    texts = spark.createDataFrame([(t,) for t in TRICKY], "text string")
    norm = normalize_caption_col("text")
    rows = texts.select(
        "text",
        clean_text_col("text").alias("clean"),
        has_control_character_col("text").alias("control"),
        norm.alias("norm"),
        extract_tags_col(norm).alias("tags"),
        has_keyword_col(norm, KEYWORDS).alias("has_keyword"),
    ).collect()
    for row in rows:
        expected = normalize_caption(row["text"])
        assert row["clean"] == clean_text(row["text"]), row["text"]
        assert row["control"] == has_control_character(row["text"]), row["text"]
        assert row["norm"] == expected, row["text"]
        assert row["tags"] == extract_tags(expected), row["text"]
        assert row["has_keyword"] == has_keyword(expected, KEYWORDS), row["text"]

    videos = spark.createDataFrame([(v,) for v in VIDEOS], "video string")
    for row in videos.select("video", source_video_id_col("video").alias("source")).collect():
        assert row["source"] == source_video_id(row["video"]), row["video"]


def test_empty_vocabulary_gives_typed_empty_arrays(spark: SparkSession) -> None:
    df = spark.createDataFrame([("nike",)], "caption_norm string")
    result = df.select(extract_tags_col(F.col("caption_norm"), {}).alias("tags"))
    assert result.dtypes == [("tags", "array<string>")]
    assert result.first()["tags"] == []
