#!/usr/bin/env python3
"""Every panel of deploy/observability's dashboard moves during the quickstart (label `observe`).

Runs tools/quickstart.sh (mock Kafka, SQLite outbox, the real `spillway run`) with a /metrics
scrape saved per step, parses each scrape with prometheus_client's exposition parser (Debian
package python3-prometheus-client), and checks that for every panel some series it reads changed
from the first scrape (taken once the engine is ready) to a later one, or appeared. The panels a
healthy outage cannot move (nothing is rejected, the in-process doorbell cannot fail, nothing goes
FATAL) must still be drawn: their series are in the scrape, at 0.
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # tools/dev setup installs python3-prometheus-client
    print("prometheus_client not found (Debian package python3-prometheus-client): skipped")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_observability import catalogue, family_of  # noqa: E402

STEPS = ["start", "up", "down", "paused", "drained", "after"]
FLAT_BY_DESIGN = {
    "Dead letters": "the quickstart's Kafka rejects nothing",
    "Doorbell failures and sink rebuilds": "the in-process doorbell cannot fail and the sink never reports FATAL",
}


# What the quickstart's steps must read, as scraped (its pipeline `essays`, N = 25 events a phase):
# step, sample, labels it must carry, test, and what the test says.
N = 25
VALUES = [
    ("up", "spillway_publish_total", {"path": "direct"}, lambda v: v == N, "the up phase went direct"),
    ("up", "spillway_publish_total", {"path": "refused", "reason": "invalid"}, lambda v: v == 1, "one refused topic"),
    ("up", "spillway_circuit_state", {}, lambda v: v == 0, "the circuit is closed"),
    ("down", "spillway_circuit_state", {}, lambda v: v == 1, "Kafka down opens the circuit"),
    ("down", "spillway_outbox_pending", {}, lambda v: v == N, "the down phase spilled"),
    ("down", "spillway_outbox_oldest_age_seconds", {}, lambda v: v > 0, "the oldest row has an age"),
    ("paused", "spillway_relay_paused", {}, lambda v: v == 1, "the admin API paused the relay"),
    ("paused", "spillway_outbox_pending", {}, lambda v: v == N, "nothing left while paused"),
    ("drained", "spillway_relay_paused", {}, lambda v: v == 0, "resumed"),
    ("drained", "spillway_outbox_pending", {}, lambda v: v == 0, "the relay drained the outbox"),
    ("after", "spillway_relay_published_total", {}, lambda v: v == N, "one per spilled event"),
    ("drained", "spillway_outbox_delay_seconds_count", {}, lambda v: v == N, "one delivery delay per relayed event"),
    ("drained", "spillway_dead_letters_total", {}, lambda v: v == 0, "nothing parked"),
    ("after", "spillway_circuit_state", {}, lambda v: v == 0, "closed again"),
    ("after", "spillway_delivery_age_seconds_count", {"path": "outbox"}, lambda v: v == N, "outbox events' ages"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse(path):
    """{(sample name, sorted labels): value} of one scrape."""
    samples = {}
    with open(path, encoding="utf-8") as f:
        for family in text_string_to_metric_families(f.read()):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, help="the source tree (tools/quickstart.sh, deploy/observability)")
    ap.add_argument("--build", required=True, help="the build tree (bin/spillway, bin/mock-kafka, plugins)")
    a = ap.parse_args()
    families = catalogue(f"{a.root}/engine/observe/catalogue.cpp")
    dashboard = json.load(open(f"{a.root}/deploy/observability/grafana-dashboard.json", encoding="utf-8"))

    with tempfile.TemporaryDirectory() as scrapes:
        env = dict(os.environ, QUICKSTART_METRICS_DIR=scrapes, QUICKSTART_PORT=str(free_port()))
        run = subprocess.run(["bash", f"{a.root}/tools/quickstart.sh", a.build], env=env, capture_output=True,
                             text=True, timeout=240)
        if run.returncode != 0:
            sys.exit(f"FAIL: the quickstart exited {run.returncode}\n{run.stdout}\n{run.stderr}")
        missing = [s for s in STEPS if not os.path.exists(f"{scrapes}/{s}.prom")]
        if missing:
            sys.exit(f"FAIL: no scrape for step(s) {', '.join(missing)}\n{run.stdout}\n{run.stderr}")
        scraped = [parse(f"{scrapes}/{s}.prom") for s in STEPS]

    problems = []
    for panel in dashboard["panels"]:
        title = panel["title"]
        # What the panel selects: a family and the labels its exact matchers fix ({path="refused"}).
        selectors = []
        for t in panel.get("targets") or []:
            for series, matchers in re.findall(r"\b(spillway_[a-z_]+)(\{[^}]*\})?", t["expr"]):
                if family_of(series, families):
                    exact = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"', matchers or ""))
                    selectors.append((family_of(series, families), exact))
        reads = {family for family, _ in selectors}

        def mine(key):
            labels = dict(key[1])
            return any(family_of(key[0], families) == family and all(labels.get(k) == v for k, v in exact.items())
                       for family, exact in selectors)

        moved, drawn = {}, False  # moved: series name -> the first step it differed from the start
        for i, scrape in enumerate(scraped):
            for key, value in scrape.items():
                if not mine(key):
                    continue
                drawn = drawn or i == len(scraped) - 1
                if i > 0 and scraped[0].get(key) != value:
                    moved.setdefault(key[0], STEPS[i])
        if title in FLAT_BY_DESIGN:
            state = "drawn at 0" if drawn else "NOT DRAWN"
            print(f"{title:45} {state}: {FLAT_BY_DESIGN[title]}")
            if not drawn:
                problems.append(f"panel '{title}': none of {sorted(reads)} is in the last scrape")
            continue
        shown = ", ".join(f"{name} ({step})" for name, step in list(moved.items())[:3])
        print(f"{title:45} {'moved: ' + shown if moved else 'DID NOT MOVE'}")
        if not moved:
            problems.append(f"panel '{title}' did not move during the quickstart (it reads {sorted(reads)})")
    for step, name, labels, test, what in VALUES:
        scrape = scraped[STEPS.index(step)]
        values = [v for (n, l), v in scrape.items() if n == name and all(dict(l).get(k) == x for k, x in labels.items())]
        total = sum(values) if values else None
        ok = total is not None and test(total)
        print(f"{step:8} {name}{labels or ''} = {total}: {what} {'ok' if ok else 'WRONG'}")
        if not ok:
            problems.append(f"at '{step}', {name}{labels or ''} is {total}: expected {what}")
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
