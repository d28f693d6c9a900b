"""Reads a whole topic with confluent-kafka (an independent client, with its
own librdkafka) and prints one JSON line per record:
{"partition", "offset", "key", "value"} with value null for a tombstone.

Usage: python read_topic.py BROKERS TOPIC
"""
import json
import sys

from confluent_kafka import Consumer, KafkaError, TopicPartition

brokers, topic = sys.argv[1], sys.argv[2]
consumer = Consumer({
    "bootstrap.servers": brokers,
    "group.id": "wf-independent-reader",
    "enable.auto.commit": False,
    "enable.partition.eof": True,
})
metadata = consumer.list_topics(topic, timeout=10)
partitions = sorted(metadata.topics[topic].partitions)
pending = set()
assignment = []
for p in partitions:
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
    if high > low:
        pending.add(p)
        # OFFSET_BEGINNING, not 0: after compaction 0 may be below the low watermark.
        assignment.append(TopicPartition(topic, p, -2))
consumer.assign(assignment)
last = {}
while pending:
    message = consumer.poll(10)
    if message is None:
        sys.exit(f"no record or end of partition within 10 s; waiting for {sorted(pending)}")
    if message.error():
        if message.error().code() == KafkaError._PARTITION_EOF:
            pending.discard(message.partition())
            continue
        sys.exit(f"reading {topic}: {message.error()}")
    if last.get(message.partition(), -1) >= message.offset():
        continue  # a range delivered twice
    last[message.partition()] = message.offset()
    value = message.value()
    print(json.dumps({
        "partition": message.partition(),
        "offset": message.offset(),
        "key": message.key().decode("utf-8"),
        "value": None if value is None else value.decode("utf-8"),
    }))
consumer.close()
