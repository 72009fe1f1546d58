"""statestore._hll against an independent implementation of Redis' HyperLogLog hashing.

The C extension must put every member exactly where Redis' PFADD does, for any
bytes a stranger can send; tests/integration/test_hll_registers.py checks it
against a real Redis too.
"""

from __future__ import annotations

import fakeredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from statestore import StateStore, hll

pytestmark = pytest.mark.skipif(not hll.available(), reason="statestore._hll is not built")

_M = 0xC6A4A7935BD1E995
_MASK = (1 << 64) - 1


def murmur64a(data: bytes, seed: int = 0xADC83B19) -> int:
    """MurmurHash64A as Redis' hyperloglog.c has it: 8-byte little-endian blocks."""
    h = (seed ^ (len(data) * _M)) & _MASK
    blocks = len(data) - len(data) % 8
    for start in range(0, blocks, 8):
        k = (int.from_bytes(data[start : start + 8], "little") * _M) & _MASK
        k = ((k ^ (k >> 47)) * _M) & _MASK
        h = ((h ^ k) * _M) & _MASK
    tail = data[blocks:]
    if tail:
        h = ((h ^ int.from_bytes(tail, "little")) * _M) & _MASK
    h = ((h ^ (h >> 47)) * _M) & _MASK
    return h ^ (h >> 47)


def reference_position(data: bytes) -> tuple[int, int]:
    hash_ = murmur64a(data)
    rest = (hash_ >> 14) | (1 << 50)
    return hash_ & 0x3FFF, (rest & -rest).bit_length()


@given(st.binary(max_size=64))
def test_bytes_land_where_redis_puts_them(data):
    assert hll.position(data) == reference_position(data)


@given(st.text(max_size=40))
def test_text_is_hashed_as_its_utf8_bytes(text):
    try:
        encoded = text.encode()
    except UnicodeEncodeError:  # a lone surrogate: redis-py could not send it either
        with pytest.raises(UnicodeEncodeError):
            hll.position(text)
        return
    assert hll.position(text) == reference_position(encoded)


@given(st.lists(st.text(max_size=12), max_size=60), st.lists(st.text(max_size=12), max_size=60))
def test_novel_keeps_exactly_the_members_that_raise_a_register(earlier, members):
    known = hll.empty_registers()
    hll.raise_registers(known, earlier)
    expected_registers = bytearray(known)
    kept = []
    for member in members:
        try:
            index, rank = reference_position(member.encode())
        except UnicodeEncodeError:
            kept.append(member)  # cannot be hashed here: always sent, Redis decides
            continue
        if rank > expected_registers[index]:
            expected_registers[index] = rank
            kept.append(member)
    before = bytes(known)
    assert hll.novel(members, known) == kept
    assert bytes(known) == before  # known registers only move once Redis applied
    hll.raise_registers(known, kept)
    assert known == expected_registers


def test_a_member_already_counted_is_never_sent_again():
    known = hll.empty_registers()
    hll.raise_registers(known, ["u1", "u2"])
    assert hll.novel(["u2", "u1", "u1"], known) == []
    assert hll.novel(["u3", "u3"], None) == ["u3"]


def test_registers_must_be_the_size_of_a_hyperloglog():
    with pytest.raises(ValueError, match="16384"):
        hll.novel(["u1"], bytearray(10))
    with pytest.raises(BufferError):
        hll.raise_registers(bytes(hll.REGISTERS), ["u1"])  # not writable


def test_a_server_whose_hyperloglogs_are_not_redis_values_disagrees():
    """fakeredis keeps HyperLogLogs as sets: a replica on it sends every member."""
    store = StateStore(fakeredis.FakeRedis(), "hll", "events")
    assert store.hll_positions_agree() is False


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "not a HyperLogLog"),
        (b"HYLL\x07" + bytes(11), "encoding 7"),
        (b"HYLL\x01" + bytes(11), "exactly 16384"),
        (b"HYLL\x00" + bytes(11) + bytes(100), "dense HyperLogLog of 100 bytes"),
        (b"HYLL\x01" + bytes(11) + b"\x7f", "ends inside an opcode"),
    ],
)
def test_values_that_are_not_hyperloglogs_are_refused(value, message):
    with pytest.raises(ValueError, match=message):
        hll.decode_registers(value)


@given(st.binary(max_size=40))
def test_any_value_decodes_to_registers_or_a_clear_error(tail):
    for encoding in (b"\x00", b"\x01"):
        try:
            registers = hll.decode_registers(b"HYLL" + encoding + bytes(11) + tail)
        except ValueError:
            continue
        assert len(registers) == hll.REGISTERS
