#!/usr/bin/env python3
"""Counts a key prefix's keys in Redis for scripts/perf/churn.sh: all keys,
keys without a TTL (live sessions' data and the indexes; finalized sessions'
keys carry a 7-day TTL), and the members of the deadline index. Prints one
JSON object. Standard library only: a minimal RESP client over a socket.

    redis_keys.py --url redis://127.0.0.1:6379 --prefix bench:xyz:
"""

import argparse
import json
import socket
from urllib.parse import urlparse


class Redis:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port))
        self.buf = self.sock.makefile("rb")

    def send(self, *commands):
        out = []
        for cmd in commands:
            out.append(f"*{len(cmd)}\r\n".encode())
            for arg in cmd:
                arg = str(arg).encode()
                out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
        self.sock.sendall(b"".join(out))
        return [self.read() for _ in commands]

    def read(self):
        line = self.buf.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-"):
            return rest.decode()
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.buf.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise ValueError(f"unexpected reply {line!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="redis://127.0.0.1:6379")
    ap.add_argument("--prefix", required=True)
    args = ap.parse_args()
    u = urlparse(args.url)
    r = Redis(u.hostname or "127.0.0.1", u.port or 6379)
    total = no_ttl = 0
    cursor = "0"
    while True:
        (reply,) = r.send(("SCAN", cursor, "MATCH", args.prefix + "*", "COUNT", 1000))
        cursor, keys = reply
        if keys:
            ttls = r.send(*[("PTTL", k) for k in keys])
            total += len(keys)
            no_ttl += sum(1 for t in ttls if t == -1)
        if cursor == "0":
            break
    (indexed,) = r.send(("ZCARD", args.prefix + "leadchat:deadlines"))
    print(json.dumps({"keys": total, "keys_without_ttl": no_ttl, "deadline_index": indexed}))


if __name__ == "__main__":
    main()
