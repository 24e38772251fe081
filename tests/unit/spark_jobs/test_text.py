"""Caption normalisation and tagging: the Python and the Spark forms agree on tricky text."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_jobs.text import (
    extract_tags,
    extract_tags_col,
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
        norm.alias("norm"),
        extract_tags_col(norm).alias("tags"),
        has_keyword_col(norm, KEYWORDS).alias("has_keyword"),
    ).collect()
    for row in rows:
        expected = normalize_caption(row["text"])
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
