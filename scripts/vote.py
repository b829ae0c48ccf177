#!/usr/bin/env python3
"""Casts one vote from the terminal the way the page does: fetch a challenge, solve the proof of
work, post the vote with the solution. Standard library only.

    scripts/vote.py PARTICIPANT [BASE_URL] [PAREDAO]
"""
import base64
import hashlib
import json
import sys
import urllib.error
import urllib.request


def parse(raw):
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode(errors="replace")


def call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, parse(r.read())
    except urllib.error.HTTPError as e:
        return e.code, parse(e.read())


def solve(challenge):
    """The number n <= maxnumber with SHA-256(salt + n) == challenge, as the widget finds it."""
    salt, target = challenge["salt"], challenge["challenge"]
    for n in range(challenge["maxnumber"] + 1):
        if hashlib.sha256(f"{salt}{n}".encode()).hexdigest() == target:
            payload = {k: challenge[k] for k in ("algorithm", "challenge", "salt", "signature")}
            payload["number"] = n
            return base64.b64encode(json.dumps(payload).encode()).decode()
    raise SystemExit("the challenge has no solution within its maxnumber")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    participant = sys.argv[1]
    base = (sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8080").rstrip("/")
    paredao = sys.argv[3] if len(sys.argv) > 3 else "current"
    status, challenge = call("GET", f"{base}/api/paredoes/{paredao}/challenge")
    body = {"participant_id": participant}
    if status == 200:
        body["captcha"] = solve(challenge)
    elif not (status == 404 and challenge and challenge.get("error") == "captcha_off"):
        raise SystemExit(f"no challenge: HTTP {status} {json.dumps(challenge)}")
    status, answer = call("POST", f"{base}/api/paredoes/{paredao}/votes", body)
    if isinstance(answer, dict):
        answer.pop("next_challenge", None)
    print(f"HTTP {status} {json.dumps(answer, ensure_ascii=False)}")
    sys.exit(0 if status == 202 else 1)


if __name__ == "__main__":
    main()
