"""The dead-letter topic: rejected records, byte for byte, with why and where from."""

from __future__ import annotations

from confluent_kafka import KafkaError, Message, Producer

from services.common.errors import PublishError
from services.common.kafka import produce
from services.common.observability import DLQ_RECORDS


class DeadLetterError(PublishError):
    """The dead-letter topic did not confirm a record; its source offset must not be fenced."""


class DeadLetters:
    def __init__(self, producer: Producer, topic: str):
        self.producer = producer
        self.topic = topic
        self._failures: list[str] = []

    def send(self, message: Message, reason: str, detail: str) -> None:
        headers = [
            ("dlq.reason", reason.encode()),
            ("dlq.detail", detail[:1000].encode()),
            ("dlq.source.topic", message.topic().encode()),
            ("dlq.source.partition", str(message.partition()).encode()),
            ("dlq.source.offset", str(message.offset()).encode()),
        ]
        produce(
            self.producer,
            self.topic,
            message.value(),
            key=message.key(),
            headers=headers,
            on_delivery=self._on_delivery,
        )
        DLQ_RECORDS.labels(reason).inc()

    def confirm(self, timeout_s: float = 30.0) -> None:
        """Wait until every record sent so far is acknowledged, or raise DeadLetterError."""
        remaining = self.producer.flush(timeout_s)
        if remaining or self._failures:
            failures, self._failures = self._failures, []
            raise DeadLetterError(
                f"dead-letter topic {self.topic}: {remaining} unconfirmed, "
                f"{len(failures)} failed ({failures[:3]})"
            )

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._failures.append(str(error))
