#!/usr/bin/python3
"""python_logger.py -- what a user writes instead of aimdb: an MQTT to
SQLite logger on paho-mqtt (Debian python3-paho-mqtt) and sqlite3, as a
competent user would write it.  bench_efficiency measures aimdb against it.

It keeps aimdb's history schema, so the same queries read both files, and
does the same work per message as aimdb's format=auto: a payload that is
JSON is stored as is, other text as a JSON string.  One thread: paho's
loop runs in short slices and the rows collected meanwhile are inserted
with executemany and committed every BATCH_ROWS rows or BATCH_S seconds,
in WAL mode with synchronous=NORMAL (aimdb's defaults).  SIGTERM commits
what is pending and exits.

    python_logger.py HOST PORT TOPIC-FILTER DATABASE

The record name is "bench::" and the first "+" segment of the topic, as
aimdb's rule "record bench::{1} bench/+/v persist" names it.  It prints
"subscribed" once the broker has acknowledged the subscription.
"""
import json
import signal
import sqlite3
import sys
import time

import paho.mqtt.client as mqtt

BATCH_ROWS = 1000
BATCH_S = 1.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS record_history(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    record_name TEXT NOT NULL,
    value_json TEXT NOT NULL,
    stored_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_record_time ON record_history(record_name, stored_at DESC);
"""


def open_history(path):
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    return db


def commit(db, rows):
    """Insert the rows collected in one transaction and empty the list."""
    if rows:
        db.executemany(
            "INSERT INTO record_history(record_name, value_json, stored_at) VALUES (?, ?, ?)",
            rows)
        db.commit()
        rows.clear()


def as_json(payload):
    """The payload as history JSON: JSON as is, other text quoted."""
    text = payload.decode("utf-8", "replace")
    try:
        json.loads(text)
        return text
    except ValueError:
        return json.dumps(text)


def main():
    host, port, topic_filter, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    db = open_history(path)
    rows = []
    running = True

    def on_connect(client, userdata, flags, rc):
        client.subscribe(topic_filter, qos=1)

    def on_subscribe(client, userdata, mid, granted_qos):
        print("subscribed", flush=True)

    def on_message(client, userdata, msg):
        name = "bench::" + msg.topic.split("/")[1]
        rows.append((name, as_json(msg.payload), int(time.time() * 1000)))

    def stop(signo, frame):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    client = mqtt.Client(client_id="python-logger")
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port)

    last_commit = time.monotonic()
    while running:
        client.loop(timeout=0.1)
        now = time.monotonic()
        if len(rows) >= BATCH_ROWS or (rows and now - last_commit >= BATCH_S):
            commit(db, rows)
            last_commit = now
    commit(db, rows)
    client.disconnect()
    db.close()


if __name__ == "__main__":
    main()
