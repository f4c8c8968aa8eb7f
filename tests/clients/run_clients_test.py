#!/usr/bin/env python3
"""Runs the snippets of docs/clients.md as a reader would, and checks what reaches Kafka.

The code is taken from the doc itself: each fenced block after a `<!-- clients-test: NAME -->`
line, so the doc cannot drift from what is tested. Against it: a real `spillway run` with the
pipelines of tests/clients/clients.toml, librdkafka's mock Kafka cluster (tools/mock-kafka), a
SQLite outbox, and a throwaway PostgreSQL this script starts on a loopback port. Records are read
back with kcat.

The HTTP clients talk to the engine through a stand-in server that answers by a script first (a
503, a dropped connection, an answer lost after the engine accepted, a batch partly accepted) and
then forwards: it records every request, so the test sees each retry and the event ids it carried.

Python and curl always run; Go only when `go` is on PATH (otherwise a SKIPPED line, and the rest
runs). Exit 0 on success, 1 with a message on the first failed check.
"""
import argparse
import ctypes
import http.client
import http.server
import json
import os
import pwd
import re
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SNIPPETS = ["python", "go", "curl-event", "curl-batch", "pg-trigger", "pg-insert", "pg-notify", "sqlite-insert"]
STARTED = time.monotonic()


def log(message):
    print(f"[{time.monotonic() - STARTED:6.2f}s] {message}", flush=True)


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def wait_for(predicate, timeout, what):
    """Polls predicate until it returns something truthy; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_setup(user=None, death_signal=signal.SIGKILL):
    """For Popen(preexec_fn=...): drop to `user` (PostgreSQL refuses root), then die with us."""
    def setup():
        if user is not None:
            os.setgid(user.pw_gid)
            os.setgroups([])
            os.setuid(user.pw_uid)
        # PR_SET_PDEATHSIG, set after the uid change (which clears it): nothing outlives the test.
        ctypes.CDLL(None, use_errno=True).prctl(1, int(death_signal), 0, 0, 0)
    return setup


def snippets_of(doc_path):
    text = open(doc_path, encoding="utf-8").read()
    found = {}
    for name, code in re.findall(r"<!-- clients-test: ([\w-]+) -->\n```\w+\n(.*?)\n```", text, re.S):
        check(name not in found, f"{doc_path}: two snippets named {name}")
        found[name] = code + "\n"
    missing = [n for n in SNIPPETS if n not in found]
    check(not missing, f"{doc_path}: no snippet marked <!-- clients-test: NAME --> for {missing}")
    return found


class Processes:
    """Children to stop at the end, newest first."""

    def __init__(self):
        self.children = []

    def add(self, proc, stop_signal=signal.SIGTERM, before=None):
        self.children.append((proc, stop_signal, before))
        return proc

    def stop_all(self):
        for proc, stop_signal, before in reversed(self.children):
            if proc.poll() is not None:
                continue
            try:
                if before:
                    before(proc)
                    proc.wait(timeout=5)
                else:
                    proc.send_signal(stop_signal)
                    proc.wait(timeout=15)
            except Exception:  # noqa: BLE001 - stopping is best effort; kill what does not stop
                proc.kill()
                proc.wait()


def start_mock_kafka(binary, work, procs):
    proc = procs.add(subprocess.Popen([binary, "--brokers", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=open(os.path.join(work, "mock-kafka.log"), "w"), text=True,
                                      preexec_fn=child_setup()),
                     before=lambda p: (p.stdin.write("quit\n"), p.stdin.flush()))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("bootstrap.servers="):
                return line.strip().split("=", 1)[1]
            check(line, "mock-kafka exited before printing bootstrap.servers")
    raise Failed("mock-kafka printed no bootstrap.servers= within 15 s")


def start_postgres(work, procs):
    """A PostgreSQL 15 of its own on a free loopback port, as tests/support does it; returns the port."""
    user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    pg_dir = os.path.join(work, "pg")
    os.mkdir(pg_dir, 0o700)
    if user:
        os.chmod(work, 0o755)  # the server's user must reach pg_dir
        os.chown(pg_dir, user.pw_uid, user.pw_gid)
    data = os.path.join(pg_dir, "data")
    initdb = subprocess.run([f"{PG_BIN}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                             "--locale=C.UTF-8", "--no-sync"], cwd="/", capture_output=True, text=True,
                            preexec_fn=child_setup(user))
    check(initdb.returncode == 0, f"initdb failed:\n{initdb.stdout}{initdb.stderr}")
    port = free_port()
    server_log = os.path.join(pg_dir, "server.log")
    server = procs.add(subprocess.Popen(
        [f"{PG_BIN}/postgres", "-D", data, "-p", str(port), "-k", pg_dir, "-c", "listen_addresses=127.0.0.1",
         "-c", "fsync=off", "-c", "full_page_writes=off"],
        cwd="/", stdout=subprocess.DEVNULL, stderr=open(server_log, "w"),
        preexec_fn=child_setup(user, signal.SIGQUIT)), signal.SIGINT)

    def ready():
        check(server.poll() is None, f"postgres exited: {open(server_log).read()[-2000:]}")
        return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode == 0
    wait_for(ready, 30, "PostgreSQL to accept connections")
    return port


def psql(port, sql=None, file=None, db="app"):
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
            "-d", db]
    args += ["-f", file] if file else ["-c", sql]
    result = subprocess.run(args, capture_output=True, text=True)
    check(result.returncode == 0, f"psql {file or sql!r} failed: {result.stderr}")
    return result.stdout.strip()


class Kafka:
    def __init__(self, brokers):
        self.brokers = brokers

    def records(self, topic):
        """Every record of the topic now (kcat -J); [] while the topic does not exist yet."""
        result = subprocess.run(["kcat", "-b", self.brokers, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-J",
                                 "-X", "topic.metadata.refresh.interval.ms=100"],
                                capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            return []
        records = []
        for line in result.stdout.splitlines():
            if line.strip():
                record = json.loads(line)
                flat = record.get("headers") or []
                record["header_list"] = list(zip(flat[0::2], flat[1::2]))
                records.append(record)
        return records

    def by_event_id(self, topic, event_ids, copies=None):
        """Waits until every id in event_ids has its copies (default 1) on topic; returns {id: [records]}."""
        copies = copies or {}

        def enough():
            found = {}
            for record in self.records(topic):
                headers = record["header_list"]
                check(headers and headers[0][0] == "event_id",
                      f"a record on {topic} whose first header is not event_id: {record}")
                found.setdefault(headers[0][1], []).append(record)
            if all(len(found.get(i, [])) >= copies.get(i, 1) for i in event_ids):
                return found
            return None
        return wait_for(enough, 15, f"{len(event_ids)} event id(s) on {topic}: {sorted(event_ids)}")


class StandIn:
    """An HTTP server in front of the engine. Each request takes the next action of the script:

    "503"      answer 503 + Retry-After: 1 with every event refused as `unavailable` (nothing forwarded)
    "lost"     forward to the engine (which accepts), then close the connection without an answer
    "partial"  forward the first event only; answer 503 with its real result and the rest refused
    and once the script is used up, forward each request and relay the engine's answer.
    """

    def __init__(self, engine_port, script):
        self.engine_port = engine_port
        self.script = list(script)
        self.requests = []  # {"action", "at", "body", "content_type", "ids"}
        self.lock = threading.Lock()
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                stand_in.handle(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def events_of(body, content_type):
        text = body.decode()
        if "ndjson" in content_type:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        parsed = json.loads(text)
        return parsed if isinstance(parsed, list) else [parsed]

    def forward(self, path, body, content_type):
        conn = http.client.HTTPConnection("127.0.0.1", self.engine_port, timeout=30)
        try:
            conn.request("POST", path, body, {"Content-Type": content_type})
            response = conn.getresponse()
            return response.status, response.read(), response.getheader("Retry-After")
        finally:
            conn.close()

    def handle(self, handler):
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        content_type = handler.headers.get("Content-Type", "")
        events = self.events_of(body, content_type)
        with self.lock:
            action = self.script.pop(0) if self.script else "forward"
            self.requests.append({"action": action, "at": time.monotonic(), "body": body,
                                  "content_type": content_type, "ids": [e.get("event_id") for e in events]})
        refused = [{"event_id": e.get("event_id"), "path": "refused", "reason": "unavailable",
                    "message": "stand-in: the outbox is unavailable"} for e in events]
        if action == "lost":
            self.forward(handler.path, body, content_type)
            handler.close_connection = True  # no status line: the client sees the connection drop
            return
        if action == "503":
            return self.answer(handler, 503, {"results": refused, "accepted": 0, "refused": len(events)}, "1")
        if action == "partial":
            status, answer, _ = self.forward(handler.path, json.dumps(events[:1]).encode(), "application/json")
            first = json.loads(answer)["results"][0]
            check(status == 202, f"the engine answered {status} to the partial batch's first event: {answer}")
            return self.answer(handler, 503, {"results": [first] + refused[1:], "accepted": 1,
                                              "refused": len(events) - 1}, "1")
        status, answer, retry_after = self.forward(handler.path, body, content_type)
        return self.answer(handler, status, answer, retry_after)

    @staticmethod
    def answer(handler, status, body, retry_after):
        raw = body if isinstance(body, bytes) else (json.dumps(body) + "\n").encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        if retry_after:
            handler.send_header("Retry-After", retry_after)
        handler.end_headers()
        handler.wfile.write(raw)


def run(args, cwd, env, what, timeout=120):
    started = time.monotonic()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    check(result.returncode == 0,
          f"{what} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    log(f"{what}: ok in {time.monotonic() - started:.1f} s")
    return result.stdout


def check_client_run(name, stdout, stand_in, kafka):
    """The Python and Go mains against the script lost, 503, (forward), partial, (forward)."""
    reqs = stand_in.requests
    check(len(reqs) == 5, f"{name}: {len(reqs)} requests reached the stand-in, expected 5: "
                          f"{[(r['action'], r['ids']) for r in reqs]}")
    single = reqs[0]["ids"]
    check(len(single) == 1 and UUID.fullmatch(single[0] or ""),
          f"{name}: the first request carried no client-made UUID event_id: {reqs[0]['body']!r}")
    check(reqs[1]["ids"] == single and reqs[2]["ids"] == single,
          f"{name}: the retries of one event changed its event_id: {[r['ids'] for r in reqs[:3]]}")
    check(reqs[2]["at"] - reqs[1]["at"] >= 0.9,
          f"{name}: retried {reqs[2]['at'] - reqs[1]['at']:.2f} s after a 503 with Retry-After: 1")
    batch = reqs[3]["ids"]
    check(len(batch) == 3 and len(set(batch)) == 3 and all(UUID.fullmatch(i or "") for i in batch),
          f"{name}: the batch did not carry three client-made event ids: {reqs[3]['body']!r}")
    check(reqs[4]["ids"] == batch[1:],
          f"{name}: after a partly accepted batch it resent {reqs[4]['ids']}, expected only the refused {batch[1:]}")
    printed = [line.split() for line in stdout.splitlines() if line.strip()]
    check([p[0] for p in printed] == single + batch and all(p[1] in ("direct", "outbox") for p in printed),
          f"{name}: printed {printed}, expected each event id, accepted (direct, or outbox if Kafka was slow)")
    found = kafka.by_event_id("orders.events", single + batch, {single[0]: 2})
    # The answer to the first attempt was lost after the engine accepted it: two copies, one id.
    check(len(found[single[0]]) == 2, f"{name}: {len(found[single[0]])} copies of the retried event, expected 2")
    for i in batch:
        check(len(found[i]) == 1, f"{name}: {len(found[i])} copies of batch event {i}, expected 1")
    want = [(single[0], "order-42", {"order": 42, "status": "paid"})] + [
        (i, f"order-{n}", {"order": n}) for i, n in zip(batch, (43, 44, 45))]
    for event_id, key, payload in want:
        for record in found[event_id]:
            check(record["key"] == key and json.loads(record["payload"]) == payload,
                  f"{name}: record of {event_id} is {record}, expected key {key} payload {payload}")
    log(f"{name}: 5 requests, ids kept across retries, {2 + len(batch)} records in Kafka as expected")


def test_python(snippets, work, engine_port, kafka):
    path = os.path.join(work, "python")
    os.mkdir(path)
    with open(os.path.join(path, "spillway_client.py"), "w") as f:
        f.write(snippets["python"])
    stand_in = StandIn(engine_port, ["lost", "503", "forward", "partial"])
    try:
        env = dict(os.environ, SPILLWAY_URL=stand_in.url)
        out = run([sys.executable, "spillway_client.py"], path, env, "python snippet")
        check_client_run("python", out, stand_in, kafka)
    finally:
        stand_in.close()


def test_go(snippets, work, engine_port, kafka):
    go = shutil.which("go")
    if not go:
        log("SKIPPED: the Go snippet (no `go` on PATH); the other snippets still run")
        return
    path = os.path.join(work, "go")
    os.mkdir(path)
    with open(os.path.join(path, "spillway_client.go"), "w") as f:
        f.write(snippets["go"])
    stand_in = StandIn(engine_port, ["lost", "503", "forward", "partial"])
    try:
        env = dict(os.environ, SPILLWAY_URL=stand_in.url)
        env.setdefault("GOCACHE", os.path.join(work, "gocache"))
        env.setdefault("GOPATH", os.path.join(work, "gopath"))
        gofmt = subprocess.run([os.path.join(os.path.dirname(go), "gofmt"), "-l", "spillway_client.go"],
                               cwd=path, capture_output=True, text=True)
        check(gofmt.returncode == 0 and not gofmt.stdout.strip(), f"the Go snippet is not gofmt-clean: "
                                                                   f"{gofmt.stdout}{gofmt.stderr}")
        out = run([go, "run", "spillway_client.go"], path, env, "go snippet", timeout=300)
        check_client_run("go", out, stand_in, kafka)
    finally:
        stand_in.close()


def test_curl(snippets, work, engine_port, kafka):
    path = os.path.join(work, "curl")
    os.mkdir(path)
    # One event: two 503s, then through. Every attempt is the same body, so the same event_id.
    stand_in = StandIn(engine_port, ["503", "503"])
    try:
        env = dict(os.environ, SPILLWAY_URL=stand_in.url)
        run(["bash", "-euo", "pipefail", "-c", snippets["curl-event"]], path, env, "curl single-event snippet")
        out = open(os.path.join(path, "answer.json")).read()
        reqs = stand_in.requests
        check(len(reqs) == 3 and len({r["body"] for r in reqs}) == 1,
              f"curl: expected three identical requests, got {[(r['action'], r['body']) for r in reqs]}")
        event_id = reqs[0]["ids"][0]
        check(UUID.fullmatch(event_id or ""), f"curl: the event carried no UUID event_id: {reqs[0]['body']!r}")
        results = json.loads(out)["results"]
        check([r["event_id"] for r in results] == [event_id] and results[0]["path"] in ("direct", "outbox"),
              f"curl: the answer kept by -o is {out!r}")
        found = kafka.by_event_id("orders.events", [event_id])
        check(len(found[event_id]) == 1, f"curl: {len(found[event_id])} copies of {event_id}, expected 1")
    finally:
        stand_in.close()
    # The NDJSON batch: the first attempt partly accepted (503); curl resends the whole body.
    stand_in = StandIn(engine_port, ["partial"])
    try:
        env = dict(os.environ, SPILLWAY_URL=stand_in.url)
        run(["bash", "-euo", "pipefail", "-c", snippets["curl-batch"]], path, env, "curl batch snippet")
        out = open(os.path.join(path, "answer.json")).read()
        reqs = stand_in.requests
        check(len(reqs) == 2 and reqs[0]["body"] == reqs[1]["body"],
              f"curl batch: expected the same body twice, got {[(r['action'], r['body']) for r in reqs]}")
        check("ndjson" in reqs[0]["content_type"], f"curl batch sent Content-Type {reqs[0]['content_type']}")
        ids = reqs[0]["ids"]
        check(len(ids) == 3 and len(set(ids)) == 3 and all(UUID.fullmatch(i or "") for i in ids),
              f"curl batch: not three distinct UUID event ids: {reqs[0]['body']!r}")
        check(json.loads(out)["accepted"] == 3, f"curl batch printed {out!r}")
        found = kafka.by_event_id("orders.events", ids, {ids[0]: 2})
        # As the doc says: what the first attempt accepted arrives twice, with its id.
        check([len(found[i]) for i in ids] == [2, 1, 1],
              f"curl batch: copies per event {[len(found[i]) for i in ids]}, expected [2, 1, 1]")
        log("curl: retried 503s with the same body; records in Kafka as expected")
    finally:
        stand_in.close()


def literal_event_id(sql, name):
    ids = UUID.findall(sql)
    check(len(ids) == 1, f"snippet {name}: expected one literal event_id, found {ids}")
    return ids[0]


def check_row_record(name, record, key, payload, event_type):
    check(record["key"] == key, f"{name}: record key {record['key']!r}, expected {key!r}")
    check(json.loads(record["payload"]) == payload, f"{name}: record payload {record['payload']!r}")
    check(("event_type", event_type) in record["header_list"], f"{name}: headers {record['header_list']}")


def relayed_after(pg_port, event_id, started):
    """Seconds from started until the relay had sent the row and deleted it from the outbox."""
    wait_for(lambda: psql(pg_port, f"SELECT count(*) FROM spillway_outbox WHERE event_id = '{event_id}'") == "0",
             10, f"the relay to send outbox row {event_id} (it polls only every 60 s: the doorbell must ring)")
    return time.monotonic() - started


def test_postgres(snippets, pg_port, url, kafka, source):
    # The relay of `invoices` polls only every 60 s (clients.toml): a row in Kafka within seconds was
    # rung for. Its first wait LISTENs; before that a ring would be lost (and the poll be 60 s away).
    wait_for(lambda: psql(pg_port, "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE "
                                   "'LISTEN %spillway_wake_invoices%'") != "0",
             15, "the invoices relay to LISTEN on spillway_wake_invoices")
    def committed(name, rang_by):
        """Runs the SQL snippet `name`; returns its row's one record in Kafka."""
        event_id = literal_event_id(snippets[name], name)
        with tempfile.NamedTemporaryFile("w", suffix=".sql") as f:
            f.write(snippets[name])
            f.flush()
            started = time.monotonic()
            psql(pg_port, file=f.name)
            relayed = relayed_after(pg_port, event_id, started)
            found = kafka.by_event_id("invoices.events", [event_id])
            log(f"{name}: the row was relayed {relayed:.3f} s after COMMIT ({rang_by}), "
                f"read back from Kafka after {time.monotonic() - started:.2f} s")
        check(len(found[event_id]) == 1, f"the row of {name} reached Kafka {len(found[event_id])} times")
        return found[event_id][0]

    # First the explicit pg_notify, before the trigger exists.
    check_row_record("pg-notify", committed("pg-notify", "the poll: 60 s"), "order-43",
                     {"invoice": 1002, "order": 43, "amount_cents": 500}, "InvoiceIssued")
    # Then the trigger, installed by the doc's command, and the plain insert.
    env = dict(os.environ, OUTBOX_DATABASE_URL=url)
    run(["bash", "-euo", "pipefail", "-c", snippets["pg-trigger"]], source, env, "pg-trigger snippet")
    check_row_record("pg-insert", committed("pg-insert", "the trigger rang"), "order-42",
                     {"invoice": 1001, "order": 42, "amount_cents": 1999}, "InvoiceIssued")
    check(psql(pg_port, "SELECT string_agg(id::text, ',' ORDER BY id) FROM invoices") == "1001,1002",
          "the business rows of the PostgreSQL snippets are not there")
    both = [literal_event_id(snippets[n], n) for n in ("pg-notify", "pg-insert")]
    found = kafka.by_event_id("invoices.events", both)
    check(all(len(found[i]) == 1 for i in both), "a PostgreSQL row reached Kafka twice")


def test_sqlite(snippets, sqlite_path, kafka):
    event_id = literal_event_id(snippets["sqlite-insert"], "sqlite-insert")
    conn = sqlite3.connect(sqlite_path, isolation_level=None)  # the snippet's BEGIN/COMMIT rule
    try:
        started = time.monotonic()
        conn.executescript(snippets["sqlite-insert"])
        check(conn.execute("SELECT status FROM shipments WHERE id = 7").fetchone() == ("sent",),
              "the SQLite snippet's business change is not there")
    finally:
        conn.close()
    found = kafka.by_event_id("shipments.events", [event_id])
    log(f"sqlite-insert: the row reached Kafka {time.monotonic() - started:.2f} s after COMMIT (adaptive poll)")
    check_row_record("sqlite-insert", found[event_id][0], "order-42",
                     {"shipment": 7, "order": 42, "status": "sent"}, "ShipmentSent")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="the repository (docs/clients.md, plugins/pgnotify)")
    parser.add_argument("--spillway", required=True, help="the spillway binary")
    parser.add_argument("--mock-kafka", required=True, help="the mock-kafka binary")
    parser.add_argument("--plugins", required=True, help="the plugin folder")
    args = parser.parse_args()
    for tool in ("kcat", "psql", "pg_isready", "curl", "bash"):
        check(shutil.which(tool), f"{tool} is not on PATH")
    snippets = snippets_of(os.path.join(args.source, "docs", "clients.md"))

    work = tempfile.mkdtemp(prefix="spillway-clients-")
    procs = Processes()
    ok = False
    try:
        brokers = start_mock_kafka(args.mock_kafka, work, procs)
        pg_port = start_postgres(work, procs)
        psql(pg_port, "CREATE DATABASE app", db="postgres")
        # The applications' own tables, which the snippets' transactions change.
        psql(pg_port, "CREATE TABLE invoices (id bigint PRIMARY KEY, order_id bigint NOT NULL, amount_cents bigint)")
        sqlite_path = os.path.join(work, "app.db")
        with sqlite3.connect(sqlite_path) as conn:
            conn.execute("CREATE TABLE shipments (id INTEGER PRIMARY KEY, status TEXT NOT NULL)")
            conn.execute("INSERT INTO shipments VALUES (7, 'packed')")
        conn.close()
        log(f"mock Kafka at {brokers}, PostgreSQL on port {pg_port}")

        http_port = free_port()
        url = f"postgresql://postgres@127.0.0.1:{pg_port}/app"
        env = dict(os.environ, SPILLWAY_PLUGIN_PATH=args.plugins, SPILLWAY_HTTP=f"127.0.0.1:{http_port}",
                   KAFKA_BROKERS=brokers, SQLITE_OUTBOX_PATH=sqlite_path, OUTBOX_DATABASE_URL=url)
        engine_log = os.path.join(work, "engine.log")
        engine = procs.add(subprocess.Popen(
            [args.spillway, "run", os.path.join(args.source, "tests", "clients", "clients.toml"), "--env", "testing"],
            env=env, stdout=open(engine_log, "w"), stderr=subprocess.STDOUT, preexec_fn=child_setup()))

        def ready():
            check(engine.poll() is None, f"spillway run exited {engine.returncode}:\n{open(engine_log).read()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=2)
                conn.request("GET", "/readyz")
                return conn.getresponse().status == 200
            except OSError:
                return False
        wait_for(ready, 30, "spillway run to answer /readyz with 200")
        log(f"spillway run ready on port {http_port}")
        kafka = Kafka(brokers)

        test_python(snippets, work, http_port, kafka)
        test_go(snippets, work, http_port, kafka)
        test_curl(snippets, work, http_port, kafka)
        test_postgres(snippets, pg_port, url, kafka, args.source)
        test_sqlite(snippets, sqlite_path, kafka)
        ok = True
    except Failed as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        engine_log = os.path.join(work, "engine.log")
        if os.path.exists(engine_log):
            print("--- engine.log (tail)\n" + open(engine_log).read()[-4000:], file=sys.stderr)
    finally:
        procs.stop_all()
        if ok or not os.environ.get("SPILLWAY_KEEP_TEST_DIRS"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)
    log("all client snippets passed" if ok else "failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
