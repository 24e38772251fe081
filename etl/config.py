"""One reproducible configuration for a run of the curation pipeline (``nightly_etl``).

Every threshold the pipeline applies lives here (the Spark jobs' own in
``spark_jobs.filter_config``), so a run's config can be stored beside its snapshot and
replayed. Values come from the DAG run's conf (JSON) over these defaults.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from spark_jobs.filter_config import FilterConfig


class SourceConfig(BaseModel):
    """Where each public data set is read from: a hub repo, a local mirror folder or an S3 prefix.

    URIs: ``hf://datasets/<owner>/<name>[@revision]``, ``file:///path`` (or a plain path),
    ``s3://bucket/prefix``.
    """

    hub_endpoint: str | None = Field(
        None, description="another hub for hf:// URIs (a mirror); default HF_ENDPOINT"
    )
    openvid: str = Field("hf://datasets/nkp37/OpenVid-1M", description="clips: metadata CSV and zip parts")
    vidprom: str = Field("hf://datasets/WenhaoWang/VidProM", description="real text-to-video prompts")
    adimagenet: str = Field("hf://datasets/PeterBrendan/AdImageNet", description="ad images (parquet)")
    openvid_csv: str = "data/train/OpenVid-1M.csv"
    openvid_mapping_dir: str = "video_mappings"
    vidprom_csv: str = "VidProM_unique.csv"
    adimagenet_glob: str = "data/*.parquet"


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
    max_corrupt_share: float = Field(0.10, ge=0, le=1, description="of the clips read from the parts")
    max_missing_share: float = Field(
        0.05, ge=0, le=1, description="of the clips selected: in no part they are mapped to"
    )
    min_clips: int = Field(1, ge=0)


class EtlConfig(BaseModel):
    """The sections a run's conf may set (``sources``, ``filters``, ``media``, ``split``, ``gate``)."""

    sources: SourceConfig = SourceConfig()
    filters: FilterConfig = FilterConfig()
    media: MediaConfig = MediaConfig()
    split: SplitConfig = SplitConfig()
    gate: GateConfig = GateConfig()
