#!/usr/bin/env python3
"""An outside telemetry sender in the shape of the integration seed's Observatory exporter
(requests, a bearer key, single events and {"events": [...]} batches). It sends a JSONL trace:
the first events one by one, the rest in batches, one batch gzipped; then the faults a sender
can make, each of which must be refused whole and lose nothing else. It prints what it saw as
one JSON object.

Usage: telemetry_exporter.py BASE_URL TRACE.jsonl --key KEY [--singles N] [--batch N]
"""
import argparse
import gzip
import json
import sys

import requests


class SentinelExporter:
    def __init__(self, sentinel_url, api_key):
        self.sentinel_url = sentinel_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({
            "Content-Type": "application/json",
            "Authorization": f"Bearer {api_key}",
        })

    def export_event(self, event):
        response = self.session.post(f"{self.sentinel_url}/api/v1/telemetry/events", json=event, timeout=30)
        response.raise_for_status()
        return response.json()

    def export_batch(self, events, gzipped=False):
        endpoint = f"{self.sentinel_url}/api/v1/telemetry/batch"
        if not gzipped:
            response = self.session.post(endpoint, json={"events": events}, timeout=60)
        else:
            body = gzip.compress(json.dumps({"events": events}).encode())
            response = self.session.post(endpoint, data=body, headers={"Content-Encoding": "gzip"}, timeout=60)
        response.raise_for_status()
        return response.json()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("trace")
    parser.add_argument("--key", required=True)
    parser.add_argument("--singles", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    with open(args.trace) as f:
        events = [json.loads(line) for line in f if line.strip()]
    exporter = SentinelExporter(args.url, args.key)
    seen = {"sent": len(events), "accepted": 0, "rejected": 0, "requests": 0}

    def count(answer):
        seen["accepted"] += answer["accepted"]
        seen["rejected"] += answer["rejected"]
        seen["requests"] += 1

    for event in events[: args.singles]:
        count(exporter.export_event(event))
    # The last two events go in a batch of their own, among malformed ones, at the end.
    rest = events[args.singles : -2]
    for i in range(0, len(rest), args.batch):
        count(exporter.export_batch(rest[i : i + args.batch], gzipped=(i == 0)))

    # Faults: each answered with a clear status, none of them taking an event.
    url = args.url.rstrip("/")
    one = json.dumps(events[0]).encode()
    faults = {}
    faults["no_key"] = requests.post(f"{url}/api/v1/telemetry/events", data=one, timeout=30).status_code
    faults["wrong_key"] = requests.post(
        f"{url}/api/v1/telemetry/events", data=one, headers={"Authorization": "Bearer not-a-key-of-ours"}, timeout=30
    ).status_code
    bad_gzip = exporter.session.post(
        f"{url}/api/v1/telemetry/batch", data=b"\x1f\x8b not gzip", headers={"Content-Encoding": "gzip"}, timeout=30
    )
    faults["bad_gzip"] = bad_gzip.status_code
    faults["bad_gzip_error"] = bad_gzip.json()["error"]["code"]
    oversized = exporter.session.post(f"{url}/api/v1/telemetry/events", data=b" " * (2 * 1024 * 1024 + 1), timeout=30)
    faults["oversized"] = oversized.status_code
    seen["faults"] = faults

    # The trace's last two events among malformed ones: the good ones are taken, each bad one is
    # reported by its place and reason (and dead-lettered by the job).
    partial = exporter.export_batch([events[-2], {"event_type": "llm.request"}, "not an event", events[-1]])
    count(partial)
    seen["partial"] = partial
    print(json.dumps(seen))


if __name__ == "__main__":
    sys.exit(main())
