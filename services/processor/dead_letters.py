"""The dead-letter topic: rejected records with why and where from, bounded in size.

Guarantees:
- A dead letter always fits the broker: a value over MAX_DEAD_LETTER_VALUE_BYTES
  (or a key over MAX_DEAD_LETTER_KEY_BYTES) is cut to the bound, and headers
  `dlq.original.size` and `dlq.original.sha256` (`dlq.original.key.size` and
  `dlq.original.key.sha256` for a key) describe what was cut. Smaller records
  go byte for byte.
- A produce error never escapes `send`. Transient delivery errors are retried
  a bounded number of times; others are logged with the source topic,
  partition and offset and counted in clickstream_dlq_produce_errors_total.
- `confirm` raises DeadLetterError unless Kafka acknowledged every dead letter,
  so the caller never moves the fence past a record whose dead letter is lost.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from functools import partial
from typing import Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from services.common.errors import PublishError
from services.common.kafka import produce
from services.common.logging import get_logger
from services.common.observability import DLQ_PRODUCE_ERRORS, DLQ_RECORDS

log = get_logger("processor.dead_letters")

# 64 KiB keeps every record that could have been an event (MAX_EVENT_BYTES is 16 KiB)
# and the start of any bigger one whole enough to debug, while a batch of dead letters
# stays far below the broker's default message.max.bytes (1 MiB) and its DLQ disk use
# bounded: an attacker's 1 MB records cost 64 KiB each there.
MAX_DEAD_LETTER_VALUE_BYTES: Final = 64 * 1024
# Keys are user ids (at most 128 characters when valid); a longer key is cut like a value.
MAX_DEAD_LETTER_KEY_BYTES: Final = 1024
MAX_DETAIL_CHARS: Final = 1000
# librdkafka already retries transient errors inside the idempotent producer until
# message.timeout.ms; these retries cover the errors it hands back anyway.
DELIVERY_ATTEMPTS: Final = 3
_TRANSIENT: Final = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


class DeadLetterError(PublishError):
    """The dead-letter topic did not confirm a record; its source offset must not be fenced."""


@dataclass
class DeadLetter:
    """One record as it goes to the dead-letter topic, with where it came from."""

    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    attempts: int = 0

    @classmethod
    def of(
        cls,
        message: Message,
        reason: str,
        detail: str,
        max_value_bytes: int = MAX_DEAD_LETTER_VALUE_BYTES,
        max_key_bytes: int = MAX_DEAD_LETTER_KEY_BYTES,
    ) -> DeadLetter:
        # backslashreplace: a detail may quote input, and input may hold lone surrogates.
        headers = [
            ("dlq.reason", reason.encode()),
            ("dlq.detail", detail[:MAX_DETAIL_CHARS].encode("utf-8", "backslashreplace")),
            ("dlq.source.topic", message.topic().encode()),
            ("dlq.source.partition", str(message.partition()).encode()),
            ("dlq.source.offset", str(message.offset()).encode()),
        ]
        value = _bounded(message.value(), max_value_bytes, "dlq.original", headers)
        key = _bounded(message.key(), max_key_bytes, "dlq.original.key", headers)
        return cls(
            message.topic(), message.partition(), message.offset(), reason, key, value, headers
        )


def _bounded(
    data: bytes | None, bound: int, header: str, headers: list[tuple[str, bytes]]
) -> bytes | None:
    if data is None or len(data) <= bound:
        return data
    headers.append((f"{header}.size", str(len(data)).encode()))
    headers.append((f"{header}.sha256", hashlib.sha256(data).hexdigest().encode()))
    return data[:bound]


class DeadLetters:
    def __init__(
        self,
        producer: Producer,
        topic: str,
        max_value_bytes: int = MAX_DEAD_LETTER_VALUE_BYTES,
    ):
        self.producer = producer
        self.topic = topic
        self.max_value_bytes = max_value_bytes
        self._failures: list[str] = []
        self._retries: list[DeadLetter] = []

    def send(self, message: Message, reason: str, detail: str) -> None:
        """Queue one rejected record for the dead-letter topic; errors surface in confirm()."""
        self._produce(DeadLetter.of(message, reason, detail, self.max_value_bytes))
        DLQ_RECORDS.labels(reason).inc()

    def confirm(self, timeout_s: float = 30.0) -> None:
        """Wait until every record sent so far is acknowledged, or raise DeadLetterError.

        1. Flush, serving delivery reports.
        2. Produce again the dead letters that failed with a transient error and
           have attempts left; back to 1 while time is left.
        3. Raise if anything is unconfirmed or failed for good.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = self.producer.flush(max(deadline - time.monotonic(), 0.0))
            retries, self._retries = self._retries, []
            if not retries or remaining or time.monotonic() >= deadline:
                self._failures += [f"{letter.reason} gave up after retries" for letter in retries]
                break
            for letter in retries:
                self._produce(letter)
        if remaining or self._failures:
            failures, self._failures = self._failures, []
            raise DeadLetterError(
                f"dead-letter topic {self.topic}: {remaining} unconfirmed, "
                f"{len(failures)} failed ({failures[:3]})"
            )

    def _produce(self, letter: DeadLetter) -> None:
        letter.attempts += 1
        try:
            produce(
                self.producer,
                self.topic,
                letter.value,
                key=letter.key,
                headers=letter.headers,
                on_delivery=partial(self._on_delivery, letter),
            )
        except KafkaException as error:  # refused before it left: too large, bad config
            self._failed(letter, error.args[0])
        except PublishError as error:  # the local queue stayed full: the broker is away
            self._failed(letter, KafkaError(KafkaError._QUEUE_FULL, str(error)))

    def _on_delivery(self, letter: DeadLetter, error: KafkaError | None, _message: Message) -> None:
        if error is None:
            return
        if letter.attempts < DELIVERY_ATTEMPTS and (
            error.retriable() or error.code() in _TRANSIENT
        ):
            self._retries.append(letter)
            return
        self._failed(letter, error)

    def _failed(self, letter: DeadLetter, error: KafkaError) -> None:
        DLQ_PRODUCE_ERRORS.labels(error.name()).inc()
        log.error(
            "dead letter not delivered",
            dlq_topic=self.topic,
            topic=letter.source_topic,
            partition=letter.source_partition,
            offset=letter.source_offset,
            reason=letter.reason,
            size=len(letter.value or b""),
            attempts=letter.attempts,
            error=str(error),
        )
        self._failures.append(
            f"{letter.source_topic}/{letter.source_partition}@{letter.source_offset}: "
            f"{error.name()}"
        )
