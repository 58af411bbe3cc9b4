"""Reads a topic with Confluent's own Python client and Avro deserializer, through a schema
registry, and prints each value as one JSON line: an implementation of the Confluent wire format
that is not Ebb's (test/kafka/run.test.ts). Usage: confluent_read.py BOOTSTRAP TOPIC REGISTRY N"""
import datetime
import json
import sys
import time
import uuid

from confluent_kafka import DeserializingConsumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer

bootstrap, topic, registry, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
consumer = DeserializingConsumer({
    'bootstrap.servers': bootstrap,
    'group.id': f'confluent-read-{uuid.uuid4()}',
    'auto.offset.reset': 'earliest',
    'isolation.level': 'read_committed',
    'enable.auto.commit': False,
    'value.deserializer': AvroDeserializer(SchemaRegistryClient({'url': registry})),
})


def plain(v):
    # timestamp-millis fields decode to datetimes: back to epoch millis, as the schema stores them
    if isinstance(v, datetime.datetime):
        return round(v.timestamp() * 1000)
    return str(v)


consumer.subscribe([topic])
seen = 0
deadline = time.time() + 60
while seen < expected and time.time() < deadline:
    msg = consumer.poll(1.0)
    if msg is None:
        continue
    if msg.error():
        raise SystemExit(f'consumer error: {msg.error()}')
    print(json.dumps(msg.value(), default=plain), flush=True)
    seen += 1
consumer.close()
