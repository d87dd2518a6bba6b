#!/usr/bin/env python3
"""What a hostile visitor costs a running server (issue 14, findings 3, 4, 6).

    scripts/perf/hostile.py HOST:PORT SERVER_PID

Prints one line per probe with the server's RSS before and after:
  control   60 sockets each send a ping declaring 16 MiB (and 64 KiB of it)
  resume    one session of 300 messages, resumed by 100 sockets that never read
  sessions  20 fresh sessions from one address, 20 messages each at once
  feed      (finding 1) two chats, then an admin: is each in the snapshot?
            then the time from each visitor event to its admin frame
            (LEADCHAT_ADMIN_TOKEN in the environment, or PERF_ADMIN_TOKEN;
            FEED_ADMIN=HOST:PORT puts the admin on another node)
The server must allow 300 messages per 10 s for the resume probe
(LEADCHAT_LIMITS__RATE=1000/1s, as scripts/perf/lib.sh sets) and keep its
per-client limits at their defaults for the sessions probe.
Raw sockets only (no Python packages needed).
"""

import base64
import json
import os
import socket
import struct
import sys
import time


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def connect(addr, path="/ws", timeout=10, headers=""):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{headers}\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    status = int(head.split(b" ", 2)[1])
    rest = head.split(b"\r\n\r\n", 1)[1]
    return s, status, bytearray(rest)


def frame(opcode, payload, declared=None):
    n = len(payload) if declared is None else declared
    mask = os.urandom(4)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


def send_json(s, value):
    s.sendall(frame(1, json.dumps(value).encode()))


def read_frame(s, buf):
    """(opcode, payload) of the next frame; None when the connection ends."""
    while True:
        if len(buf) >= 2:
            n = buf[1] & 0x7F
            off = 2
            if n == 126 and len(buf) >= 4:
                n = struct.unpack("!H", buf[2:4])[0]
                off = 4
            elif n == 127 and len(buf) >= 10:
                n = struct.unpack("!Q", buf[2:10])[0]
                off = 10
            if n < 126 or off > 2:
                if len(buf) >= off + n:
                    op = buf[0] & 0x0F
                    payload = bytes(buf[off : off + n])
                    del buf[: off + n]
                    return op, payload
        chunk = s.recv(1 << 16)
        if not chunk:
            return None
        buf += chunk


def read_json(s, buf):
    while True:
        got = read_frame(s, buf)
        if got is None:
            return None
        op, payload = got
        if op == 1:
            return json.loads(payload)
        if op == 8:
            return {"type": "close", "code": struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 0}


def control(addr, pid):
    before = rss_mib(pid)
    socks, closed = [], 0
    for _ in range(60):
        s, status, buf = connect(addr)
        read_json(s, buf)  # the session frame
        s.sendall(frame(9, os.urandom(65536), declared=16 << 20)[: 14 + 65536])
        socks.append((s, buf))
    time.sleep(2)
    after = rss_mib(pid)
    for s, buf in socks:
        s.settimeout(2)
        try:
            got = read_json(s, buf)
            if got is None or got.get("type") == "close":
                closed += 1
        except (socket.timeout, ConnectionError, OSError):
            pass
        s.close()
    print(f"control: 60 pings declaring 16 MiB: RSS {before:.0f} -> {after:.0f} MiB, {closed}/60 closed")


def resume(addr, pid):
    s, _, buf = connect(addr)
    sid = read_json(s, buf)["session_id"]
    for i in range(300):
        send_json(s, {"type": "message", "text": "x" * 400 + f" {i}", "client_msg_id": f"m{i}"})
        read_json(s, buf)  # ack
        read_json(s, buf)  # answer
    s.close()
    r, _, rbuf = connect(addr, f"/ws?session_id={sid}")
    op, payload = read_frame(r, rbuf)
    first = json.loads(payload)
    r.close()
    before = rss_mib(pid)
    socks = []
    for _ in range(100):
        t, _, _ = connect(addr, f"/ws?session_id={sid}")
        t.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        socks.append(t)
    time.sleep(3)
    after = rss_mib(pid)
    refused = 0
    for t in socks:
        t.close()
    print(
        f"resume: 601-line session frame {len(payload)} bytes, {len(first['history'])} lines, "
        f"truncated={first.get('history_truncated')}; 100 sockets that never read: RSS {before:.0f} -> {after:.0f} MiB"
    )


def sessions(addr, pid):
    accepted = refused = upgrades_refused = 0
    socks = []
    for _ in range(20):
        try:
            s, status, buf = connect(addr)
        except ConnectionError:
            upgrades_refused += 1
            continue
        if status != 101:
            upgrades_refused += 1
            s.close()
            continue
        read_json(s, buf)
        socks.append((s, buf))
    for s, buf in socks:
        for i in range(20):
            send_json(s, {"type": "message", "text": f"hello {i}", "client_msg_id": f"c{i}"})
    for s, buf in socks:
        s.settimeout(3)
        try:
            while True:
                got = read_json(s, buf)
                if got is None:
                    break
                if got.get("type") == "ack":
                    accepted += 1
                elif got.get("code") == "rate_limited":
                    refused += 1
        except (socket.timeout, OSError):
            pass
        s.close()
    print(
        f"sessions: 20 fresh sessions from one address: {len(socks)} opened, {upgrades_refused} refused (429); "
        f"{accepted} of {len(socks) * 20} messages accepted at once, {refused} rate_limited"
    )


def feed(addr, pid):
    token = os.environ.get("LEADCHAT_ADMIN_TOKEN") or os.environ.get("PERF_ADMIN_TOKEN", "perf-admin-token-0000")
    auth = f"Authorization: Bearer {token}\r\n"

    def visitor(n):
        s, _, buf = connect(addr)
        sid = read_json(s, buf)["session_id"]
        send_json(s, {"type": "contact", "name": f"Feed {n}", "email": f"feed{n}@example.com",
                      "phone": "", "organization": "Probe"})
        read_json(s, buf)
        return s, buf, sid

    early = [visitor(n) for n in range(2)]
    t0 = time.monotonic()
    a, status, abuf = connect(os.environ.get("FEED_ADMIN", addr), "/admin/ws", headers=auth)
    if status != 101:
        print(f"feed: /admin/ws answered {status}")
        return
    snap = read_json(a, abuf)
    snap_ms = (time.monotonic() - t0) * 1000
    listed = {x["session_id"] for x in snap.get("sessions", [])}
    in_snapshot = sum(sid in listed for _, _, sid in early)
    # An admin already watching: each visitor event until its frame arrives.
    s, buf, sid = visitor(2)
    waits = []
    a.settimeout(3)
    for i in range(20):
        a.settimeout(0.05)  # what the last message's answer still sends
        try:
            while read_json(a, abuf) is not None:
                pass
        except socket.timeout:
            pass
        a.settimeout(3)
        sent = time.monotonic()
        send_json(s, {"type": "message", "text": f"we need EPR help {i}", "client_msg_id": f"f{i}"})
        try:
            while True:
                got = read_json(a, abuf)
                if got is None:
                    break
                if got.get("type") == "session_updated" and got["session"]["session_id"] == sid:
                    waits.append((time.monotonic() - sent) * 1000)
                    break
        except socket.timeout:
            pass
        read_json(s, buf)  # ack
        read_json(s, buf)  # answer
    for v, _, _ in early + [(s, buf, sid)]:
        v.close()
    a.close()
    waits.sort()
    worst = f"{waits[-1]:.1f}" if waits else "-"
    median = f"{waits[len(waits) // 2]:.1f}" if waits else "-"
    print(
        f"feed: snapshot after {snap_ms:.0f} ms lists {in_snapshot}/2 earlier chats ({len(listed)} in all); "
        f"{len(waits)}/20 messages reached the admin, median {median} ms, worst {worst} ms"
    )


if __name__ == "__main__":
    address, server_pid = sys.argv[1], int(sys.argv[2])
    probes = sys.argv[3:] or ["control", "resume", "sessions"]
    for probe in probes:
        globals()[probe](address, server_pid)
