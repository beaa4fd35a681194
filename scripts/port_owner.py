"""Say who listens on a TCP port of this machine (stdlib only; Linux's /proc, else just "busy").

    python scripts/port_owner.py PORT [PORT ...]

Prints one line per busy port, ``PORT<TAB>PID<TAB>COMMAND`` (PID and COMMAND ``?`` when the
process cannot be seen), and exits 1 when any port is busy, 0 when all are free.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path

_LISTEN = "0A"


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == _LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def _owner(inodes: set[str]) -> tuple[str, str]:
    wanted = {f"socket:[{i}]" for i in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").strip()
                        return proc.name, cmd.decode(errors="replace")[:160]
    return "?", "?"


def _busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main(argv: list[str]) -> int:
    status = 0
    for arg in argv[1:]:
        port = int(arg)
        inodes = _listening_inodes(port)
        if not inodes and not _busy(port):
            continue
        status = 1
        pid, cmd = _owner(inodes) if inodes else ("?", "?")
        print(f"{port}\t{pid}\t{cmd}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
