"""Tastes score what they say, parse from their specs, and pick deterministically."""

from __future__ import annotations

import random

import numpy as np
import pytest

from inference.tastes import TasteError, parse_taste, pick, win_rate
from inference.video import decode_mp4, encode_mp4


def solid(rgb: tuple[int, int, int], frames: int = 4, size: int = 16) -> np.ndarray:
    return np.tile(np.array(rgb, dtype=np.uint8), (frames, size, size, 1))


def sliding_bar(speed: int, frames: int = 6, size: int = 32) -> np.ndarray:
    """A white bar on black that moves ``speed`` pixels a frame."""
    video = np.zeros((frames, size, size, 3), dtype=np.uint8)
    for i in range(frames):
        x = (i * speed) % (size - 4)
        video[i, :, x : x + 4] = 255
    return video


def test_rgb_taste_prefers_the_closest_mean_colour() -> None:
    red = parse_taste("rgb:255,0,0")
    assert red.score(solid((255, 0, 0))) == 0.0
    assert red.score(solid((200, 30, 30))) > red.score(solid((30, 30, 200)))
    assert red.score(solid((0, 0, 0))) == pytest.approx(-255.0)


def test_bright_taste_is_mean_luma() -> None:
    bright = parse_taste("bright")
    assert bright.score(solid((255, 255, 255))) == pytest.approx(255.0)
    assert bright.score(solid((0, 255, 0))) == pytest.approx(0.587 * 255)  # green is brighter than blue
    assert bright.score(solid((0, 255, 0))) > bright.score(solid((0, 0, 255)))


def test_motion_taste_prefers_the_livelier_video() -> None:
    motion = parse_taste("motion")
    assert motion.score(solid((90, 90, 90))) == 0.0
    assert motion.score(sliding_bar(speed=6)) > motion.score(sliding_bar(speed=1)) > 0
    assert motion.score(sliding_bar(speed=6)[:1]) == 0.0  # one frame has no motion


def test_random_taste_is_a_seeded_function_of_the_pixels() -> None:
    videos = [solid((i, 2 * i, 3 * i)) for i in range(50)]
    control, same, other = parse_taste("random"), parse_taste("random:0"), parse_taste("random:7")
    scores = [control.score(v) for v in videos]
    assert scores == [same.score(v) for v in videos]  # same seed, same scores
    assert scores == [control.score(v) for v in reversed(videos)][::-1]  # order does not matter
    assert scores != [other.score(v) for v in videos]
    assert all(0.0 <= s < 1.0 for s in scores) and len(set(scores)) == 50
    # It follows no property of the video: its ranking is unrelated to brightness.
    assert abs(np.corrcoef(scores, range(50))[0, 1]) < 0.5


def test_specs_round_trip_through_names() -> None:
    for spec in ("rgb:255,0,0", "rgb:0,128,255", "bright", "motion", "random", "random:7"):
        assert parse_taste(spec).name == spec
        assert parse_taste(parse_taste(spec).name) == parse_taste(spec)
    assert parse_taste(" RGB:1,2,3 ").name == "rgb:1,2,3"


@pytest.mark.parametrize(
    "spec", ["rgb:255,0", "rgb:256,0,0", "rgb:a,b,c", "blue", "bright:2", "random:-1", ""]
)
def test_bad_specs_are_refused_with_the_choices(spec: str) -> None:
    with pytest.raises(TasteError):
        parse_taste(spec)


def test_pick_takes_the_best_and_ties_go_to_the_lowest_index() -> None:
    red = parse_taste("rgb:255,0,0")
    candidates = [solid((0, 0, 255)), solid((250, 0, 0)), solid((250, 0, 0)), solid((0, 255, 0))]
    assert pick(red, candidates, random.Random(0)) == 1


def test_noisy_pick_is_the_best_about_p_of_the_time_and_reproducible() -> None:
    red = parse_taste("rgb:255,0,0")
    candidates = [
        solid((0, 0, 255)),
        solid((0, 255, 0)),
        solid((255, 0, 0)),
        solid((9, 9, 9)),
        solid((1, 1, 1)),
    ]
    picks = [pick(red, candidates, rng, p_best=0.6) for rng in [random.Random(42)] for _ in range(2000)]
    # best with p = 0.6, plus a random index that is the best 1 time in 5: 0.6 + 0.4 / 5 = 0.68
    assert 0.64 < picks.count(2) / len(picks) < 0.72
    assert set(picks) == {0, 1, 2, 3, 4}
    again = [pick(red, candidates, rng, p_best=0.6) for rng in [random.Random(42)] for _ in range(2000)]
    assert picks == again


def test_pick_refuses_nothing_to_pick_and_a_bad_probability() -> None:
    with pytest.raises(ValueError, match="no candidates"):
        pick(parse_taste("bright"), [], random.Random(0))
    with pytest.raises(ValueError, match="probability"):
        pick(parse_taste("bright"), [solid((1, 1, 1))], random.Random(0), p_best=1.5)


def test_a_decoded_video_keeps_its_taste() -> None:
    """Scores survive serving's H.264 round trip: the simulator judges decoded mp4s."""
    bright = parse_taste("bright")
    light, dark = solid((200, 200, 200), size=32), solid((40, 40, 40), size=32)
    decoded = [decode_mp4(encode_mp4(video, fps=8)) for video in (light, dark)]
    assert decoded[0].shape == light.shape
    assert bright.score(decoded[0]) == pytest.approx(bright.score(light), abs=2)
    assert pick(bright, decoded, random.Random(0)) == 0


def test_decode_refuses_what_is_not_a_video() -> None:
    with pytest.raises(ValueError, match="not a decodable video"):
        decode_mp4(b"not an mp4 at all")


def test_win_rate_counts_challenger_wins_and_half_ties() -> None:
    red_taste = parse_taste("rgb:255,0,0")
    red, blue = solid((255, 0, 0)), solid((0, 0, 255))
    assert win_rate(red_taste, [blue, red, red], [red, blue, red]) == pytest.approx(0.5)  # win, loss, tie
    with pytest.raises(ValueError, match="as many"):
        win_rate(red_taste, [blue], [])
