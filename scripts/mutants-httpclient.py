"""Mutation check of the upstream HTTP client: each mutant below must fail a test.

    .venv/bin/python scripts/mutants-httpclient.py

Applies one small change at a time to adapter/backends/httpclient.py, runs the client's tests
(tests/unit/test_httpclient*.py), puts the file back, and prints KILLED or SURVIVED for each
mutant; exits 1 if any survived. Add a mutant here for every rule the client learns.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIENT = ROOT / "adapter" / "backends" / "httpclient.py"
TESTS = ["tests/unit/test_httpclient.py", "tests/unit/test_httpclient_framing.py"]

#: name -> (original text, mutated text)
MUTANTS = {
    "half-read answer released to the pool": (
        "        complete = self.complete\n",
        "        complete = True\n",
    ),
    "Connection: close ignored": (
        "        if not self.parser.should_keep_alive():\n            self.reusable = False",
        "        if False:\n            self.reusable = False",
    ),
    "read timer not reset while paused": (
        "        if self.paused:  # our reader is behind, not the server\n",
        "        if False:\n",
    ),
    "cancelled waiter keeps its turn": (
        "                    self._wake_one()  # pass on the turn this caller will not use\n",
        "                    pass\n",
    ),
    "partial answer taken as unanswered": (
        "                before = not self.got_bytes\n",
        "                before = True\n",
    ),
    "aclose does not wake waiters": (
        "        self._idle.clear()\n        while self._waiters:\n"
        "            waiter = self._waiters.popleft()\n            if not waiter.done():\n"
        "                waiter.set_result(None)",
        "        self._idle.clear()",
    ),
    "unexpected bytes do not abort": (
        "        if self.response is None:  # nothing was asked: a broken server\n"
        "            self.abort()\n            return",
        "        if self.response is None:  # nothing was asked: a broken server\n            return",
    ),
    "resends disabled": (
        "            if not (retry_stale and reused and may_resend(method, exc)):\n",
        "            if True:\n",
    ),
    "a POST that reached the server is resent": (
        "    return exc.unsent or (exc.before_answer and method in IDEMPOTENT)",
        "    return exc.before_answer",
    ),
    "interim answers taken as final": (
        "        if 100 <= status < 200 and status != 101:",
        "        if False:",
    ),
    "no header field limit": (
        "        if len(name) + len(value) > MAX_FIELD:",
        "        if False:",
    ),
    "trailers merged into the headers": (
        "        fields = resp.trailers if self._in_trailers else resp.headers",
        "        fields = resp.headers",
    ),
    "a released answer can be read": (
        "        if self._released:\n",
        "        if False:\n",
    ),
    "no look at an idle connection before reuse": (
        " and not _closed_by_peer(conn):",
        ":",
    ),
    "idle connections never expire": (
        "now - conn.idle_since < self.keepalive",
        "True",
    ),
    "idle age read from the loop, not the pool's clock": (
        "            conn.idle_since = self._now()",
        "            conn.idle_since = conn.loop.time()",
    ),
}


def main() -> int:
    original = CLIENT.read_text()
    survived = []
    try:
        for name, (before, after) in MUTANTS.items():
            if before not in original:
                print(f"STALE    {name}: its original text is no longer in the client")
                survived.append(name)
                continue
            CLIENT.write_text(original.replace(before, after, 1))
            run = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *TESTS],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
            )
            killed = run.returncode != 0
            print(f"{'KILLED  ' if killed else 'SURVIVED'} {name}")
            if not killed:
                survived.append(name)
    finally:
        CLIENT.write_text(original)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
