"""The split keeps near-duplicate captions and clips of one source video together, and stays near 70/15/15."""

from __future__ import annotations

import random
import string

import pandas as pd
import pytest

from etl.config import SplitConfig
from etl.split import SPLITS, assign_splits, leakage_groups, split_overlap, split_shares

CFG = SplitConfig()


def make_clips(seed: int, sources: int = 80, cross_links: int = 12) -> pd.DataFrame:
    """Clips of ``sources`` videos (1-5 clips each); a few clips reuse another source's caption."""
    rng = random.Random(seed)
    rows = []
    for _ in range(sources):
        source = "".join(rng.choices(string.ascii_letters + string.digits + "-_", k=11))
        for index in range(rng.randint(1, 5)):
            rows.append({"video": f"{source}_{index}.mp4", "source_video_id": source,
                         "caption_norm": f"caption {source.lower()} {index}"})  # fmt: skip
    for _ in range(cross_links):
        donor, receiver = rng.sample(range(len(rows)), 2)
        rows[receiver]["caption_norm"] = rows[donor]["caption_norm"]
    return pd.DataFrame(rows)


def assert_within_tolerance(df: pd.DataFrame, cfg: SplitConfig = CFG) -> None:
    targets = {"train": cfg.train, "val": cfg.val, "test": cfg.test}
    for name, share in split_shares(df).items():
        assert abs(share - targets[name]) <= cfg.tolerance, (name, share)


def assert_no_overlap(df: pd.DataFrame) -> None:
    overlap = split_overlap(df)
    assert all(count == 0 for pairs in overlap.values() for count in pairs.values()), overlap
    assert (df.groupby(leakage_groups(df))["split"].nunique() == 1).all()


def test_splits_are_deterministic_and_independent_of_row_order() -> None:
    clips = make_clips(seed=1)
    first = assign_splits(clips, CFG)
    again = assign_splits(clips, CFG)
    shuffled = assign_splits(clips.sample(frac=1, random_state=7), CFG)
    assert first["split"].tolist() == again["split"].tolist()
    assert first.set_index("video")["split"].equals(shuffled.set_index("video")["split"].loc[first["video"]])
    other_seed = assign_splits(clips, CFG.model_copy(update={"seed": CFG.seed + 1}))
    assert not first["split"].equals(other_seed["split"])
    assert "split" not in clips.columns  # the input is not modified


def test_proportions_within_tolerance_for_about_200_clips() -> None:
    clips = make_clips(seed=2)
    assert 150 <= len(clips) <= 300
    result = assign_splits(clips, CFG)
    assert set(result["split"]) == set(SPLITS)
    assert_within_tolerance(result)


def test_groups_chained_through_both_keys_share_one_split() -> None:
    chain = pd.DataFrame(
        [
            {"video": "AAAAAAAAAAA_0.mp4", "source_video_id": "AAAAAAAAAAA", "caption_norm": "a red sneaker"},
            {"video": "BBBBBBBBBBB_0.mp4", "source_video_id": "BBBBBBBBBBB", "caption_norm": "a red sneaker"},
            {"video": "BBBBBBBBBBB_1.mp4", "source_video_id": "BBBBBBBBBBB", "caption_norm": "a blue hoodie"},
            {"video": "CCCCCCCCCCC_0.mp4", "source_video_id": "CCCCCCCCCCC", "caption_norm": "a blue hoodie"},
        ]
    )
    clips = pd.concat([make_clips(seed=3), chain], ignore_index=True)
    result = assign_splits(clips, CFG)
    assert result.loc[result["video"].isin(chain["video"]), "split"].nunique() == 1
    assert leakage_groups(result).loc[result["video"].isin(chain["video"])].nunique() == 1
    assert_no_overlap(result)


@pytest.mark.parametrize("seed", range(12))
def test_property_no_leakage_and_balanced_for_random_sets(seed: int) -> None:
    rng = random.Random(seed)
    clips = make_clips(seed=100 + seed, sources=rng.randint(60, 110), cross_links=rng.randint(0, 20))
    cfg = CFG.model_copy(update={"seed": rng.randint(0, 10**6)})
    result = assign_splits(clips, cfg)
    assert_no_overlap(result)
    assert_within_tolerance(result, cfg)


def test_other_targets_are_respected() -> None:
    cfg = SplitConfig(train=0.8, val=0.1, test=0.1)
    assert_within_tolerance(assign_splits(make_clips(seed=4), cfg), cfg)


def test_missing_keys_link_nothing_and_empty_input_works() -> None:
    clips = pd.DataFrame(
        {"video": ["a_0.mp4", "b_0.mp4"], "source_video_id": [None, None], "caption_norm": ["", None]}
    )
    assert leakage_groups(clips).tolist() == ["a_0.mp4", "b_0.mp4"]
    empty = assign_splits(clips.iloc[:0], CFG)
    assert "split" in empty.columns and empty.empty
    with pytest.raises(KeyError, match="caption_norm"):
        assign_splits(clips.drop(columns="caption_norm"), CFG)


def test_split_overlap_reports_shared_keys() -> None:
    df = pd.DataFrame(
        {
            "video": ["x_0.mp4", "x_1.mp4", "y_0.mp4", "z_0.mp4"],
            "source_video_id": ["x", "x", "y", "z"],
            "caption_norm": ["one", "two", "two", "three"],
            "split": ["train", "val", "test", "test"],
        }
    )
    assert split_overlap(df) == {
        "caption_norm": {"train/val": 0, "train/test": 0, "val/test": 1},
        "source_video_id": {"train/val": 1, "train/test": 0, "val/test": 0},
    }
