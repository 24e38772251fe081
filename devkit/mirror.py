"""The mirror generator: a local copy of the public data sets' layout, since none can be downloaded here.

It writes, deterministically from a seed, what the pipeline reads from the Hub:

- ``nkp37/OpenVid-1M``: ``data/train/OpenVid-1M.csv`` (the real columns, spaces included), real small
  H.264 clips packed as ``OpenVid_part{N}.zip`` (stored, members under ``OpenVid_part{N}/``), one part
  byte-split into ``_partaa``/``_partab`` pieces as the real set does, and
  ``video_mappings/OpenVid_part{N}.csv``;
- ``WenhaoWang/VidProM``: ``VidProM_unique.csv`` (prompts with Detoxify-style scores);
- ``PeterBrendan/AdImageNet``: ``data/train-00000-of-00001.parquet`` (ad images as the HF ``Image`` struct).

The metadata carries what curation must cope with: near-duplicate captions (case, whitespace and
punctuation only), bad rows (missing fields, negative or unparsable numbers), clips of one source video
under several names, and deliberately corrupt clips. Only ``clips`` rows have video files, so a
million-row CSV for benchmarks is written in chunks in reasonable time and memory. The damage real dumps
carry beyond that (control and format characters, quoted line breaks, a BOM, conflicting mappings,
non-finite numbers, a truncated part) is switched on per kind: ``devkit.mirror_damage``.

Run ``python -m devkit.mirror --root DIR --rows N --clips K --parts P [--damage NAME ...]``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import random
import re
import subprocess
import tempfile
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont

from devkit.mirror_damage import ClipInfo, Damage, DamageLog, MirrorDamage
from etl.sources import LocalSource

if TYPE_CHECKING:
    from adfame.storage import ObjectStore

OPENVID_REPO = "nkp37/OpenVid-1M"
VIDPROM_REPO = "WenhaoWang/VidProM"
ADIMAGENET_REPO = "PeterBrendan/AdImageNet"

OPENVID_CSV = "data/train/OpenVid-1M.csv"
MAPPING_DIR = "video_mappings"
VIDPROM_CSV = "VidProM_unique.csv"
ADIMAGENET_PARQUET = "data/train-00000-of-00001.parquet"

OPENVID_COLUMNS = (
    "video",
    "caption",
    "aesthetic score",
    "motion score",
    "temporal consistency score",
    "camera motion",
    "frame",
    "fps",
    "seconds",
)
VIDPROM_COLUMNS = (
    "uuid",
    "prompt",
    "time",
    "toxicity",
    "obscene",
    "identity_attack",
    "insult",
    "threat",
    "sexual_explicit",
)
# The broken-column variant renames this column, as an upstream schema change would.
BROKEN_COLUMN = ("seconds", "duration")

_ZIP_DATE = (2024, 3, 1, 0, 0, 0)
_CHUNK_ROWS = 20_000
_DUPLICATE_SHARE = 0.04
_BAD_SHARE = 0.02
_GOOD_CLIP_SHARE = 0.75
_RESERVOIR = 512
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# ---- caption vocabulary ----------------------------------------------------
# "everyday" and "nature" avoid every word of spark_jobs.filter_config.DEFAULT_BRAND_KEYWORDS, so the
# brand filter has true negatives; "brand" captions name a brand, "sportswear"/"sports"/"fashion" only
# keywords.
BRANDS = (
    "Nike", "Adidas", "Puma", "Reebok", "Under Armour", "New Balance", "Asics", "Converse", "Vans",
    "Lululemon",
)  # fmt: skip
PEOPLE = (
    ("a young woman", "she"), ("a man", "he"), ("a teenage boy", "he"), ("an older man", "he"),
    ("a woman with curly hair", "she"), ("a tall man with a beard", "he"), ("a girl", "she"),
    ("a professional athlete", "she"), ("a middle-aged woman", "she"), ("a young man", "he"),
)  # fmt: skip
GROUPS = ("two friends", "a group of teenagers", "a small crowd", "a family of four", "three coworkers")
COLOURS = (
    "red", "black", "white", "bright blue", "neon green", "grey", "navy", "orange", "pink", "yellow",
    "purple", "olive", "teal", "burgundy", "cream",
)  # fmt: skip
PRODUCTS = (
    "running shoes", "sneakers", "hoodie", "tracksuit", "jersey", "leggings", "cap", "windbreaker",
    "backpack", "sports bra", "training shorts",
)  # fmt: skip
BRAND_ACTIONS = (
    "jogs along a riverside path", "sprints down an outdoor track", "laces up a pair of shoes on a bench",
    "dribbles a basketball on a street court", "stretches before a workout",
    "skateboards down a quiet street",
    "jumps over a puddle", "walks through a busy shopping street", "poses in front of a graffiti wall",
    "does push-ups on a rooftop", "runs up a long flight of stairs", "kicks a football against a wall",
)  # fmt: skip
SPORT_SETTINGS = (
    "at sunrise", "in a neon-lit city at night", "on a rainy afternoon", "in a sunlit park",
    "under stadium lights", "on a beach boardwalk", "in an urban alley", "in a modern gym",
    "on a foggy morning", "beside a harbour", "on a mountain trail", "in a quiet suburb",
)  # fmt: skip
SPORT_SCENES = (
    "a soccer match between two amateur teams", "a tennis player serving on a clay court",
    "a basketball game in an indoor arena", "a yoga class on a wooden deck", "a cyclist racing downhill",
    "a football team training on a muddy pitch", "a sprinter exploding out of the starting blocks",
    "a boxer hitting a heavy bag", "a swimmer doing laps in an outdoor pool",
    "a skateboard trick at a concrete skatepark", "a volleyball rally on the sand",
    "a marathon runner crossing the finish line",
)  # fmt: skip
FASHION_SCENES = (
    "a model walks down a runway", "a stylist adjusts a jacket on a mannequin",
    "a woman tries on clothes in a boutique", "a streetwear drop draws a queue outside a store",
    "a designer pins fabric in a studio", "a fashion photographer shoots a model against a white wall",
    "two models pose on a city crosswalk", "a man browses apparel on a shop rack",
)  # fmt: skip
GARMENTS = (
    "an oversized coat", "a silk dress", "a denim jacket", "a tailored suit", "a knitted sweater",
    "a leather jacket", "a pleated skirt", "wide trousers", "a trench coat", "a linen shirt",
)  # fmt: skip
EVERYDAY_SCENES = (
    "a woman cooks pasta in a small kitchen", "a man reads a newspaper on a train",
    "traffic moves through a busy intersection", "a cat sleeps on a windowsill",
    "a barista pours latte art into a cup", "children draw with chalk on a sidewalk",
    "an old couple shares a bench in a square", "a delivery rider waits at a red light",
    "a student types on a laptop in a library", "a dog chases a ball across a lawn",
    "a chef slices vegetables on a wooden board", "commuters step off a crowded bus",
)  # fmt: skip
NATURE_SCENES = (
    "waves crash against dark rocks", "a waterfall pours into a green pool",
    "clouds drift over a snowy mountain ridge", "a deer grazes at the edge of a forest",
    "sunlight filters through tall pine trees", "a river winds through a wide valley",
    "wind moves across a field of wheat", "a hawk circles above a canyon",
    "rain falls on a quiet lake", "fog rolls over green hills", "a butterfly rests on a flower",
    "stars turn slowly above a desert",
)  # fmt: skip
PLACES = (
    "in the late afternoon", "on a grey morning", "at dusk", "in warm golden light", "under an overcast sky",
    "in early spring", "on a cold winter day", "after a summer storm", "in soft evening light", "at midday",
)  # fmt: skip
CAMERA_PHRASES = (
    "The camera follows from the side", "The camera stays still", "The camera slowly zooms in",
    "The camera pans from left to right", "The camera tilts up gradually",
    "A handheld camera tracks the motion",
    "The camera slowly pulls back", "The shot is framed from a low angle",
)  # fmt: skip
MOODS = (
    "The scene feels energetic and motivating.", "The atmosphere is calm and relaxed.",
    "The colours are vivid and saturated.", "The lighting is soft and natural.",
    "The mood is dramatic, with strong contrast.", "Everything feels fresh and modern.",
    "The footage has a warm, nostalgic tone.", "The overall look is clean and minimal.",
)  # fmt: skip
SHOT_DETAILS = (
    "Shot in slow motion.", "Filmed with a wide-angle lens.", "Captured with a telephoto lens.",
    "Recorded in 4K resolution.", "The footage is slightly grainy.", "The depth of field is shallow.",
    "Seen from a high vantage point.", "Shot at eye level.", "The exposure is bright and airy.",
    "Shadows are long and deep.", "The colour grading leans cool.", "The colour grading leans warm.",
)  # fmt: skip
LOCATIONS = (
    "near Lisbon", "in northern Norway", "outside Tokyo", "in rural Kenya", "on the coast of Chile",
    "in the Scottish Highlands", "near Vancouver", "in southern Italy", "in the Alps", "outside Cape Town",
    "in New Zealand", "in Patagonia", "in Iceland", "near Marrakesh", "in Vermont", "in Provence",
)  # fmt: skip
CAMERA_MOTIONS = (
    "static",
    "pan_left",
    "pan_right",
    "zoom_in",
    "zoom_out",
    "tilt_up",
    "tilt_down",
    "Undetermined",
)
CATEGORY_WEIGHTS = {"brand": 18, "sportswear": 12, "sports": 15, "fashion": 12, "everyday": 28, "nature": 15}

# ---- VidProM prompt vocabulary -----------------------------------------------------
PROMPT_SUBJECTS = (
    "a cat wearing sunglasses", "an astronaut", "a red fox", "a vintage car", "a runner in Nike shoes",
    "a basketball player", "a robot barista", "a paper boat", "a dragon made of clouds",
    "a woman in an Adidas tracksuit", "a lighthouse", "a skateboarder", "a hot air balloon",
    "a tiny dinosaur",
)  # fmt: skip
PROMPT_ACTIONS = (
    "surfing a giant wave", "walking through a neon city", "dancing in the rain", "floating over the ocean",
    "running through a forest", "jumping in slow motion", "exploring a crystal cave", "racing at sunset",
    "drinking coffee on the moon", "spinning around a sneaker",
)  # fmt: skip
PROMPT_STYLES = (
    "cinematic, 4k", "anime style", "in the style of a watercolor painting", "hyperrealistic, 8k",
    "pixar style, soft lighting", "shot on 35mm film", "product commercial, studio lighting",
    "drone shot, golden hour", "claymation", "vaporwave colors",
)  # fmt: skip
TOXIC_PROMPTS = (
    "an angry man screaming insults at his stupid neighbor",
    "a furious crowd yelling that everyone is an idiot",
    "two drunk men shouting crude insults at each other", "a villain threatening to hurt a shopkeeper",
)  # fmt: skip

# ---- AdImageNet ---------------------------------------------------------------------
AD_SIZES = ((300, 250), (728, 90), (160, 600), (300, 600), (320, 50), (970, 250), (336, 280))
AD_LINES = (
    "SUMMER SALE 50% OFF", "Run further. Shop the new collection", "Free shipping on orders over $50",
    "Just dropped: spring sneakers", "Book your dream vacation today", "Sign up and save 20%",
    "New season. New gear.", "Limited time offer", "Train harder with our app", "Shop now",
    "Fresh coffee delivered daily", "Your next adventure starts here",
)  # fmt: skip


@dataclass
class MirrorSummary:
    """What one generation wrote, with the counts tests and benchmarks check against."""

    root: Path
    seed: int
    openvid_dir: Path
    vidprom_dir: Path
    adimagenet_dir: Path
    metadata_csv: Path
    rows: int
    duplicate_rows: int
    bad_rows: int
    categories: dict[str, int]
    clips: int
    clip_videos: tuple[str, ...]
    brand_clips: tuple[str, ...]
    corrupt_clips: tuple[str, ...]
    clip_parts: dict[str, int]
    parts: int
    part_files: tuple[Path, ...]
    split_parts: tuple[int, ...]
    mapping_files: tuple[Path, ...]
    prompts_csv: Path
    prompt_rows: int
    toxic_prompts: int
    bad_prompt_rows: int
    images_parquet: Path
    images: int
    broken_column: str | None = None
    bytes_written: int = 0
    damage: DamageLog = field(default_factory=DamageLog)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (paths as strings)."""

        def plain(value: object) -> object:
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, tuple | list):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return {k: plain(v) for k, v in asdict(self).items()}


def normalise_caption(caption: str) -> str:
    """Lower case, punctuation to spaces, whitespace collapsed: what makes two captions "the same" here."""
    return " ".join(re.sub(r"[^\w\s]", " ", caption.lower()).split())


# ---- captions ---------------------------------------------------------------------
# One template per category; each ``{field}`` is drawn from its vocabulary where it appears, left to
# right, so a field named twice (``{colour} and {colour}``) is drawn twice.
CAPTION_TEMPLATES = {
    "brand": (
        "In the video, {person} wearing a {colour} {brand} {product} {brand_action} {sport_setting}. "
        "{camera} as {pronoun} moves, and the {brand} logo is clearly visible. {mood}"
    ),
    "sportswear": (
        "The video shows {person} in a {colour} {product} who {brand_action} {sport_setting}. {camera}, "
        "keeping the sportswear in focus. {mood} {shot}"
    ),
    "sports": (
        "The video captures {sport_scene} {location} {sport_setting}, with players in {colour} and {colour} "
        "kits. {camera}. {mood} {shot}"
    ),
    "fashion": (
        "In this fashion clip {location}, {fashion_scene} in {garment} of {colour} {place}. "
        "{camera}. {mood} {shot}"
    ),
    "everyday": (
        "The video shows an everyday scene {location}: {everyday_scene} {place} while {group} in {colour} "
        "passes by. {camera}. {mood} {shot}"
    ),
    "nature": (
        "A nature shot {location} in which {nature_scene} {place}, with hints of {colour} in the landscape. "
        "{camera}. {mood} {shot}"
    ),
}
CAPTION_VOCABULARY: dict[str, Sequence[str]] = {
    "person": tuple(person for person, _ in PEOPLE),
    "colour": COLOURS,
    "product": PRODUCTS,
    "brand_action": BRAND_ACTIONS,
    "sport_setting": SPORT_SETTINGS,
    "sport_scene": SPORT_SCENES,
    "fashion_scene": FASHION_SCENES,
    "garment": GARMENTS,
    "everyday_scene": EVERYDAY_SCENES,
    "nature_scene": NATURE_SCENES,
    "group": GROUPS,
    "place": PLACES,
    "location": LOCATIONS,
    "camera": CAMERA_PHRASES,
    "mood": MOODS,
    "shot": SHOT_DETAILS,
}


class _DrawnFields(dict[str, str]):
    """Template fields: the ones set beforehand stay fixed, any other is drawn afresh at each use."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng

    def __missing__(self, field: str) -> str:
        return self.rng.choice(CAPTION_VOCABULARY[field])


def make_caption(rng: random.Random, category: str) -> str:
    """A caption of ``category``; a brand caption names one person and one brand throughout."""
    fields = _DrawnFields(rng)
    if category == "brand":
        fields["person"], fields["pronoun"] = rng.choice(PEOPLE)
        fields["brand"] = rng.choice(BRANDS)
    return CAPTION_TEMPLATES[category].format_map(fields)


def _vary_caption(rng: random.Random, caption: str) -> str:
    """A near-duplicate: the same words, differing only in case, whitespace or punctuation."""
    variants: list[Callable[[str], str]] = [
        str.lower,
        str.upper,
        lambda c: "  " + c + " ",
        lambda c: c.replace(" ", "  ", 3),
        lambda c: c.replace(" ", "\u00a0", 1),  # a no-break space; NFKC makes it a plain space
        lambda c: c.rstrip(".") + "!",
        lambda c: c.rstrip("."),
        lambda c: c.replace(", ", " "),
        lambda c: c.replace(". ", "; ", 1),
    ]
    out = caption
    for change in rng.sample(variants, rng.randint(1, 2)):
        out = change(out)
    return out


# ---- metadata rows -------------------------------------------------------------------
class _Captions:
    """Fresh captions, unique after normalisation, so duplicates are exactly the ones made on purpose."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.seen: set[int] = set()
        self.categories = list(CATEGORY_WEIGHTS)
        self.weights = list(CATEGORY_WEIGHTS.values())

    @staticmethod
    def key(caption: str) -> int:
        return int.from_bytes(hashlib.blake2b(normalise_caption(caption).encode(), digest_size=8).digest())

    def make(self, category: str | None = None) -> tuple[str, str]:
        category = category or self.rng.choices(self.categories, self.weights)[0]
        for _ in range(1000):
            caption = make_caption(self.rng, category)
            key = self.key(caption)
            if key not in self.seen:
                self.seen.add(key)
                return category, caption
        raise RuntimeError(f"caption space of category {category!r} exhausted; lower the row count")


class _Videos:
    """Clip names ``{11-char id}_{k}.mp4``: each source video yields a few consecutive clips."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.source = ""
        self.next_clip = 0
        self.left = 0

    def new_source(self) -> str:
        return "".join(self.rng.choice(_ID_ALPHABET) for _ in range(11))

    def next(self) -> str:
        if self.left == 0:
            self.source, self.next_clip, self.left = self.new_source(), 0, self.rng.randint(1, 6)
        name = f"{self.source}_{self.next_clip}.mp4"
        self.next_clip += 1
        self.left -= 1
        return name


def _fmt(value: float, digits: int = 6) -> str:
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


def _scores(rng: random.Random, good: bool) -> tuple[str, str, str]:
    """Aesthetic, motion and temporal consistency; ``good`` ones pass the default curation thresholds."""
    if good:
        aesthetic, motion, temporal = rng.uniform(4.8, 6.6), rng.uniform(1.0, 9.0), rng.uniform(0.93, 0.995)
    else:
        aesthetic = min(max(rng.gauss(4.9, 0.7), 2.0), 7.5)
        motion = min(rng.expovariate(1 / 4), 60.0)
        temporal = rng.uniform(0.82, 0.999)
    return _fmt(aesthetic), _fmt(motion), _fmt(temporal)


def _timing(rng: random.Random) -> tuple[str, str, str]:
    """frame, fps, seconds of an ordinary (file-less) clip, consistent with each other."""
    fps = rng.choice((23.976, 24.0, 25.0, 29.97, 30.0, 30.0, 50.0, 60.0))
    frames = max(1, round(rng.uniform(1.0, 20.0) * fps))
    return str(frames), _fmt(fps, 3), _fmt(frames / fps, 3)


_BAD_FIELDS = (
    ("caption", ""),
    ("video", ""),
    ("seconds", "n/a"),
    ("fps", "-3.2"),
    ("aesthetic score", "-1.5"),
    ("frame", "abc"),
    ("motion score", ""),
    ("seconds", "-4.0"),
    ("temporal consistency score", "1.2.3"),
    ("camera motion", ""),
)


# Rows with files that the default curation filters must reject, one reason each, in turn.
_REJECTED_KINDS = ("no_keyword", "low_aesthetic", "short", "low_temporal")


@dataclass
class _ClipPlan:
    """One row that has a real video file."""

    video: str
    kind: str  # "good": brand caption passing every default filter; else one of _REJECTED_KINDS
    width: int
    height: int
    frames: int
    fps: int
    pattern_seed: int
    corrupt: bool = False
    part: int = 0

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    @property
    def good(self) -> bool:
        return self.kind == "good"


def _plan_clips(rng: random.Random, clips: int, corrupt: int, parts: int) -> list[_ClipPlan]:
    """Which videos get files: mostly brand clips that pass the default filters, grouped 1-3 per source
    video; the others each fail exactly one filter (keyword, aesthetic, duration, temporal consistency)."""
    videos = _Videos(rng)
    good_count = math.ceil(clips * _GOOD_CLIP_SHARE)
    plans: list[_ClipPlan] = []
    while len(plans) < clips:
        source, group = videos.new_source(), rng.randint(1, 3)
        for k in range(min(group, clips - len(plans))):
            index = len(plans)
            kind = (
                "good" if index < good_count else _REJECTED_KINDS[(index - good_count) % len(_REJECTED_KINDS)]
            )
            width, height = rng.choice(((48, 32), (64, 48), (80, 48), (96, 64), (96, 54)))
            if kind == "short":  # under the default minimum of 2 s
                fps = rng.randint(12, 24)
                frames = rng.randint(8, min(24, 2 * fps - 1))
            else:
                fps = rng.choice((8, 10, 12))
                frames = rng.randint(max(8, 2 * fps), 24)
            plans.append(
                _ClipPlan(f"{source}_{k}.mp4", kind, width, height, frames, fps, rng.randrange(1, 2**31))
            )
    good_plans = [p for p in plans if p.good] or plans
    for plan in rng.sample(good_plans, min(corrupt, len(good_plans))):
        plan.corrupt = True
    order = list(range(clips))
    rng.shuffle(order)
    for slot, index in enumerate(order):
        plans[index].part = slot % parts
    return plans


def _clip_row(rng: random.Random, captions: _Captions, plan: _ClipPlan) -> tuple[str, list[str]]:
    """The metadata row of a clip with a file: its frame/fps/seconds describe the real clip."""
    category = {"no_keyword": rng.choice(("everyday", "nature")), "low_temporal": "sportswear"}
    category, caption = captions.make(category.get(plan.kind, "brand"))
    aesthetic, motion, temporal = _scores(rng, good=True)
    if plan.kind == "low_aesthetic":
        aesthetic = _fmt(rng.uniform(2.5, 4.2))
    elif plan.kind == "low_temporal":
        temporal = _fmt(rng.uniform(0.70, 0.85))
    row = [
        plan.video,
        caption,
        aesthetic,
        motion,
        temporal,
        rng.choice(CAMERA_MOTIONS),
        str(plan.frames),
        str(plan.fps),
        _fmt(plan.seconds, 3),
    ]
    return category, row


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[list[str]], bom: bool = False) -> None:
    """Write in chunks: a million-row file in bounded memory, without one write call per row. Lines end
    in CRLF (the csv module's default, as in RFC 4180); ``bom`` starts the file with a UTF-8 BOM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = iter(rows)
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        while chunk := list(islice(rows, _CHUNK_ROWS)):
            writer.writerows(chunk)


def _duplicate_row(
    rng: random.Random, original: list[str], original_has_file: bool, videos: _Videos
) -> list[str]:
    """A near-duplicate caption; a file-less original may lend its caption to another clip."""
    row = list(original)
    row[1] = _vary_caption(rng, original[1])
    if not original_has_file and rng.random() < 0.5:
        row[0] = videos.next()
        row[2:5] = _scores(rng, good=False)
        row[6:9] = _timing(rng)
    return row


def _fileless_row(
    rng: random.Random, captions: _Captions, videos: _Videos, bad: bool
) -> tuple[str, list[str]]:
    """An ordinary row without a video file; a ``bad`` one has one field missing or unparsable."""
    category, caption = captions.make()
    row = [videos.next(), caption, *_scores(rng, good=False), rng.choice(CAMERA_MOTIONS), *_timing(rng)]
    if bad:
        column, value = rng.choice(_BAD_FIELDS)
        row[OPENVID_COLUMNS.index(column)] = value
        category = "bad"
    return category, row


def _metadata_rows(
    rng: random.Random, rows: int, plans: list[_ClipPlan], categories: Counter[str], damage: MirrorDamage
) -> Iterator[list[str]]:
    """The OpenVid rows in order, counting each row's category (``duplicate`` and ``bad`` included).

    A damaged row is never copied by a later duplicate, so that the damage log's counts stay exact.
    """
    captions = _Captions(rng)
    videos = _Videos(rng)
    positions = dict(zip(sorted(rng.sample(range(rows), len(plans))), plans, strict=True))
    # Earlier rows a duplicate may copy; a row with a file is only ever duplicated with its own video,
    # so deduplication cannot swap a clip that has a file for a file-less twin.
    reservoir: list[tuple[list[str], bool]] = []
    for index in range(rows):
        roll = rng.random()
        has_file = index in positions
        damaged = False
        if has_file:
            category, row = _clip_row(rng, captions, positions[index])
            damaged = damage.clip_row(row)
        elif roll < _DUPLICATE_SHARE and reservoir:
            category, row = "duplicate", _duplicate_row(rng, *rng.choice(reservoir), videos)
        else:
            category, row = _fileless_row(rng, captions, videos, bad=roll > 1 - _BAD_SHARE)
            if category != "bad" and (hurt := damage.fileless_row(row)) is not None:
                damaged, category = True, "bad" if hurt == "bad" else category
        if category not in ("duplicate", "bad") and not damaged:
            if len(reservoir) < _RESERVOIR:
                reservoir.append((row, has_file))
            else:
                reservoir[rng.randrange(_RESERVOIR)] = (row, has_file)
        categories[category] += 1
        yield row


def _write_metadata(
    path: Path,
    rng: random.Random,
    rows: int,
    plans: list[_ClipPlan],
    broken_column: bool,
    damage: MirrorDamage,
) -> Counter[str]:
    """The OpenVid CSV; returns the rows per category (``duplicate`` and ``bad`` included)."""
    header = list(OPENVID_COLUMNS)
    if broken_column:
        header[header.index(BROKEN_COLUMN[0])] = BROKEN_COLUMN[1]
    categories: Counter[str] = Counter()
    damage.plan([ClipInfo(p.video, p.part, p.good and not p.corrupt) for p in plans])
    _write_csv(path, header, _metadata_rows(rng, rows, plans, categories, damage), bom=damage.bom)
    return categories


# ---- clips and zip parts ------------------------------------------------------------------
def _encode_clip(ffmpeg: str, plan: _ClipPlan, workdir: Path) -> bytes:
    """A real H.264 mp4 of moving coloured gradients and a sliding box, bit-exact for the same plan."""
    rng = random.Random(plan.pattern_seed)
    colours = [f"0x{rng.randrange(0x1000000):06x}" for _ in range(3)]
    box = f"0x{rng.randrange(0x1000000):06x}"
    speed = rng.uniform(0.02, 0.12)
    size = max(6, plan.height // 4)
    source = (
        f"gradients=s={plan.width}x{plan.height}:r={plan.fps}:seed={plan.pattern_seed}:speed={speed:.3f}"
        f":n=3:c0={colours[0]}:c1={colours[1]}:c2={colours[2]},"
        f"drawbox=x=t*{rng.randint(10, 40)}:y={rng.randrange(max(1, plan.height - size))}"
        f":w={size}:h={size}:color={box}:t=fill"
    )
    out = workdir / plan.video
    command = [
        ffmpeg, "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", source, "-frames:v", str(plan.frames),
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-threads", "1",
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not encode {plan.video}: {result.stderr.strip()[-500:]}")
    data = out.read_bytes()
    out.unlink()
    if plan.corrupt:  # keep the mp4 signature, garble the rest and drop the index: undecodable
        noise = random.Random(plan.pattern_seed ^ 0x5A5A)
        data = data[:32] + noise.randbytes(max(64, len(data) * 2 // 5))
    return data


def _encode_clips(plans: Sequence[_ClipPlan]) -> dict[str, bytes]:
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    with (
        tempfile.TemporaryDirectory(prefix="adfame-mirror-") as tmp,
        ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool,
    ):
        encoded = pool.map(lambda p: (p.video, _encode_clip(ffmpeg, p, Path(tmp))), plans)
        return dict(encoded)


def _write_parts(
    repo: Path, plans: Sequence[_ClipPlan], data: dict[str, bytes], parts: int, damage: MirrorDamage
) -> tuple[list[Path], list[Path], list[int]]:
    """Stored zip parts (one split into pieces when there are three or more) and their mapping CSVs
    (which list, with ``duplicate-mapping`` damage, a few clips another part holds)."""
    part_files: list[Path] = []
    mapping_files: list[Path] = []
    split = [parts - 1] if parts >= 3 else []
    (repo / MAPPING_DIR).mkdir(parents=True, exist_ok=True)
    for part in range(parts):
        folder = f"OpenVid_part{part}"
        members = sorted((p for p in plans if p.part == part), key=lambda p: p.video)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            directory = zipfile.ZipInfo(f"{folder}/", date_time=_ZIP_DATE)
            directory.external_attr = (0o40755 << 16) | 0x10
            archive.writestr(directory, b"")
            for plan in members:
                info = zipfile.ZipInfo(f"{folder}/{plan.video}", date_time=_ZIP_DATE)
                info.external_attr = 0o644 << 16
                archive.writestr(info, data[plan.video], compress_type=zipfile.ZIP_STORED)
        blob = buffer.getvalue()
        if part in split:
            half = len(blob) // 2
            for suffix, piece in (("aa", blob[:half]), ("ab", blob[half:])):
                path = repo / f"{folder}_part{suffix}"
                path.write_bytes(piece)
                part_files.append(path)
        else:
            path = repo / f"{folder}.zip"
            path.write_bytes(blob)
            part_files.append(path)
        mapping = repo / MAPPING_DIR / f"{folder}.csv"
        listed = [p.video for p in members] + damage.extra_mappings(part)
        _write_csv(mapping, ["video", "video_path"], ([v, f"{folder}/{v}"] for v in listed), bom=damage.bom)
        mapping_files.append(mapping)
    damage.truncate(part_files, split)
    return part_files, mapping_files, split


def _remove_stale_parts(repo: Path) -> None:
    """Parts and mappings of an earlier, larger generation would otherwise linger in the listing."""
    for stale in [*repo.glob("OpenVid_part*"), *(repo / MAPPING_DIR).glob("OpenVid_part*.csv")]:
        if stale.is_file():
            stale.unlink()


# ---- VidProM --------------------------------------------------------------------------
def _score(rng: random.Random, high: bool) -> str:
    return f"{rng.uniform(0.45, 0.98) if high else rng.uniform(0.0, 1.0) ** 6 * 0.05:.6g}"


def _prompt_rows(
    rng: random.Random, rows: int, counts: Counter[str], damage: MirrorDamage
) -> Iterator[list[str]]:
    """VidProM-like rows with toxicity scores in [0, 1], counting ``toxic`` and ``bad`` ones."""
    start = datetime(2023, 7, 1)
    for _ in range(rows):
        roll = rng.random()
        is_toxic = roll < 0.01
        if is_toxic:
            prompt = f"{rng.choice(TOXIC_PROMPTS)}, {rng.choice(PROMPT_STYLES)}"
            counts["toxic"] += 1
        else:
            prompt = (
                f"{rng.choice(PROMPT_SUBJECTS)} {rng.choice(PROMPT_ACTIONS)}, {rng.choice(PROMPT_STYLES)}"
            )
        when = start + timedelta(seconds=rng.randrange(240 * 86400))
        row = [
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            damage.prompt(prompt),
            when.strftime("%Y-%m-%d %H:%M:%S"),
            _score(rng, is_toxic),
            _score(rng, is_toxic and rng.random() < 0.5),
            _score(rng, False),
            _score(rng, is_toxic),
            _score(rng, is_toxic and rng.random() < 0.3),
            _score(rng, False),
        ]
        if roll > 0.99:
            column, value = rng.choice(
                (("prompt", ""), ("toxicity", "n/a"), ("toxicity", "1.7"), ("insult", "-0.2"))
            )
            row[VIDPROM_COLUMNS.index(column)] = value
            counts["bad"] += 1
        yield row


def _write_prompts(path: Path, rng: random.Random, rows: int, damage: MirrorDamage) -> Counter[str]:
    """The VidProM CSV; returns how many rows are ``toxic`` and how many ``bad``."""
    counts: Counter[str] = Counter()
    _write_csv(path, VIDPROM_COLUMNS, _prompt_rows(rng, rows, counts, damage), bom=damage.bom)
    return counts


# ---- AdImageNet -----------------------------------------------------------------------
def _ad_image(rng: random.Random, width: int, height: int, lines: list[str], fmt: str) -> bytes:
    """A small banner: background, shapes, a button and the ad copy (which becomes the ``text`` column)."""
    palette = [tuple(rng.randrange(256) for _ in range(3)) for _ in range(4)]
    image = Image.new("RGB", (width, height), palette[0])
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randint(10, max(11, width // 2)), y0 + rng.randint(10, max(11, height // 2))
        draw.ellipse((x0, y0, x1, y1), fill=palette[1])
    font_size = max(10, min(width, height) // 8)
    font = ImageFont.load_default(size=font_size)
    y = max(2, height // 10)
    for line in lines:
        draw.text((max(4, width // 20), y), line, fill=palette[2], font=font)
        y += font_size + 4
    bw, bh = max(30, width // 3), max(14, height // 8)
    draw.rectangle((width - bw - 6, height - bh - 6, width - 6, height - 6), fill=palette[3])
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 85} if fmt == "JPEG" else {"optimize": False}))
    return buffer.getvalue()


def _write_images(path: Path, rng: random.Random, count: int) -> None:
    images: list[dict[str, object]] = []
    texts: list[str] = []
    dimensions: list[str] = []
    for index in range(count):
        width, height = rng.choice(AD_SIZES)
        lines = rng.sample(AD_LINES, 1 if height < 100 else 2)
        fmt, ext = ("PNG", "png") if index % 2 == 0 else ("JPEG", "jpg")
        images.append({"bytes": _ad_image(rng, width, height, lines, fmt), "path": f"ad_{index:05d}.{ext}"})
        texts.append(" ".join(lines))
        dimensions.append(f"{width}x{height}")
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    features = {
        "image": {"_type": "Image"},
        "text": {"dtype": "string", "_type": "Value"},
        "dimensions": {"dtype": "string", "_type": "Value"},
    }
    schema = pa.schema(
        [("image", image_type), ("text", pa.string()), ("dimensions", pa.string())],
        metadata={"huggingface": json.dumps({"info": {"features": features}})},
    )
    table = pa.table({"image": images, "text": texts, "dimensions": dimensions}, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


# ---- entry points -----------------------------------------------------------------------
def _check_sizes(rows: int, clips: int, parts: int, corrupt: int, image_count: int) -> None:
    if rows < 1 or clips < 0 or parts < 1 or corrupt < 0 or image_count < 0:
        raise ValueError("rows and parts must be positive; clips, corrupt and image_count non-negative")
    if clips > rows:
        raise ValueError(f"clips ({clips}) cannot exceed rows ({rows})")
    if corrupt > clips:
        raise ValueError(f"corrupt ({corrupt}) cannot exceed clips ({clips})")


def _bytes_under(root: Path) -> int:
    """Bytes of the three data sets as a source lists them (stray files in ``root`` do not count)."""
    return sum(
        (root / repo / p).stat().st_size
        for repo in (OPENVID_REPO, VIDPROM_REPO, ADIMAGENET_REPO)
        for p in LocalSource(root / repo).list_files()
    )


def generate_mirror(
    root: Path,
    rows: int = 3000,
    clips: int = 48,
    parts: int = 3,
    seed: int = 0,
    corrupt: int = 2,
    broken_column: bool = False,
    image_count: int = 24,
    prompt_rows: int | None = None,
    damages: Iterable[Damage | str] = (),
) -> MirrorSummary:
    """Write the three data sets under ``root`` (``<owner>/<name>/...``), the same bytes for the same seed;
    ``damages`` switches on kinds of real-world damage (``devkit.mirror_damage.Damage``)."""
    _check_sizes(rows, clips, parts, corrupt, image_count)
    root = Path(root)
    prompt_rows = rows if prompt_rows is None else prompt_rows
    openvid, vidprom, adimagenet = root / OPENVID_REPO, root / VIDPROM_REPO, root / ADIMAGENET_REPO
    openvid.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(openvid)

    # Independent streams, so changing one size parameter leaves the other data sets unchanged.
    plans = _plan_clips(random.Random(f"{seed}:clips"), clips, corrupt, parts)
    damage = MirrorDamage(damages, seed, BRANDS)
    categories = _write_metadata(
        openvid / OPENVID_CSV, random.Random(f"{seed}:openvid"), rows, plans, broken_column, damage
    )
    part_files, mapping_files, split = _write_parts(openvid, plans, _encode_clips(plans), parts, damage)
    prompts = _write_prompts(vidprom / VIDPROM_CSV, random.Random(f"{seed}:vidprom"), prompt_rows, damage)
    _write_images(adimagenet / ADIMAGENET_PARQUET, random.Random(f"{seed}:adimagenet"), image_count)
    return MirrorSummary(
        root=root,
        seed=seed,
        openvid_dir=openvid,
        vidprom_dir=vidprom,
        adimagenet_dir=adimagenet,
        metadata_csv=openvid / OPENVID_CSV,
        rows=rows,
        duplicate_rows=categories["duplicate"],
        bad_rows=categories["bad"],
        categories=dict(sorted(categories.items())),
        clips=clips,
        clip_videos=tuple(p.video for p in plans),
        brand_clips=tuple(p.video for p in plans if p.good),
        corrupt_clips=tuple(p.video for p in plans if p.corrupt),
        clip_parts={p.video: p.part for p in plans},
        parts=parts,
        part_files=tuple(part_files),
        split_parts=tuple(split),
        mapping_files=tuple(mapping_files),
        prompts_csv=vidprom / VIDPROM_CSV,
        prompt_rows=prompt_rows,
        toxic_prompts=prompts["toxic"],
        bad_prompt_rows=prompts["bad"],
        images_parquet=adimagenet / ADIMAGENET_PARQUET,
        images=image_count,
        broken_column="->".join(BROKEN_COLUMN) if broken_column else None,
        bytes_written=_bytes_under(root),
        damage=damage.log,
    )


def upload_mirror(
    root: Path, store: ObjectStore, bucket: str, prefix: str = "", workers: int = 4
) -> list[str]:
    """Copy a mirror folder into the object store with the same layout; returns the keys written.

    ``S3Source(bucket, f"{prefix}/{owner}/{name}")`` then reads a data set from there.
    """
    files = LocalSource(root).list_files()
    base = prefix.strip("/")
    keys = [f"{base}/{path}" if base else path for path in files]
    store.ensure_bucket(bucket)

    def put(item: tuple[str, str]) -> str:
        path, key = item
        content_type = {".csv": "text/csv", ".zip": "application/zip", ".mp4": "video/mp4"}.get(
            Path(path).suffix, "application/octet-stream"
        )
        store.put_file(bucket, key, Path(root) / path, content_type=content_type)
        return key

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return sorted(pool.map(put, zip(files, keys, strict=True)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Generate a local mirror of OpenVid-1M, VidProM, AdImageNet."
    )
    parser.add_argument("--root", type=Path, required=True, help="mirror folder (<owner>/<name>/<files>)")
    parser.add_argument("--rows", type=int, default=3000, help="OpenVid metadata rows")
    parser.add_argument("--clips", type=int, default=48, help="rows that get a real video file")
    parser.add_argument("--parts", type=int, default=3, help="zip parts (3 or more: one is split in pieces)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corrupt", type=int, default=2, help="clips written undecodable on purpose")
    parser.add_argument("--broken-column", action="store_true", help=f"rename {'->'.join(BROKEN_COLUMN)}")
    parser.add_argument(
        "--damage",
        action="append",
        default=[],
        choices=[str(d) for d in Damage],
        help="real-world damage to write (repeatable; see devkit.mirror_damage)",
    )
    parser.add_argument("--images", type=int, default=24, help="AdImageNet images")
    parser.add_argument("--prompt-rows", type=int, default=None, help="VidProM rows (default: --rows)")
    parser.add_argument("--upload", metavar="S3_URI", help="also copy the mirror to s3://bucket/prefix")
    args = parser.parse_args(argv)
    try:
        summary = generate_mirror(
            args.root,
            rows=args.rows,
            clips=args.clips,
            parts=args.parts,
            seed=args.seed,
            corrupt=args.corrupt,
            broken_column=args.broken_column,
            image_count=args.images,
            prompt_rows=args.prompt_rows,
            damages=args.damage,
        )
    except ValueError as exc:
        parser.error(str(exc))
    report = summary.to_dict()
    for key in ("clip_videos", "brand_clips", "clip_parts"):  # long lists: counts are enough on a terminal
        report.pop(key)
    if args.upload:
        if not args.upload.startswith("s3://") or len(args.upload) <= len("s3://"):
            parser.error(f"--upload needs s3://bucket/prefix, got {args.upload!r}")
        from adfame.storage import ObjectStore

        bucket, _, prefix = args.upload[len("s3://") :].partition("/")
        report["uploaded"] = len(upload_mirror(args.root, ObjectStore(), bucket, prefix))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
