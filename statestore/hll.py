"""Redis' HyperLogLog registers, computed on the client.

PFADD hashes a member to one of 16384 registers and a rank, and raises that
register to the rank if it is lower; a member whose rank is not above its
register changes nothing. With the same arithmetic on the client
(statestore/_hll.c), a replica that knows a lower bound of a HyperLogLog's
registers can leave out members that would change nothing, and Redis ends with
exactly the same registers: the same counts, byte for byte.

That holds only if this server hashes as Redis does. `server_agrees` asks it,
with probe members whose registers it reads back (GET of a HyperLogLog is its
registers, in Redis' sparse or dense encoding); a server that disagrees (another
implementation of the protocol, a future Redis) gets every member, as does a
build without the C extension (`available`).
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

try:
    from statestore import _hll
except ImportError:  # built without a compiler: setup.py marks the extension optional
    _hll = None

REGISTERS = 16384
_HEADER = 16  # "HYLL", encoding, 3 unused bytes, 8 bytes of cached cardinality
_DENSE, _SPARSE = 0, 1
_BITS = 6  # per register, in the dense encoding
# Every tail length of the hash's 8-byte blocks (0-16 bytes), multi-byte UTF-8, and
# members shaped like the ids this pipeline counts.
PROBE_MEMBERS = (
    *("abcdefghijklmnopq"[:length] for length in range(17)),
    "user_4711",
    "sess_user_4711_3",
    "héllo wörld ✓",
    "𝄞 clef",
)


def available() -> bool:
    """Whether this build can compute registers (the C extension was built)."""
    return _hll is not None


def novel(members: Iterable[str], known: bytes | bytearray | None) -> list[str]:
    """The members that raise a register above `known` and above the members kept
    before them, in order; PFADD of the rest changes nothing once these are added."""
    return _hll.novel(members, known)


def raise_registers(registers: bytearray, members: Iterable[str]) -> None:
    """Raise `registers` as PFADD of `members` raises a HyperLogLog's."""
    _hll.raise_registers(registers, members)


def empty_registers() -> bytearray:
    return bytearray(REGISTERS)


def position(member: str | bytes) -> tuple[int, int]:
    """(register index, rank) that PFADD gives `member`."""
    return _hll.position(member)


def decode_registers(value: bytes) -> bytes:
    """The 16384 registers of a HyperLogLog, from its value as GET returns it."""
    if len(value) < _HEADER or value[:4] != b"HYLL":
        raise ValueError("not a HyperLogLog value")
    body = value[_HEADER:]
    if value[4] == _DENSE:
        return _dense(body)
    if value[4] == _SPARSE:
        return _sparse(body)
    raise ValueError(f"unknown HyperLogLog encoding {value[4]}")


def _dense(body: bytes) -> bytes:
    if len(body) != REGISTERS * _BITS // 8:
        raise ValueError(f"dense HyperLogLog of {len(body)} bytes")
    padded = body + b"\0"
    registers = bytearray(REGISTERS)
    for index in range(REGISTERS):
        byte, shift = divmod(index * _BITS, 8)
        registers[index] = ((padded[byte] | padded[byte + 1] << 8) >> shift) & 0x3F
    return bytes(registers)


def _sparse(body: bytes) -> bytes:
    registers = bytearray(REGISTERS)
    index = at = 0
    while at < len(body) and index < REGISTERS:
        opcode = body[at]
        if opcode & 0x80:  # VAL: 1vvvvvxx, a run of xx+1 registers of value vvvvv+1
            run, value = (opcode & 0x3) + 1, ((opcode >> 2) & 0x1F) + 1
            registers[index : index + run] = bytes([value]) * min(run, REGISTERS - index)
            at += 1
        elif opcode & 0x40:  # XZERO: 01xxxxxx yyyyyyyy, a run of zeros up to 16384
            if at + 1 >= len(body):
                raise ValueError("sparse HyperLogLog ends inside an opcode")
            run = ((opcode & 0x3F) << 8 | body[at + 1]) + 1
            at += 2
        else:  # ZERO: 00xxxxxx, a run of up to 64 zeros
            run = (opcode & 0x3F) + 1
            at += 1
        index += run
    if index != REGISTERS or at != len(body):
        raise ValueError(f"sparse HyperLogLog does not cover exactly {REGISTERS} registers")
    return bytes(registers)


def server_agrees(client: redis.Redis, probe_key: str) -> bool:
    """Whether PFADD on this server puts each probe member where `position` says."""
    pipe = client.pipeline(transaction=False)
    for member in PROBE_MEMBERS:
        pipe.delete(probe_key)
        pipe.pfadd(probe_key, member)
        pipe.get(probe_key)
    pipe.delete(probe_key)
    # A server error (say WRONGTYPE: HyperLogLogs are not strings there) is an answer
    # too, a disagreeing one; a connection error still raises, for the caller's retry.
    replies = pipe.execute(raise_on_error=False)
    for number, member in enumerate(PROBE_MEMBERS):
        value = replies[number * 3 + 2]
        try:
            registers = decode_registers(value)
        except (TypeError, ValueError):
            return False
        index, rank = position(member)
        expected = bytearray(REGISTERS)
        expected[index] = rank
        if registers != expected:
            return False
    return True
