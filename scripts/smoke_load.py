#!/usr/bin/env python3
"""A short, bounded mix of real traffic through nginx, so that every metric, log level and
dashboard panel has something to show: accepted votes (solving the captcha), refused ones
(unknown participant, missing captcha), result and statistics reads. Run it with the deliberate
error path on to get 5xx too. Standard library only; targets the given base URL (127.0.0.1).

    scripts/smoke_load.py BASE_URL [--seconds N] [--paredao ID] [--participant ID] [--expect-faults]
"""
import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vote import call, solve  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--paredao", default="current")
    parser.add_argument("--participant", default=None, help="default: the paredão's first participant")
    parser.add_argument("--expect-faults", action="store_true", help="fail unless some votes got 500")
    args = parser.parse_args()
    base = args.base.rstrip("/")
    if not base.startswith(("http://127.", "http://localhost")):
        sys.exit("smoke load only targets this machine (http://127.0.0.1:...)")

    status, paredao = call("GET", f"{base}/api/paredoes/{args.paredao}")
    if status != 200:
        sys.exit(f"no paredão: HTTP {status} {paredao}")
    pid = paredao["id"]
    participant = args.participant or paredao["participants"][0]["id"]
    votes = f"{base}/api/paredoes/{pid}/votes"
    seen = collections.Counter()
    deadline = time.monotonic() + args.seconds
    # Four rounds a second: within a person's pace for the API's per-client limit most of the time,
    # so most votes get through and some meet the limit (429).
    while time.monotonic() < deadline:
        started = time.monotonic()
        status, challenge = call("GET", f"{base}/api/paredoes/{pid}/challenge")
        seen[f"challenge {status}"] += 1
        if status == 200:
            status, _ = call("POST", votes, {"participant_id": participant, "captcha": solve(challenge)})
            seen[f"vote {status}"] += 1
        status, _ = call("POST", votes, {"participant_id": "nobody-by-this-name", "captcha": "x"})
        seen[f"bad vote {status}"] += 1
        status, _ = call("POST", votes, {"participant_id": participant})
        seen[f"vote without captcha {status}"] += 1
        for path in ("results", "stats"):
            status, _ = call("GET", f"{base}/api/paredoes/{pid}/{path}")
            seen[f"{path} {status}"] += 1
        time.sleep(max(0.0, 0.25 - (time.monotonic() - started)))
    print("smoke load:", ", ".join(f"{k}: {v}" for k, v in sorted(seen.items())))
    if not seen["vote 202"]:
        sys.exit("no vote was accepted")
    if args.expect_faults and not seen["vote 500"]:
        sys.exit("the error path was expected to fail some votes with 500, and none did")


if __name__ == "__main__":
    main()
