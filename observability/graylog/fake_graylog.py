#!/usr/bin/env python3
"""A tiny stand-in for the Graylog REST endpoints that provision.sh uses.

Only for test_provision.sh: Graylog itself cannot run on the build machine.
Listens on 127.0.0.1 on a port chosen by the OS and prints "PORT <n>" on stdout.

  GET  /api/system/lbstatus                              -> "ALIVE" (no auth, like Graylog)
  POST /api/system/content_packs                         -> 201, or 400 "... already found!"
                                                            for a second upload of the same id+rev
  GET  /api/system/content_packs/{id}/installations      -> {"installations": [...], "total": n}
  POST /api/system/content_packs/{id}/{rev}/installations -> 200, records an installation
  GET  /__fake/state                                     -> counters for the test's assertions

Every /api/system/content_packs request needs HTTP basic auth (user/password from the
command line, or "<token>:token"), else 401. Every POST needs X-Requested-By (else 400, as
Graylog's CSRF filter does) and Content-Type: application/json (else 415).
"""
import argparse
import base64
import json
import re
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE_LOCK = threading.Lock()
PACKS = {}            # (id, rev) -> pack
INSTALLATIONS = []    # list of installation dicts
COUNTERS = {"upload_attempts": 0, "uploads": 0, "install_requests": 0, "unauthorized": 0}

INSTALLS_RE = re.compile(r"^/api/system/content_packs/([0-9a-f-]{36})/installations$")
INSTALL_RE = re.compile(r"^/api/system/content_packs/([0-9a-f-]{36})/([0-9]+)/installations$")


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-graylog/1"
    credentials = set()

    def log_message(self, fmt, *args):  # keep test output readable
        sys.stderr.write("fake-graylog: " + (fmt % args) + "\n")

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, code, message):
        self.send_json(code, {"type": "ApiError", "message": message})

    def authorized(self):
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user_pass = base64.b64decode(header[6:]).decode()
            except ValueError:
                user_pass = ""
            if user_pass in self.credentials:
                return True
        with STATE_LOCK:
            COUNTERS["unauthorized"] += 1
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="Graylog Server"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except json.JSONDecodeError:
            return None

    def do_GET(self):
        if self.path == "/api/system/lbstatus":
            body = b"ALIVE"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path == "/__fake/state":
            with STATE_LOCK:
                state = dict(COUNTERS, packs=len(PACKS), installations=len(INSTALLATIONS))
            self.send_json(200, state)
            return
        m = INSTALLS_RE.match(self.path)
        if m:
            if not self.authorized():
                return
            with STATE_LOCK:
                found = [i for i in INSTALLATIONS if i["content_pack_id"] == m.group(1)]
            self.send_json(200, {"installations": found, "total": len(found)})
            return
        self.error(404, f"HTTP 404 Not Found: {self.path}")

    def do_POST(self):
        if not self.path.startswith("/api/system/content_packs"):
            self.error(404, f"HTTP 404 Not Found: {self.path}")
            return
        if not self.authorized():
            return
        if not self.headers.get("X-Requested-By"):
            self.error(400, "The X-Requested-By header is missing (CSRF protection)")
            return
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            self.error(415, "HTTP 415 Unsupported Media Type")
            return
        body = self.read_json()
        if self.path == "/api/system/content_packs":
            with STATE_LOCK:
                COUNTERS["upload_attempts"] += 1
            if not isinstance(body, dict) or not body.get("id") or not isinstance(body.get("rev"), int) \
                    or not isinstance(body.get("entities"), list):
                self.error(400, "Unable to map property: not a content pack")
                return
            key = (body["id"], body["rev"])
            with STATE_LOCK:
                if key in PACKS:
                    exists = True
                else:
                    exists = False
                    PACKS[key] = body
                    COUNTERS["uploads"] += 1
            if exists:
                self.error(400, f"Content pack {key[0]} with this revision {key[1]} already found!")
                return
            self.send_response(201)
            self.send_header("Location", f"/api/system/content_packs/{key[0]}/{key[1]}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        m = INSTALL_RE.match(self.path)
        if m:
            pack_id, rev = m.group(1), int(m.group(2))
            with STATE_LOCK:
                COUNTERS["install_requests"] += 1
                pack = PACKS.get((pack_id, rev))
                if pack is not None:
                    inst = {"_id": uuid.uuid4().hex[:24], "content_pack_id": pack_id,
                            "content_pack_revision": rev, "parameters": (body or {}).get("parameters", {}),
                            "comment": (body or {}).get("comment", ""), "entities": [],
                            "created_by": "admin"}
                    INSTALLATIONS.append(inst)
            if pack is None:
                self.error(404, f"Content pack {pack_id} revision {rev} not found!")
                return
            self.send_json(200, {"installation": inst, "entities": []})
            return
        self.error(404, f"HTTP 404 Not Found: {self.path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--user", default="admin")
    ap.add_argument("--password", default="admin")
    ap.add_argument("--token", default="fake-token")
    args = ap.parse_args()
    Handler.credentials = {f"{args.user}:{args.password}", f"{args.token}:token"}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
