"""One reproducible configuration for a run of the curation pipeline (``nightly_etl``).

Every threshold the pipeline applies lives here, so a run's config can be stored
beside its snapshot and replayed. Values come from the DAG run's conf (JSON)
over these defaults.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator, model_validator

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


class SourceConfig(BaseModel):
    """Where each public data set is read from: a hub repo, a local mirror folder or an S3 prefix.

    URIs: ``hf://datasets/<owner>/<name>[@revision]``, ``file:///path`` (or a plain path),
    ``s3://bucket/prefix``.
    """

    hub_endpoint: str | None = Field(
        None, description="another hub for hf:// URIs (a mirror); default HF_ENDPOINT"
    )
    openvid: str = "hf://datasets/nkp37/OpenVid-1M"
    vidprom: str = "hf://datasets/WenhaoWang/VidProM"
    adimagenet: str = "hf://datasets/PeterBrendan/AdImageNet"
    openvid_csv: str = "data/train/OpenVid-1M.csv"
    openvid_mapping_dir: str = "video_mappings"
    vidprom_csv: str = "VidProM_unique.csv"
    adimagenet_glob: str = "data/*.parquet"


class FilterConfig(BaseModel):
    brand_keywords: tuple[str, ...] = DEFAULT_BRAND_KEYWORDS
    min_seconds: float = Field(2.0, ge=0)
    max_seconds: float = Field(60.0, gt=0)
    min_aesthetic: float = 4.5
    min_motion: float = 0.5
    min_temporal_consistency: float = 0.9
    max_prompt_toxicity: float = Field(0.2, ge=0, le=1)
    max_clips: int | None = Field(
        None, ge=1, description="cap on clips extracted per run (None: all selected)"
    )


class MediaConfig(BaseModel):
    """Target sizes. Videos keep their aspect ratio: scaled so the height is ``video_height``
    (width rounded to an even number); images are resized on the short side and centre-cropped square."""

    video_height: int = Field(720, ge=16)
    image_size: int = Field(224, ge=16)
    workers: int = Field(4, ge=1)


class SplitConfig(BaseModel):
    train: float = 0.70
    val: float = 0.15
    test: float = 0.15
    seed: int = 20260101
    tolerance: float = Field(0.05, ge=0, le=0.5, description="allowed deviation of each split's share")

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split shares must sum to 1, got {total:.4f}")
        return self


class GateConfig(BaseModel):
    max_corrupt_share: float = Field(0.10, ge=0, le=1)
    min_clips: int = Field(1, ge=0)


class EtlConfig(BaseModel):
    sources: SourceConfig = SourceConfig()
    filters: FilterConfig = FilterConfig()
    media: MediaConfig = MediaConfig()
    split: SplitConfig = SplitConfig()
    gate: GateConfig = GateConfig()

    @field_validator("filters")
    @classmethod
    def _keywords_lower(cls, value: FilterConfig) -> FilterConfig:
        return value.model_copy(
            update={"brand_keywords": tuple(k.lower().strip() for k in value.brand_keywords)}
        )
