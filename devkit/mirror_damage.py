"""Damage for the generated mirror: what real scraped dumps carry, one switch per kind.

Real OpenVid and VidProM dumps are not as tidy as the generator's default output. Each ``Damage`` is a
switch of ``devkit.mirror.generate_mirror`` (``--damage NAME`` on its command line) and changes the mirror
the way one kind of real damage would:

- ``control-chars``: NUL and other control characters inside captions and prompts (a few selected
  clips among them), and two rows with a NUL in the video name;
- ``quoted-newlines``: captions and prompts holding line breaks (LF and CRLF), doubled quotes and commas
  inside quoted fields, and CSV files that start with a UTF-8 BOM (the lines end in CRLF already);
- ``duplicate-mapping``: a few clips listed in a second part's mapping file, a part that sorts before
  the one that holds them;
- ``format-chars``: invisible format characters (zero-width joiner inside the brand name, soft hyphen,
  bidi marks, an emoji with its variation selector) in some captions, and look-alike pairs: a clip of
  another source video whose caption differs from a first clip's only by format characters, case, width
  and punctuation;
- ``non-finite``: numbers written as ``inf``, ``-inf``, ``1e400``, ``NaN``;
- ``truncated-part``: one zip part cut short, so its central directory is gone.

Damage draws from a random stream of its own, and every damaged row is left out of the rows duplicates
copy, so the counts in ``DamageLog`` are exact: tests check the pipeline's reports against them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class Damage(StrEnum):
    CONTROL_CHARS = "control-chars"
    QUOTED_NEWLINES = "quoted-newlines"
    DUPLICATE_MAPPING = "duplicate-mapping"
    FORMAT_CHARS = "format-chars"
    NON_FINITE = "non-finite"
    TRUNCATED_PART = "truncated-part"


# Share of ordinary (file-less) rows and of prompts a text damage touches.
_ROW_SHARE = 0.02
_NAMES_WITH_NUL = 2
_LOOKALIKE_PAIRS = 2
_TRUNCATED_SHARE = 0.6  # the part keeps this share of its bytes: its end (the directory) is gone
_CONTROL = ("\x00", "\x01", "\x1b", "\x7f")
_NON_FINITE = ("inf", "-inf", "1e400", "NaN", "-Infinity")
_NUMERIC_FIELDS = (2, 3, 4, 6, 7, 8)  # aesthetic, motion, temporal, frame, fps, seconds in OPENVID_COLUMNS
ZWJ, SOFT_HYPHEN, LRM, RLM, VS16 = "\u200d", "\u00ad", "\u200e", "\u200f", "\ufe0f"
_WORD = re.compile(r"[A-Za-z]{6,}")


@dataclass(frozen=True)
class ClipInfo:
    """What damage needs to know of a clip with a file: its name, part and whether it ends up selected."""

    video: str
    part: int
    selectable: bool  # passes every default filter and decodes


@dataclass
class DamageLog:
    """What was damaged; each count is what the pipeline's reports must show."""

    damages: list[str] = field(default_factory=list)
    control_caption_rows: int = 0  # captions holding a control character (selected clips included)
    control_captions: list[str] = field(default_factory=list)  # selected clips among them
    nul_video_rows: int = 0
    control_prompts: int = 0
    newline_captions: list[str] = field(default_factory=list)  # selected clips with line breaks
    newline_prompts: int = 0
    format_captions: list[str] = field(default_factory=list)  # selected clips with format characters
    lookalike_pairs: list[list[str]] = field(default_factory=list)  # [first clip, look-alike clip]
    conflicting_mappings: dict[str, list[str]] = field(default_factory=dict)  # clip -> its parts
    non_finite_rows: int = 0
    truncated_part: str | None = None


class MirrorDamage:
    """Applies the chosen damages while the generator writes; ``log`` says what it did."""

    def __init__(self, damages: Iterable[Damage | str], seed: int, brands: Sequence[str]) -> None:
        self.damages = frozenset(Damage(d) for d in damages)
        self.brands = tuple(brands)
        self.rng = random.Random(f"{seed}:damage")
        self.log = DamageLog(damages=sorted(self.damages))
        self._caption_damage: dict[str, Damage] = {}
        self._lookalike_of: dict[str, str] = {}
        self._captions: dict[str, str] = {}
        self._extra_parts: dict[str, int] = {}

    def __contains__(self, damage: Damage) -> bool:
        return damage in self.damages

    @property
    def bom(self) -> bool:
        """Whether the CSV files start with a UTF-8 BOM."""
        return Damage.QUOTED_NEWLINES in self

    def plan(self, clips: Sequence[ClipInfo]) -> None:
        """Choose the selected clips whose captions or mappings are damaged (``clips`` in CSV row order)."""
        selectable = [clip for clip in clips if clip.selectable]
        count = max(2, len(selectable) // 6)
        free = list(selectable)
        for damage in (Damage.CONTROL_CHARS, Damage.QUOTED_NEWLINES, Damage.FORMAT_CHARS):
            if damage in self and free:
                for clip in self.rng.sample(free, min(count, len(free))):
                    self._caption_damage[clip.video] = damage
                    free.remove(clip)
        if Damage.FORMAT_CHARS in self:
            self._plan_lookalikes(free)
        if Damage.DUPLICATE_MAPPING in self:
            elsewhere = [clip for clip in selectable if clip.part > 0]
            for clip in self.rng.sample(elsewhere, min(count, len(elsewhere))):
                self._extra_parts[clip.video] = 0
                self.log.conflicting_mappings[clip.video] = [f"OpenVid_part{p}" for p in (0, clip.part)]

    def _plan_lookalikes(self, free: list[ClipInfo]) -> None:
        """Pairs of clips of different source videos; the later one's caption will copy the earlier's."""
        order = {clip.video: index for index, clip in enumerate(free)}
        candidates = list(free)
        self.rng.shuffle(candidates)
        while len(self.log.lookalike_pairs) < _LOOKALIKE_PAIRS and len(candidates) >= 2:
            first = candidates.pop()
            other = next((c for c in candidates if c.video[:11] != first.video[:11]), None)
            if other is None:
                break
            candidates.remove(other)
            earlier, later = sorted((first, other), key=lambda clip: order[clip.video])
            self._lookalike_of[later.video] = earlier.video
            self.log.lookalike_pairs.append([earlier.video, later.video])

    # ---- OpenVid rows -------------------------------------------------------------------------
    def clip_row(self, row: list[str]) -> bool:
        """Damage a row with a file in place, as planned; whether it was damaged."""
        video = row[0]
        if video in self._lookalike_of:
            row[1] = lookalike(self.rng, self._captions[self._lookalike_of[video]])
        self._captions[video] = row[1]
        damage = self._caption_damage.get(video)
        if damage is None:
            return video in self._lookalike_of
        row[1] = self._damaged_text(damage, row[1])
        {
            Damage.CONTROL_CHARS: self.log.control_captions,
            Damage.QUOTED_NEWLINES: self.log.newline_captions,
            Damage.FORMAT_CHARS: self.log.format_captions,
        }[damage].append(video)
        if damage is Damage.CONTROL_CHARS:
            self.log.control_caption_rows += 1
        return True

    def fileless_row(self, row: list[str]) -> str | None:
        """Maybe damage an ordinary row in place; returns ``"bad"`` when that makes it a bad row, ``"text"``
        when only its text changed, None when untouched."""
        if Damage.CONTROL_CHARS in self and self.log.nul_video_rows < _NAMES_WITH_NUL:
            row[0] = row[0].replace("_", "\x00_", 1)
            self.log.nul_video_rows += 1
            return "bad"
        for damage in (Damage.NON_FINITE, Damage.CONTROL_CHARS, Damage.QUOTED_NEWLINES):
            if damage in self and self.rng.random() < _ROW_SHARE:
                if damage is Damage.NON_FINITE:
                    row[self.rng.choice(_NUMERIC_FIELDS)] = self.rng.choice(_NON_FINITE)
                    self.log.non_finite_rows += 1
                    return "bad"
                row[1] = self._damaged_text(damage, row[1])
                self.log.control_caption_rows += damage is Damage.CONTROL_CHARS
                return "text"
        return None

    def prompt(self, prompt: str) -> str:
        """A VidProM prompt, maybe with control characters or line breaks."""
        for damage in (Damage.CONTROL_CHARS, Damage.QUOTED_NEWLINES):
            if damage in self and self.rng.random() < _ROW_SHARE:
                if damage is Damage.CONTROL_CHARS:
                    self.log.control_prompts += 1
                else:
                    self.log.newline_prompts += 1
                return self._damaged_text(damage, prompt)
        return prompt

    def _damaged_text(self, damage: Damage, text: str) -> str:
        if damage is Damage.CONTROL_CHARS:
            return with_control_characters(self.rng, text)
        if damage is Damage.QUOTED_NEWLINES:
            return with_line_breaks(self.rng, text)
        return with_format_characters(text, self.brands)

    # ---- zip parts ----------------------------------------------------------------------------
    def extra_mappings(self, part: int) -> list[str]:
        """Clips this part's mapping file lists although another part holds them."""
        return sorted(video for video, extra in self._extra_parts.items() if extra == part)

    def truncate(self, part_files: Sequence[Path], split_parts: Sequence[int]) -> None:
        """Cut the first whole (not byte-split) part short: its central directory is lost."""
        if Damage.TRUNCATED_PART not in self:
            return
        whole = [path for path in part_files if path.suffix == ".zip"]
        if not whole:
            raise ValueError(f"no whole zip part to truncate (split parts: {list(split_parts)})")
        data = whole[0].read_bytes()
        whole[0].write_bytes(data[: int(len(data) * _TRUNCATED_SHARE)])
        self.log.truncated_part = whole[0].stem


def with_control_characters(rng: random.Random, text: str) -> str:
    """A NUL after the first word and one more control character later on."""
    head, _, tail = text.partition(" ")
    return f"{head}\x00 {tail}".replace(". ", f".{rng.choice(_CONTROL[1:])} ", 1)


def with_line_breaks(rng: random.Random, text: str) -> str:
    """Line breaks (LF, then CRLF twice) between words, and a quoted phrase with a comma in it."""
    words = text.split(" ")
    for position, newline in ((5, "\r\n\r\n"), (2, "\n")):
        if len(words) > position:
            words[position - 1] += newline + words.pop(position)
    broken = " ".join(words)
    return f'{broken} The tagline reads "{rng.choice(("go", "move", "play"))}, now".'


def with_format_characters(text: str, brands: Sequence[str]) -> str:
    """A zero-width joiner inside the brand's name, a soft hyphen inside the first long word, bidi marks
    around the second, and an emoji with its variation selector at the end: it looks the same on screen."""
    brand = next((b for b in brands if b in text), None)
    if brand is not None:
        half = len(brand) // 2
        text = text.replace(brand, brand[:half] + ZWJ + brand[half:])
    words = list(_WORD.finditer(text))[:2]
    marks = (lambda w: w[: len(w) // 2] + SOFT_HYPHEN + w[len(w) // 2 :], lambda w: LRM + w + RLM)
    for match, mark in reversed(list(zip(words, marks, strict=False))):
        text = text[: match.start()] + mark(match.group()) + text[match.end() :]
    return f"{text} \u2764{VS16}"


def lookalike(rng: random.Random, caption: str) -> str:
    """The caption changed only in what normalisation must ignore: a zero-width joiner in a word, case,
    full-width letters and punctuation."""
    words = list(_WORD.finditer(caption))
    if not words:
        return caption.upper()
    target = rng.choice(words)
    word = target.group()
    wide = "".join(chr(ord(ch) + 0xFEE0) for ch in word[:2]) + ZWJ + word[2:]
    changed = caption[: target.start()] + wide + caption[target.end() :]
    return changed.replace(", ", " - ", 1).replace(". ", "! ", 1).swapcase()
