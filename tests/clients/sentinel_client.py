#!/usr/bin/env python3
"""An outside client of Sentinel's REST API, in the shape of the integration seed's Python
client (requests, a bearer key, ISO times): it pages through every anomaly, reads statistics,
acknowledges one anomaly and reads it back, and prints what it saw as one JSON object.

It also asks the GraphQL API the seed dashboard's anomalies query, fetches the anomaly rate as
the seed's get_metrics does, and, given test events, runs testDetector on them.

Usage: sentinel_client.py BASE_URL [--key KEY] [--test-detector DETECTOR EVENTS.json ...]
"""
import argparse
import json
import sys
from datetime import datetime, timedelta

import requests


class Client:
    def __init__(self, base_url, api_key=None):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Content-Type"] = "application/json"
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def _get(self, path, params):
        response = self.session.get(f"{self.base_url}{path}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def anomalies(self, start, end, severity=None, status=None, limit=100, offset=0):
        params = {"start": start.isoformat(), "end": end.isoformat(), "limit": limit, "offset": offset}
        if severity:
            params["severity"] = ",".join(severity)
        if status:
            params["status"] = ",".join(status)
        return self._get("/api/v1/anomalies", params)

    def statistics(self, start, end, group_by=None):
        params = {"start": start.isoformat(), "end": end.isoformat()}
        if group_by:
            params["group_by"] = ",".join(group_by)
        return self._get("/api/v1/statistics", params)

    def metrics(self, names, start, end, aggregation="avg", granularity="5m"):
        payload = {"metrics": names, "start": start.isoformat(), "end": end.isoformat(),
                   "aggregation": aggregation, "granularity": granularity}
        response = self.session.post(f"{self.base_url}/api/v1/metrics/query", json=payload, timeout=30)
        response.raise_for_status()
        return response.json()["series"]

    def graphql(self, query, variables):
        response = self.session.post(f"{self.base_url}/graphql", json={"query": query, "variables": variables}, timeout=60)
        response.raise_for_status()
        return response.json()

    def acknowledge(self, anomaly_id, by, note=None):
        response = self.session.post(
            f"{self.base_url}/api/v1/anomalies/{anomaly_id}/acknowledge",
            json={"acknowledged_by": by, "note": note},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()


GET_ANOMALIES = """
query GetAnomalies($filter: AnomalyFilter, $timeRange: TimeRange!, $pagination: Pagination) {
  anomalies(filter: $filter, timeRange: $timeRange, pagination: $pagination) {
    edges { node { id timestamp detectorId severity score status title description
                   affectedEntity { type id name } } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}"""

TEST_DETECTOR = """
mutation Test($id: ID!, $data: JSON!) {
  testDetector(id: $id, testData: $data) { detectorId eventsTested detected anomalies { id detectorId } }
}"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("--key")
    parser.add_argument("--test-detector", nargs="+", metavar=("DETECTOR", "EVENTS"), default=[])
    parser.add_argument("--metrics-url", help="a second Prometheus endpoint to scrape (run --metrics)")
    args = parser.parse_args()
    client = Client(args.base_url, args.key)
    # Naive times, as datetime.isoformat() gives them: read as UTC.
    start, end = datetime(2000, 1, 1), datetime(2100, 1, 1)
    ids, offset, total = [], 0, None
    while total is None or offset < total:
        page = client.anomalies(start, end, limit=250, offset=offset)
        total = page["total"]
        ids.extend(a["id"] for a in page["anomalies"])
        offset += len(page["anomalies"])
        if not page["anomalies"]:
            break
    critical = client.anomalies(start, end, severity=["critical"], status=["active"], limit=1)
    acknowledged = None
    if critical["anomalies"]:
        target = critical["anomalies"][0]["id"]
        acknowledged = client.acknowledge(target, "outside-client", note="seen by the seed's client")
    after = client.anomalies(start, end, status=["acknowledged"], limit=10)
    stats = client.statistics(start, end, group_by=["detector_id", "severity"])
    recent = client.anomalies(datetime.utcnow() - timedelta(hours=24), datetime.utcnow())
    gql = client.graphql(GET_ANOMALIES, {
        "timeRange": {"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"},
        "pagination": {"limit": 50},
    })
    rate = client.metrics(["anomaly_rate", "detection_latency_p99"], start, datetime(2000, 1, 2), granularity="1h")
    tests = []
    if args.test_detector:
        detector, files = args.test_detector[0], args.test_detector[1:]
        for path in files:
            with open(path) as f:
                events = json.load(f)
            tests.append(client.graphql(TEST_DETECTOR, {"id": detector, "data": events}))
    scrapes = [client.session.get(f"{client.base_url}/metrics", timeout=30)]
    if args.metrics_url:
        scrapes.append(requests.get(args.metrics_url, timeout=30))
    for scrape in scrapes:
        scrape.raise_for_status()
    print(json.dumps({
        "prometheus": [{"content_type": r.headers.get("Content-Type"), "text": r.text} for r in scrapes],
        "graphql": gql,
        "metrics": rate,
        "tests": tests,
        "ids": ids,
        "total": total,
        "critical_active": critical["total"],
        "acknowledged": acknowledged,
        "acknowledged_after": [a["id"] for a in after["anomalies"]],
        "statistics": stats,
        "last_24h_total": recent["total"],
    }))


if __name__ == "__main__":
    main()
