"""Dead letters are bounded: what goes to the DLQ always fits, and says what was cut."""

from __future__ import annotations

import hashlib
import random

from confluent_kafka import Message

from services.processor.dead_letters import (
    MAX_DEAD_LETTER_KEY_BYTES,
    MAX_DEAD_LETTER_VALUE_BYTES,
    DeadLetter,
)


def rejected(value, key=b"user_42") -> Message:
    return Message(topic="events", partition=3, offset=41, key=key, value=value)


def test_value_over_the_bound_is_cut_with_its_original_size_and_hash():
    value = random.Random(1).randbytes(900_000)
    letter = DeadLetter.of(rejected(value), "too_large", "900000 bytes > 16384")
    headers = dict(letter.headers)
    assert letter.value == value[:MAX_DEAD_LETTER_VALUE_BYTES]
    assert headers["dlq.original.size"] == b"900000"
    assert headers["dlq.original.sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert headers["dlq.reason"] == b"too_large"
    assert headers["dlq.source.offset"] == b"41" and headers["dlq.source.partition"] == b"3"


def test_value_at_the_bound_goes_byte_for_byte_without_extra_headers():
    value = b"x" * MAX_DEAD_LETTER_VALUE_BYTES
    letter = DeadLetter.of(rejected(value), "too_large", "")
    assert letter.value == value
    assert not any(name.startswith("dlq.original") for name, _ in letter.headers)


def test_key_over_its_bound_is_cut_too():
    key = b"k" * (MAX_DEAD_LETTER_KEY_BYTES + 1)
    letter = DeadLetter.of(rejected(b"{}", key=key), "missing_field", "")
    headers = dict(letter.headers)
    assert letter.key == key[:MAX_DEAD_LETTER_KEY_BYTES] and letter.value == b"{}"
    assert headers["dlq.original.key.size"] == str(len(key)).encode()
    assert headers["dlq.original.key.sha256"] == hashlib.sha256(key).hexdigest().encode()


def test_empty_value_and_a_detail_quoting_lone_surrogates_make_a_dead_letter():
    letter = DeadLetter.of(rejected(None, key=None), "empty", "user \ud800 " + "d" * 5000)
    headers = dict(letter.headers)
    assert letter.value is None and letter.key is None
    assert headers["dlq.detail"].startswith(b"user \\ud800 ")
    assert len(headers["dlq.detail"]) < 1100
