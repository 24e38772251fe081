"""The API key format and its digest, without a database."""

from __future__ import annotations

from inference.auth import digest, new_key, parse_key_id


def test_new_keys_are_unique_and_well_formed() -> None:
    keys = [new_key() for _ in range(50)]
    assert len({key for _, key in keys}) == 50
    for key_id, key in keys:
        assert key.startswith(f"af_{key_id}_")
        assert parse_key_id(key) == key_id


def test_malformed_keys_have_no_id() -> None:
    key_id, key = new_key()
    for bad in ("", "af_", key[:-1], key + "x", key.replace("af_", "xx_"), f"af_{key_id.upper()}_{key[20:]}"):
        assert parse_key_id(bad) is None, bad


def test_only_a_digest_is_stored_and_it_is_stable() -> None:
    _, key = new_key()
    assert digest(key) == digest(key)
    assert len(digest(key)) == 64 and key not in digest(key)
    assert digest(key) != digest(key[:-1] + ("A" if key[-1] != "A" else "B"))
