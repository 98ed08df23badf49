#!/usr/bin/env python3
"""Record portstat's /proc/net test fixtures from the real kernel.

Run as root inside a private network namespace, so that the tables hold only the sockets this
script opens:

    unshare -n python3 tools/record-fixtures.py

It brings up `lo`, opens a known set of sockets on loopback (fixed ports, so re-recording gives
the same addresses), copies /proc/net/{tcp,tcp6,udp,udp6} into fixtures/proc-net/recorded/,
checks that every socket it meant to make is there in the state it expects, and writes
fixtures/proc-net/every-state/tcp from the recorded lines. Every socket is closed before it
exits; nothing is left running (the namespace goes away with the process).

Only the standard library is used.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "proc-net"
TABLES = ("tcp", "tcp6", "udp", "udp6")

# Kernel state numbers (include/net/tcp_states.h).
ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT = 1, 2, 3, 4, 5, 6
CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING, NEW_SYN_RECV = 7, 8, 9, 10, 11, 12

LO4 = "127.0.0.1"
LO6 = "::1"
NOBODY = 65534


def die(message: str) -> None:
    print(f"record-fixtures: {message}", file=sys.stderr)
    sys.exit(1)


def table_rows(name: str) -> list[str]:
    with open(f"/proc/net/{name}") as f:
        return [line for line in f.read().splitlines()[1:] if line.strip()]


def check_private_namespace() -> None:
    if os.geteuid() != 0:
        die("must run as root (it needs `unshare -n` and `ip link set lo up`)")
    busy = [name for name in TABLES if table_rows(name)]
    if busy:
        die(
            f"/proc/net/{busy[0]} already lists sockets: run me in a fresh network namespace, "
            "`unshare -n python3 tools/record-fixtures.py`"
        )
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


class Sockets:
    """Keeps every socket open until the tables are copied, then closes them all."""

    def __init__(self) -> None:
        self.open: list[socket.socket] = []

    def keep(self, sock: socket.socket) -> socket.socket:
        self.open.append(sock)
        return sock

    def close_all(self) -> None:
        for sock in self.open:
            sock.close()
        self.open.clear()

    def tcp(self, family: int, addr: tuple, *, dual_stack: bool = False) -> socket.socket:
        sock = self.keep(socket.socket(family, socket.SOCK_STREAM))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
        sock.bind(addr)
        return sock

    def listener(self, family: int, addr: tuple, *, dual_stack: bool = False, backlog: int = 16):
        sock = self.tcp(family, addr, dual_stack=dual_stack)
        sock.listen(backlog)
        return sock

    def client(self, family: int, local: tuple, remote: tuple) -> socket.socket:
        sock = self.tcp(family, local)
        sock.connect(remote)
        return sock

    def accept(self, listener: socket.socket) -> socket.socket:
        conn, _ = listener.accept()
        return self.keep(conn)

    def udp(self, family: int, local: tuple, remote: tuple | None = None, *, dual_stack=False):
        sock = self.keep(socket.socket(family, socket.SOCK_DGRAM))
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
        sock.bind(local)
        if remote is not None:
            sock.connect(remote)
        return sock


def open_sockets(s: Sockets) -> list[tuple[str, str, int, str, int, int]]:
    """Opens the sockets; returns what must show up: (table, local ip, port, remote ip, port, st)."""
    v4, v6 = socket.AF_INET, socket.AF_INET6
    expect = []

    # Listeners on every kind of address. 7001 and 7002 also serve the established pairs.
    l4 = s.listener(v4, (LO4, 7001))
    l6 = s.listener(v6, (LO6, 7002))
    s.listener(v4, ("0.0.0.0", 7003))
    dual = s.listener(v6, ("::", 7004), dual_stack=True)
    expect += [
        ("tcp", LO4, 7001, "0.0.0.0", 0, LISTEN),
        ("tcp6", LO6, 7002, "::", 0, LISTEN),
        ("tcp", "0.0.0.0", 7003, "0.0.0.0", 0, LISTEN),
        ("tcp6", "::", 7004, "::", 0, LISTEN),
    ]

    # Established pairs. The v4 server leaves 100 bytes unread (rx_queue); the v6 client has
    # keepalive on, so its keepalive timer runs (tr 2).
    c4 = s.client(v4, (LO4, 41001), (LO4, 7001))
    a4 = s.accept(l4)
    c4.sendall(b"x" * 100)
    c6 = s.keep(socket.socket(v6, socket.SOCK_STREAM))
    c6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    c6.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    c6.bind((LO6, 41002))
    c6.connect((LO6, 7002))
    s.accept(l6)
    expect += [
        ("tcp", LO4, 41001, LO4, 7001, ESTABLISHED),
        ("tcp", LO4, 7001, LO4, 41001, ESTABLISHED),
        ("tcp6", LO6, 41002, LO6, 7002, ESTABLISHED),
        ("tcp6", LO6, 7002, LO6, 41002, ESTABLISHED),
    ]
    del a4

    # A v4 client of the dual-stack listener: the accepted side is ::ffff:127.0.0.1 in tcp6.
    s.client(v4, (LO4, 41004), (LO4, 7004))
    s.accept(dual)
    expect += [
        ("tcp", LO4, 41004, LO4, 7004, ESTABLISHED),
        ("tcp6", "::ffff:127.0.0.1", 7004, "::ffff:127.0.0.1", 41004, ESTABLISHED),
    ]

    # TIME_WAIT: the client closes first, the server reads the FIN and closes too.
    l_tw = s.listener(v4, (LO4, 7005))
    c_tw = s.client(v4, (LO4, 41005), (LO4, 7005))
    a_tw = s.accept(l_tw)
    c_tw.close()
    a_tw.settimeout(5)
    if a_tw.recv(1) != b"":
        die("expected EOF on the TIME_WAIT server side")
    a_tw.close()
    expect += [
        ("tcp", LO4, 7005, "0.0.0.0", 0, LISTEN),
        ("tcp", LO4, 41005, LO4, 7005, TIME_WAIT),
    ]

    # CLOSE_WAIT + FIN_WAIT2, twice: a client that shut down its sending side (still a full
    # socket with an inode) and one that closed (the kernel turns the orphan into a timewait
    # socket in the FIN_WAIT2 substate). The servers never close.
    l_cw = s.listener(v4, (LO4, 7006))
    c_half = s.client(v4, (LO4, 41006), (LO4, 7006))
    s.accept(l_cw)
    c_half.shutdown(socket.SHUT_WR)
    c_closed = s.client(v4, (LO4, 41016), (LO4, 7006))
    s.accept(l_cw)
    c_closed.close()
    expect += [
        ("tcp", LO4, 7006, "0.0.0.0", 0, LISTEN),
        ("tcp", LO4, 41006, LO4, 7006, FIN_WAIT2),
        ("tcp", LO4, 7006, LO4, 41006, CLOSE_WAIT),
        ("tcp", LO4, 41016, LO4, 7006, FIN_WAIT2),
        ("tcp", LO4, 7006, LO4, 41016, CLOSE_WAIT),
    ]

    # A connection nobody accepts: it waits in 7007's accept queue (inode 0) with 5 bytes.
    s.listener(v4, (LO4, 7007))
    s.client(v4, (LO4, 41007), (LO4, 7007)).sendall(b"hello")
    expect += [
        ("tcp", LO4, 7007, "0.0.0.0", 0, LISTEN),
        ("tcp", LO4, 41007, LO4, 7007, ESTABLISHED),
        ("tcp", LO4, 7007, LO4, 41007, ESTABLISHED),
    ]

    # A listener created as uid 65534 (nobody): the table's uid column is the creator's.
    os.seteuid(NOBODY)
    try:
        s.listener(v4, (LO4, 7008))
    finally:
        os.seteuid(0)
    expect.append(("tcp", LO4, 7008, "0.0.0.0", 0, LISTEN))

    # UDP, unconnected (st 07) and connected (st 01), on both families. 7101 keeps one unread
    # datagram (rx_queue).
    u4 = s.udp(v4, (LO4, 7101))
    s.udp(v4, ("0.0.0.0", 7102))
    s.udp(v4, (LO4, 41101), (LO4, 7101)).send(b"ping")
    s.udp(v6, (LO6, 7103))
    s.udp(v6, ("::", 7104), dual_stack=True)
    s.udp(v6, (LO6, 41103), (LO6, 7103))
    del u4
    expect += [
        ("udp", LO4, 7101, "0.0.0.0", 0, CLOSE),
        ("udp", "0.0.0.0", 7102, "0.0.0.0", 0, CLOSE),
        ("udp", LO4, 41101, LO4, 7101, ESTABLISHED),
        ("udp6", LO6, 7103, "::", 0, CLOSE),
        ("udp6", "::", 7104, "::", 0, CLOSE),
        ("udp6", LO6, 41103, LO6, 7103, ESTABLISHED),
    ]
    return expect


def decode_addr(text: str) -> tuple[str, int]:
    """`0100007F:1F90` -> ("127.0.0.1", 8080): each 32-bit word is printed native-endian."""
    hexaddr, hexport = text.split(":")
    raw = b"".join(
        int(hexaddr[i : i + 8], 16).to_bytes(4, sys.byteorder) for i in range(0, len(hexaddr), 8)
    )
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, raw), int(hexport, 16)


def parse(text: str) -> list[tuple[str, int, str, int, int, str]]:
    rows = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if fields:
            local, remote = decode_addr(fields[1]), decode_addr(fields[2])
            rows.append((*local, *remote, int(fields[3], 16), line))
    return rows


def check(recorded: dict[str, str], expect) -> None:
    missing = []
    for table, lip, lport, rip, rport, st in expect:
        found = [r for r in parse(recorded[table]) if r[:4] == (lip, lport, rip, rport)]
        states = [r[4] for r in found]
        if st not in states:
            missing.append(f"{table} {lip}:{lport} -> {rip}:{rport} st {st:02X} (saw {states})")
    if missing:
        die("the recorded tables lack:\n  " + "\n  ".join(missing))
    extra = sum(len(parse(t)) for t in recorded.values()) - len(expect)
    if extra:
        die(f"the recorded tables hold {extra} socket(s) more than expected")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path.relative_to(ROOT)}")


def every_state(recorded_tcp: str) -> str:
    """All twelve TCP states: the five recorded ones verbatim, the other seven made by copying
    the recorded 127.0.0.1:41001 -> 127.0.0.1:7001 ESTABLISHED line and changing its `st`."""
    lines = recorded_tcp.splitlines()
    header, body = lines[0], [line for line in lines[1:] if line.strip()]
    by_key = {}
    for line in body:
        (lip, lport, rip, rport, st, _) = parse(header + "\n" + line)[0]
        by_key[(lport, rport, st)] = line
    real = {
        LISTEN: by_key[(7001, 0, LISTEN)],
        ESTABLISHED: by_key[(41001, 7001, ESTABLISHED)],
        TIME_WAIT: by_key[(41005, 7005, TIME_WAIT)],
        CLOSE_WAIT: by_key[(7006, 41006, CLOSE_WAIT)],
        FIN_WAIT2: by_key[(41006, 7006, FIN_WAIT2)],
    }
    template = real[ESTABLISHED]
    out = [header]
    for index, st in enumerate(range(ESTABLISHED, NEW_SYN_RECV + 1)):
        if st in real:
            line = real[st]
        else:
            fields = template.split(" ")
            # Fields are separated by runs of spaces; `st` is the fourth non-empty one.
            positions = [i for i, f in enumerate(fields) if f]
            fields[positions[3]] = f"{st:02X}"
            line = " ".join(fields)
        # Renumber `sl` so the file reads like one table (sl is "%4d:").
        sl_end = line.index(":")
        out.append(f"{index:4d}" + line[sl_end:])
    return "\n".join(out) + "\n"


def main() -> None:
    check_private_namespace()
    sockets = Sockets()
    try:
        expect = open_sockets(sockets)
        # Loopback is immediate, but let the FIN/ACK exchanges settle.
        time.sleep(0.3)
        recorded = {name: Path(f"/proc/net/{name}").read_text() for name in TABLES}
    finally:
        sockets.close_all()
    check(recorded, expect)
    for name, text in recorded.items():
        write(OUT / "recorded" / name, text)
    write(OUT / "every-state" / "tcp", every_state(recorded["tcp"]))
    print(f"recorded {len(expect)} sockets")


if __name__ == "__main__":
    main()
