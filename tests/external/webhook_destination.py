#!/usr/bin/env python3
"""A webhook destination for round_trip.sh: answers 200 to every POST and appends
"<X-Key> <payload>" to a file, one line per request, in the order they arrived.

    webhook_destination.py <port> <file>
"""
import http.server
import sys

port, out = int(sys.argv[1]), sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(out, "a", encoding="utf-8") as f:
            f.write(f"{self.headers.get('X-Key', '')} {body.decode('utf-8')}\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):  # quiet
        pass


http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
