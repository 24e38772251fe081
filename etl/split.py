"""Leakage-free train/val/test split of the curated clips, deterministic for a given seed.

Two clips leak into each other when they share a normalised caption (near-duplicate text) or a source video
(clips cut from one upload). Those links are transitive, so clips are grouped by union-find over both keys and
each group goes to one split whole. Groups are placed largest first (ties in the order of a seeded hash of
the group key), each into the split furthest below its target share, which keeps the shares within a clip or
two of the targets even for a few hundred clips. The curated table is small, so this is plain pandas.
"""

from __future__ import annotations

import hashlib
from itertools import combinations

import pandas as pd

from etl.config import SplitConfig

SPLITS: tuple[str, ...] = ("train", "val", "test")
GROUP_KEYS: tuple[str, ...] = ("caption_norm", "source_video_id")


class _DisjointSets:
    """Union-find over row positions, with path halving and union by size."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))
        self.size = [1] * size

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, left: int, right: int) -> None:
        left, right = self.find(left), self.find(right)
        if left == right:
            return
        if self.size[left] < self.size[right]:
            left, right = right, left
        self.parent[right] = left
        self.size[left] += self.size[right]


def leakage_groups(df: pd.DataFrame) -> pd.Series:
    """A group label per row: rows linked (directly or through others) by any ``GROUP_KEYS`` value share one.

    The label is the smallest ``video`` in the group, so it does not depend on row order.
    """
    sets = _DisjointSets(len(df))
    for key in GROUP_KEYS:
        first_row: dict[str, int] = {}
        for position, value in enumerate(df[key].tolist()):
            if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
                continue  # an unknown key links nothing
            sets.union(first_row.setdefault(value, position), position)
    roots = [sets.find(position) for position in range(len(df))]
    videos = df["video"].astype(str).tolist()
    smallest: dict[int, str] = {}
    for root, video in zip(roots, videos, strict=True):
        smallest[root] = min(smallest.get(root, video), video)
    return pd.Series([smallest[root] for root in roots], index=df.index, name="group")


def _seeded_hash(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big")


def assign_splits(df: pd.DataFrame, cfg: SplitConfig) -> pd.DataFrame:
    """A copy of ``df`` with a ``split`` column in ``SPLITS``; needs ``video`` plus the ``GROUP_KEYS``."""
    missing = [column for column in ("video", *GROUP_KEYS) if column not in df.columns]
    if missing:
        raise KeyError(f"assign_splits needs columns {missing}")
    result = df.copy()
    if result.empty:
        result["split"] = pd.Series(dtype=object)
        return result
    groups = leakage_groups(result)
    sizes = groups.value_counts()
    order = sorted(sizes.index, key=lambda key: (-sizes[key], _seeded_hash(cfg.seed, key), key))
    targets = {"train": cfg.train, "val": cfg.val, "test": cfg.test}
    counts = dict.fromkeys(SPLITS, 0)
    placed = 0
    chosen: dict[str, str] = {}
    for key in order:
        placed += int(sizes[key])
        # The split with the largest shortfall once this group counts toward the total; ties: larger target.
        split = max(SPLITS, key=lambda name: (targets[name] * placed - counts[name], targets[name]))
        counts[split] += int(sizes[key])
        chosen[key] = split
    result["split"] = groups.map(chosen).astype(object)
    return result


def split_shares(df: pd.DataFrame) -> dict[str, float]:
    """Each split's share of the clips (0 for an empty table)."""
    total = len(df)
    return {name: (float((df["split"] == name).sum()) / total if total else 0.0) for name in SPLITS}


def split_overlap(df: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per key, per pair of splits, how many distinct key values occur in both; all zeros means no leakage.

    Shape: ``{"caption_norm": {"train/val": 0, "train/test": 0, "val/test": 0}, "source_video_id": {...}}``.
    """
    overlap: dict[str, dict[str, int]] = {}
    for key in GROUP_KEYS:
        values = {name: set(df.loc[df["split"] == name, key].dropna()) - {""} for name in SPLITS}
        overlap[key] = {f"{a}/{b}": len(values[a] & values[b]) for a, b in combinations(SPLITS, 2)}
    return overlap
