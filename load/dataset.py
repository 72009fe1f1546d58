"""The dataset file: gzip-compressed JSON lines, one Kafka record per line.

Each line keeps what a replay needs to reproduce the record byte for byte:

    {"at": 1729938601.0, "k": "user_42", "e": {"event_id": ...}, "t": 1729938600.5,
     "kind": "valid"}

- `e`: the value itself when it is one JSON document on one line without
  surrounding whitespace: embedded verbatim, so it is both readable and the
  exact bytes (msgspec.Raw hands those bytes to the producer with no copy).
- `v`: any other value as a JSON string when it is UTF-8, else `v64` in base64;
  all three absent for a null value, `"v": ""` for an empty one. Malformed
  values (not JSON, empty, oversized) are kept exactly as they were produced.
- `k`: the key as text when it is UTF-8, else `k64` in base64; absent for null.
- `t`: the event time (epoch seconds) of a valid event, null for a record that
  does not decode.
- `at`: when the record arrived in the original stream (epoch seconds,
  non-decreasing along the file); `--speed` replays follow it.
- `kind`: what the generator planted (`valid`, `out_of_order`, `late`, `too_late`
  or a rejection reason such as `not_json`); absent in recorded files.

Next to a generated dataset, `<name>.truth.json` holds the expected per-window
aggregates (see load.truth).
"""

from __future__ import annotations

import base64
import gzip
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from queue import Full, Queue

import msgspec

# Rejection reasons planted on purpose, and the event kinds that are counted or dropped.
VALID, OUT_OF_ORDER, LATE, TOO_LATE = "valid", "out_of_order", "late", "too_late"
COUNTED_KINDS = (VALID, OUT_OF_ORDER, LATE)
EVENT_KINDS = (*COUNTED_KINDS, TOO_LATE)

COMPRESSED_READ_BYTES = 2 * 1024 * 1024  # about 10 MB of lines, some 25,000 records


@dataclass(slots=True)
class Record:
    """One record of a dataset: raw key and value plus what the file says about it."""

    key: bytes | None
    value: bytes | None
    event_time: float | None = None
    arrival: float = 0.0
    kind: str | None = None


_NO_RAW = msgspec.Raw(b"")


class _Line(msgspec.Struct, omit_defaults=True):
    at: float = 0.0
    k: str | None = None
    k64: str | None = None
    e: msgspec.Raw = _NO_RAW
    v: str | None = None
    v64: str | None = None
    t: float | None = None
    kind: str | None = None


_line_decoder = msgspec.json.Decoder(_Line)
_line_encoder = msgspec.json.Encoder()


def truth_path(dataset: Path) -> Path:
    """`data/x.jsonl.gz` -> `data/x.truth.json`."""
    name = dataset.name
    for suffix in (".jsonl.gz", ".json.gz", ".gz", ".jsonl"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return dataset.with_name(f"{name}.truth.json")


def _text_or_b64(raw: bytes | None) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, base64.b64encode(raw).decode("ascii")


def _embeddable(value: bytes) -> bool:
    """True if `value` is one JSON document whose bytes survive verbatim inside a line."""
    if not value or value[:1].isspace() or value[-1:].isspace():
        return False
    if b"\n" in value or b"\r" in value:
        return False
    try:
        msgspec.json.decode(value)
    except (msgspec.DecodeError, RecursionError):  # poison nests deeper than a decoder goes
        return False
    return True


def encode_line(record: Record) -> bytes:
    k, k64 = _text_or_b64(record.key)
    e, v, v64 = _NO_RAW, None, None
    if record.value is not None and _embeddable(record.value):
        e = msgspec.Raw(record.value)
    else:
        v, v64 = _text_or_b64(record.value)
    line = _Line(
        at=record.arrival, k=k, k64=k64, e=e, v=v, v64=v64, t=record.event_time, kind=record.kind
    )
    # omit_defaults drops null fields: a null value is an absent "v", while an
    # empty value is "v": "" (Kafka keeps the two apart).
    return _line_encoder.encode(line)


def _key(line: _Line) -> str | bytes | None:
    return base64.b64decode(line.k64) if line.k64 is not None else line.k


def _value(line: _Line) -> msgspec.Raw | bytes | None:
    if line.e:
        return line.e
    if line.v64 is not None:
        return base64.b64decode(line.v64)
    return None if line.v is None else line.v.encode()


def _decode_line(line: _Line) -> Record:
    key, value = _key(line), _value(line)
    return Record(
        key.encode() if isinstance(key, str) else key,
        bytes(value) if isinstance(value, msgspec.Raw) else value,
        line.t,
        line.at,
        line.kind,
    )


def write(path: Path, records: Iterable[Record], compresslevel: int = 3) -> int:
    """Write records as gzip JSON lines; returns how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wb", compresslevel=compresslevel) as out:
        batch: list[bytes] = []
        for record in records:
            batch.append(encode_line(record))
            written += 1
            if len(batch) >= 10_000:
                out.write(b"\n".join(batch) + b"\n")
                batch.clear()
        if batch:
            out.write(b"\n".join(batch) + b"\n")
    tmp.replace(path)  # a crashed run never leaves a half-written dataset behind
    return written


def _inflate(path: Path) -> Iterator[bytes]:
    """The decompressed bytes of a gzip file (several members allowed), in large pieces.

    zlib directly rather than GzipFile: one C call per compressed megabyte, which
    releases the GIL for the whole of it, instead of many small Python-level reads.
    """
    with path.open("rb") as source:
        inflater = zlib.decompressobj(wbits=31)
        while True:
            compressed = source.read(COMPRESSED_READ_BYTES)
            if not compressed:
                break
            while compressed:
                yield inflater.decompress(compressed)
                if not inflater.eof:
                    break
                compressed = inflater.unused_data  # the next gzip member starts here
                inflater = zlib.decompressobj(wbits=31)
        yield inflater.flush()


def _blocks(path: Path) -> Iterator[bytes | memoryview]:
    """The decompressed file in blocks of whole lines, sliced without copying."""
    carry = b""
    for piece in _inflate(path):
        first = piece.find(b"\n") + 1
        if not first:
            carry += piece
            continue
        yield carry + piece[:first]  # the one line that straddles two pieces
        last = piece.rfind(b"\n") + 1
        if last > first:
            yield memoryview(piece)[first:last]
        carry = piece[last:]
    if carry.strip():
        yield carry


def _read_ahead(
    blocks: Iterator[bytes | memoryview], depth: int = 8
) -> Iterator[bytes | memoryview]:
    """Decompress on a helper thread: zlib releases the GIL, so it overlaps the consumer's work.

    zlib takes the GIL back between output blocks; a short switch interval
    (see load.replay) keeps the busy consumer thread from starving it.
    """
    queue: Queue[bytes | memoryview | BaseException | None] = Queue(maxsize=depth)
    stop = threading.Event()

    def fill() -> None:
        try:
            for block in blocks:
                while not stop.is_set():
                    try:
                        queue.put(block, timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(None)
        except BaseException as error:  # handed to the reading thread, raised there
            queue.put(error)

    thread = threading.Thread(target=fill, name="dataset-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _line_chunks(path: Path) -> Iterator[list[_Line]]:
    for block in _read_ahead(_blocks(path)):
        yield _line_decoder.decode_lines(block)


def read_chunks(path: Path) -> Iterator[list[Record]]:
    """The file's records in order, a few thousand at a time (bounded memory)."""
    for lines in _line_chunks(path):
        yield [_decode_line(line) for line in lines]


@dataclass(slots=True)
class Columns:
    """A chunk of records as parallel lists, ready for produce(): the replay's fast path.

    Keys may be str (the producer encodes UTF-8) and values msgspec.Raw (a
    buffer over the file's bytes), so nothing is copied per record.
    """

    keys: list[str | bytes | None]
    values: list[msgspec.Raw | bytes | None]
    arrivals: list[float]
    kinds: list[str | None]


_get_k, _get_k64 = attrgetter("k"), attrgetter("k64")
_get_at, _get_kind = attrgetter("at"), attrgetter("kind")


def read_columns(path: Path) -> Iterator[Columns]:
    for lines in _line_chunks(path):
        keys = list(map(_get_k, lines))
        if any(map(_get_k64, lines)):  # rare: keys that are not UTF-8
            keys = [_key(line) for line in lines]
        yield Columns(
            keys,
            [line.e or _value(line) for line in lines],
            list(map(_get_at, lines)),
            list(map(_get_kind, lines)),
        )


def read(path: Path) -> list[Record]:
    return [record for chunk in read_chunks(path) for record in chunk]
