#!/usr/bin/env python3
"""A counting SMTP sink for scripts/perf/burst.sh: accepts every mail (plain
SMTP, no auth), keeps nothing but its Message-ID and arrival time, and writes
its figures as JSON to --stats every half second and on exit.

Python standard library only (asyncio), so CI and a fresh machine need no
install. Figures: mails, distinct Message-IDs, duplicates (the same
Message-ID twice: leadchat derives it from the session id, so a duplicate is a
session mailed twice), first and last arrival (Unix seconds), bytes; the same
per --group WORD: mails whose Subject contains WORD (the visitor's name is in
the subject, so load generator groups with different names can be told apart).
"""

import argparse
import asyncio
import json
import os
import signal
import time


class Counts:
    def __init__(self):
        self.mails = 0
        self.bytes = 0
        self.ids = set()
        self.duplicates = 0
        self.first = None
        self.last = None

    def received(self, data: bytes, mid):
        now = time.time()
        self.mails += 1
        self.bytes += len(data)
        self.first = self.first or now
        self.last = now
        if mid in self.ids:
            self.duplicates += 1
        elif mid is not None:
            self.ids.add(mid)

    def figures(self):
        return {
            "mails": self.mails,
            "distinct": len(self.ids),
            "duplicates": self.duplicates,
            "first": self.first,
            "last": self.last,
            "bytes": self.bytes,
        }


class Sink:
    def __init__(self, groups):
        self.all = Counts()
        self.groups = {g: Counts() for g in groups}
        self.connections = 0

    def received(self, data: bytes):
        mid = subject = None
        for line in data.split(b"\r\n"):
            if not line:
                break  # end of the headers
            low = line[:11].lower()
            if low == b"message-id:":
                mid = line[11:].strip()
            elif low.startswith(b"subject:"):
                subject = line[8:].strip()
        self.all.received(data, mid)
        for word, counts in self.groups.items():
            if subject is not None and word.encode() in subject:
                counts.received(data, mid)

    def figures(self):
        figures = self.all.figures()
        figures["connections"] = self.connections
        figures["groups"] = {g: c.figures() for g, c in self.groups.items()}
        return figures

    async def serve(self, reader, writer):
        self.connections += 1
        w = writer.write
        w(b"220 sink ESMTP\r\n")
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    w(b"250-sink\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n")
                elif verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    w(b"250 ok\r\n")
                elif verb == b"DATA":
                    w(b"354 go ahead\r\n")
                    await writer.drain()
                    data = await reader.readuntil(b"\r\n.\r\n")
                    self.received(data)
                    w(b"250 queued\r\n")
                elif verb == b"QUIT":
                    w(b"221 bye\r\n")
                    await writer.drain()
                    return
                else:
                    w(b"502 not implemented\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            writer.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=2525)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--group", action="append", default=[])
    args = ap.parse_args()
    sink = Sink(args.group)
    server = await asyncio.start_server(sink.serve, "127.0.0.1", args.port, limit=64 * 1024 * 1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def dump():
        tmp = args.stats + ".tmp"
        with open(tmp, "w") as f:
            json.dump(sink.figures(), f)
        os.replace(tmp, args.stats)

    print(f"smtp sink on 127.0.0.1:{args.port}", flush=True)
    async with server:
        while not stop.is_set():
            dump()
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
    dump()


if __name__ == "__main__":
    asyncio.run(main())
