"""Prompts that only look like text: invisible characters never reach the stored prompt.

The rule (docs/security.md): a prompt is stored as ``adfame.text.clean_text`` makes it, the one cleaning
the curation applies to captions too: Unicode format characters (zero-width spaces and joiners, bidi
embeddings, overrides and isolates, the BOM) are removed; a prompt with fewer than 3 visible characters
left is refused with a 422 saying so. Tried as a new user would, through the served API.
"""

from __future__ import annotations

import unicodedata
import uuid

import httpx
import pytest
from security_support import OWNER, detail
from sqlalchemy import Engine, text

pytestmark = pytest.mark.integration

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


@pytest.mark.parametrize(
    "prompt",
    [ZERO_WIDTH, ZERO_WIDTH * 50, BIDI, "\u202e\u2066ab\u2069", "a\u200bb\u200c", " \u00ad\u00ad\u00ad "],
    ids=["zero-width", "many-zero-width", "bidi-only", "two-letters-in-bidi", "two-letters", "soft-hyphens"],
)
def test_a_prompt_of_invisible_characters_is_a_422_saying_why(
    clients: dict[str, httpx.Client], prompt: str
) -> None:
    response = clients[OWNER].post("/generate-video", json={"prompt": prompt})
    assert response.status_code == 422, response.text
    reason = detail(response)
    assert reason.startswith("prompt: prompt must hold at least 3 visible characters"), reason
    invisible = sum(unicodedata.category(ch) == "Cf" for ch in prompt)
    assert f"its {invisible} invisible format characters" in reason


def test_bidi_and_zero_width_characters_are_removed_from_the_stored_prompt(
    clients: dict[str, httpx.Client], engine: Engine
) -> None:
    marker = uuid.uuid4().hex[:8]
    # Trojan-source style: shown as "... price 01$", stored in another order, with hidden joiners.
    sent = f"a sneaker ad {marker} \u202eprice $10\u202c with Ni\u200dke\u200b logo \u2066shown\u2069"
    accepted = clients[OWNER].post("/generate-video", json={"prompt": sent})
    assert accepted.status_code == 202, accepted.text
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT prompt FROM generation_requests WHERE request_id = :id"),
            {"id": accepted.json()["job_id"]},
        ).scalar_one()
    assert stored == f"a sneaker ad {marker} price $10 with Nike logo shown"
    assert not any(unicodedata.category(ch) == "Cf" for ch in stored)
    view = clients[OWNER].get(f"/jobs/{accepted.json()['job_id']}").json()
    assert view["prompt"] == stored
