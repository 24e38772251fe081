"""Prompt clusters of a window: what marketers ask for, in groups named by their most frequent words.

Why: a drift report says *that* the prompts moved; the clusters say *where to*. Each window's prompts
are grouped by k-means on their MiniLM embeddings (k = ``drift_clusters``, fewer for a small window;
k-means++ with a fixed seed, so a window is clustered the same way every time). A cluster is named by its
three most frequent words (English stop words left out), which keeps names stable across windows for
the same kind of prompt, so the dashboard can plot each name's share over time. Each cluster also
reports the share of the reference captions nearest to its centre: a cluster with a large live share
and almost no reference share is a kind of prompt the training data does not have.

The shares are written with each drift report (``drift_reports.details.clusters``) and as metrics
``prompt_cluster.share`` (label ``cluster``: the name) in ``monitoring_metrics``, stamped with the
window's end.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from adfame.repositories.monitoring import MetricRow

CLUSTER_SHARE_METRIC = "prompt_cluster.share"
NAME_WORDS = 3
EXAMPLES = 3


@dataclass(frozen=True)
class PromptCluster:
    """One cluster of a window's prompts."""

    name: str
    size: int
    share: float  # of the window's prompts
    reference_share: float | None  # of the reference captions nearest to this centre (None: no reference)
    examples: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "share": self.share,
            "reference_share": self.reference_share,
            "examples": self.examples,
        }


def cluster_name(texts: list[str], words: int = NAME_WORDS) -> str:
    """The ``words`` most frequent words of the texts (stop words and 1-letter words left out; ties
    alphabetical), joined by spaces; "(empty)" when no word is left."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS  # scikit-learn: ~1 s, only when used

    counts = Counter(
        word
        for text in texts
        for word in "".join(c if c.isalnum() else " " for c in text.lower()).split()
        if len(word) > 1 and word not in ENGLISH_STOP_WORDS
    )
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:words]
    return " ".join(word for word, _ in top) or "(empty)"


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    distances = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1)
    return distances.argmin(axis=1)


def cluster_prompts(
    prompts: list[str], embeddings: np.ndarray, clusters: int, reference: np.ndarray | None = None
) -> list[PromptCluster]:
    """k-means clusters of the prompts, largest first (see the module docstring)."""
    from sklearn.cluster import KMeans

    if len(prompts) != len(embeddings):
        raise ValueError(f"{len(prompts)} prompts but {len(embeddings)} embeddings")
    if not prompts:
        raise ValueError("no prompts to cluster")
    k = max(1, min(clusters, len(set(prompts))))
    model = KMeans(n_clusters=k, n_init=4, random_state=0).fit(embeddings)
    labels = model.labels_
    nearest_reference = _nearest(reference, model.cluster_centers_) if reference is not None else None
    found = []
    for label in range(k):
        members = [prompt for prompt, own in zip(prompts, labels, strict=True) if own == label]
        reference_share = None
        if nearest_reference is not None:
            reference_share = float(np.mean(nearest_reference == label))
        found.append(
            PromptCluster(
                cluster_name(members),
                len(members),
                len(members) / len(prompts),
                reference_share,
                members[:EXAMPLES],
            )
        )
    return sorted(found, key=lambda cluster: (-cluster.size, cluster.name))


def cluster_share_rows(clusters: list[dict[str, Any]], window_end: datetime) -> list[MetricRow]:
    """One ``prompt_cluster.share`` row per cluster of a report, stamped with the window's end; clusters
    that share a name are summed, so a name appears once per window."""
    shares: dict[str, float] = {}
    for cluster in clusters:
        shares[cluster["name"]] = shares.get(cluster["name"], 0.0) + cluster["share"]
    return [
        MetricRow(CLUSTER_SHARE_METRIC, share, {"cluster": name}, None, window_end)
        for name, share in sorted(shares.items())
    ]
