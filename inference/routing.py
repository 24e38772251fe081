"""Canary routing: which model alias serves a request (DESIGN §5).

Deterministic per request, so a redelivered request goes to the same model.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Literal

Route = Literal["champion", "challenger"]


def bucket_of(request_id: uuid.UUID | str) -> int:
    """A stable number in [0, 100) for the request."""
    digest = hashlib.sha256(str(request_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def route_for(request_id: uuid.UUID | str, challenger_weight: int) -> Route:
    """``challenger`` for ``challenger_weight`` % of requests, else ``champion``."""
    if not 0 <= challenger_weight <= 100:
        raise ValueError(f"challenger weight must be within 0..100, got {challenger_weight}")
    return "challenger" if bucket_of(request_id) < challenger_weight else "champion"
