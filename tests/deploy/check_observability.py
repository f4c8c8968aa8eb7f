#!/usr/bin/env python3
"""deploy/observability checked against the engine's metric catalogue (label `observe`).

Every series the Grafana dashboard and the Prometheus alert rules read must be a family of
engine/observe/catalogue.cpp (histograms through their _bucket/_sum/_count series), and every label
they match or group by must be one of that family's labels. The dashboard must show what the
original system promised operators. `promtool check rules` (Debian package prometheus, installed by
tools/dev setup) checks the rules file; without promtool the script exits 77 (skipped).
"""
import argparse
import json
import re
import shutil
import subprocess
import sys

import yaml

# Labels PromQL itself adds or that every family has in a scrape.
ALWAYS = {"le", "job", "instance", "__name__"}


def catalogue(path):
    text = open(path, encoding="utf-8").read()
    families = {}
    for name, kind, labels in re.findall(r'\{"([a-z_]+)", "(counter|gauge|histogram)", "([a-z_,]*)"', text):
        families[name] = (kind, set(filter(None, labels.split(","))))
    if len(families) < 15:
        sys.exit(f"FAIL: only {len(families)} families read from {path}: has its format changed?")
    return families


def family_of(series, families):
    name = series[len("spillway_"):]
    if name in families:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)] if name.endswith(suffix) else None
        if base and families.get(base, ("",))[0] == "histogram":
            return base
    return None


def check_expr(where, expr, families, used):
    problems = []
    for series, matchers in re.findall(r"\b(spillway_[a-z_]+)(\{[^}]*\})?", expr):
        family = family_of(series, families)
        if not family:
            problems.append(f"{where}: {series} is not in the engine's metric catalogue")
            continue
        used.add(family)
        allowed = families[family][1] | ALWAYS
        for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers or ""):
            if label not in allowed:
                problems.append(f"{where}: {series} has no label {label} (it has: {', '.join(sorted(families[family][1]))})")
    # Grouping labels must exist on some family the expression reads.
    known = set().union(*(families[f][1] for f in used)) | ALWAYS if used else ALWAYS
    for group in re.findall(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)", expr):
        for label in filter(None, (l.strip() for l in group.split(","))):
            if label not in known:
                problems.append(f"{where}: groups by {label}, which no family it reads has")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help="deploy/observability")
    ap.add_argument("--catalogue", required=True, help="engine/observe/catalogue.cpp")
    a = ap.parse_args()
    families = catalogue(a.catalogue)
    problems, used = [], set()

    dashboard = json.load(open(f"{a.dir}/grafana-dashboard.json", encoding="utf-8"))
    titles = set()
    for panel in dashboard["panels"]:
        titles.add(panel["title"])
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"dashboard panel '{panel['title']}' has no query")
        for t in targets:
            problems += check_expr(f"dashboard panel '{panel['title']}'", t["expr"], families, used)
    # What the original system promised operators (and the issue lists): each needs its panel.
    promised = {
        "publish rate by path": "publish_total",
        "outbox depth": "outbox_pending",
        "oldest pending age": "outbox_oldest_age_seconds",
        "relay delivery delay": "outbox_delay_seconds",
        "relay wake-ups": "relay_wakeups_total",
        "circuit state": "circuit_state",
        "dead letters": "dead_letters_total",
        "poll interval": "relay_interval_seconds",
    }
    for what, family in promised.items():
        if family not in used:
            problems.append(f"the dashboard shows no {what} (spillway_{family})")

    rules = yaml.safe_load(open(f"{a.dir}/alerts.yml", encoding="utf-8"))
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    for r in alerts:
        problems += check_expr(f"alert {r['alert']}", r["expr"], families, set())
        if not r.get("annotations", {}).get("summary"):
            problems.append(f"alert {r['alert']} has no summary")
    names = {r["alert"] for r in alerts}
    for needed in ("SpillwayKafkaDown", "SpillwayOutboxGrowing", "SpillwayOldestPendingTooOld", "SpillwayDeadLetters",
                   "SpillwayCircuitOpenTooLong", "SpillwayRelayStalled"):
        if needed not in names:
            problems.append(f"no alert {needed}")

    if problems:
        print("FAIL:\n  " + "\n  ".join(problems))
        return 1
    print(f"ok: {len(dashboard['panels'])} panels and {len(alerts)} alerts read {len(used)} catalogue families")

    promtool = shutil.which("promtool")
    if not promtool:
        print("SKIPPED: promtool not found; install the Debian package prometheus (tools/dev setup does)")
        return 77
    r = subprocess.run([promtool, "check", "rules", f"{a.dir}/alerts.yml"], capture_output=True, text=True)
    print(r.stdout + r.stderr)
    return 0 if r.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
