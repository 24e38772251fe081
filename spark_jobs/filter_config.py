"""The thresholds the curation jobs apply, in one model a run's config stores and replays.

It lives with the Spark jobs because they are what applies it, and a job run alone
(``spark-submit``) reads it from a JSON file without the pipeline present;
``etl.config.EtlConfig`` holds it as its ``filters`` section.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

# Brand and sportswear vocabulary the curated set is about (lower case, matched on word boundaries).
DEFAULT_BRAND_KEYWORDS: tuple[str, ...] = (
    "nike",
    "adidas",
    "puma",
    "reebok",
    "under armour",
    "new balance",
    "asics",
    "converse",
    "vans",
    "lululemon",
    "sneaker",
    "sneakers",
    "running shoes",
    "sportswear",
    "athletic wear",
    "tracksuit",
    "jersey",
    "hoodie",
    "leggings",
    "trainers",
    "workout",
    "fitness",
    "basketball",
    "football",
    "soccer",
    "tennis",
    "running",
    "jogging",
    "yoga",
    "gym",
    "skateboard",
    "fashion",
    "streetwear",
    "apparel",
)


class FilterConfig(BaseModel):
    """Which clips and prompts a run keeps; every bound is inclusive."""

    brand_keywords: tuple[str, ...] = DEFAULT_BRAND_KEYWORDS
    min_seconds: float = Field(2.0, ge=0)
    max_seconds: float = Field(60.0, gt=0)
    min_aesthetic: float = Field(4.5, description="OpenVid-1M aesthetic score")
    min_motion: float = Field(0.5, description="OpenVid-1M motion score")
    min_temporal_consistency: float = Field(0.9, description="OpenVid-1M temporal consistency score")
    max_prompt_toxicity: float = Field(0.2, ge=0, le=1)
    max_clips: int | None = Field(
        None, ge=1, description="cap on clips extracted per run (None: all selected)"
    )

    @field_validator("brand_keywords")
    @classmethod
    def _keywords_lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Captions are matched after normalisation to lower case, so the keywords must be too."""
        return tuple(keyword.lower().strip() for keyword in value)
