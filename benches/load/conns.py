#!/usr/bin/env python3
"""Opens N keep-alive HTTP/1.1 connections to 127.0.0.1:PORT, makes one GET on each, and keeps them
all open (idle) for HOLD seconds or until killed (memory.sh kills it once it has measured). With
TLS=1 in the environment the connections are HTTPS (ALPN http/1.1, the certificate not checked: the
bench's own, on loopback).

    conns.py PORT N [HOLD=120] [PARALLEL=200]

Prints `READY ok=<connections that got a 200 and are held> failed=<the rest>` once every connection has
had its answer (or failed), then waits.
"""

import asyncio
import os
import resource
import ssl
import sys

TLS = None
if os.environ.get("TLS") == "1":
    TLS = ssl.create_default_context()
    TLS.check_hostname = False
    TLS.verify_mode = ssl.CERT_NONE
    TLS.set_alpn_protocols(["http/1.1"])


async def one(port, sem, held):
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=TLS), 10)
            writer.write(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: conns.py\r\n\r\n".encode())
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            status = head.split(b" ", 2)[1]
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await asyncio.wait_for(reader.readexactly(length), 10)
            if status != b"200":
                writer.close()
                return False
            held.append(writer)
            return True
        except (OSError, ssl.SSLError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return False


async def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    hold = float(sys.argv[3]) if len(sys.argv) > 3 else 120
    parallel = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sem = asyncio.Semaphore(parallel)
    held = []
    results = await asyncio.gather(*(one(port, sem, held) for _ in range(n)))
    ok = sum(results)
    print(f"READY ok={ok} failed={n - ok}", flush=True)
    await asyncio.sleep(hold)
    for w in held:
        w.close()


if __name__ == "__main__":
    asyncio.run(main())
