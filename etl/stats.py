"""Numbers about a curated snapshot, for the dashboard and the run's log."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

# Which tag belongs to which category; tags are produced by spark_jobs.text.
TAG_CATEGORIES = ("brand", "activity", "setting")


def snapshot_stats(
    dataset: pd.DataFrame, extraction: dict[str, Any], curation: dict[str, Any]
) -> dict[str, Any]:
    """Sizes, per-split counts, corrupt share, tag frequencies and the category distribution."""
    attempted = int(extraction.get("clips_ok", 0)) + int(extraction.get("clips_corrupt", 0))
    tags = Counter(tag for row in dataset["tags"] for tag in row)
    categories = Counter(tag.split(":", 1)[0] for tag in tags.elements() if ":" in tag)
    return {
        "clips": len(dataset),
        "bytes": int(dataset["bytes"].sum()) if "bytes" in dataset else 0,
        "seconds_of_video": round(float(dataset["seconds"].sum()), 3),
        "splits": {k: int(v) for k, v in dataset["split"].value_counts().sort_index().items()},
        "corrupt": int(extraction.get("clips_corrupt", 0)),
        "corrupt_share": round(extraction.get("clips_corrupt", 0) / attempted, 4) if attempted else 0.0,
        "tag_frequencies": dict(tags.most_common(50)),
        "category_distribution": {c: categories.get(c, 0) for c in TAG_CATEGORIES},
        "curation": curation,
    }
