#!/usr/bin/env python3
"""Upload and slowloris pressure on a running bcfl-devnet REST API (loopback only); prints JSON.

    bench/rest-pressure.py --pid PID --addr 127.0.0.1:PORT [--uploads 60] [--mib 9] [--slowloris-s 40]

1. Opens `--uploads` connections, each a `POST /batches` announcing `--mib` MiB and sending all
   but its last byte, and holds them open; reports the devnet's resident memory (VmRSS of
   `--pid`) before and after, and how many uploads the server answered or closed meanwhile.
2. Sends half a request header and reports how long the server keeps that connection open
   (up to `--slowloris-s`).
"""
import argparse
import json
import socket
import time


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--addr", required=True)
    parser.add_argument("--uploads", type=int, default=60)
    parser.add_argument("--mib", type=int, default=9)
    parser.add_argument("--slowloris-s", type=float, default=40)
    args = parser.parse_args()
    host, port = args.addr.rsplit(":", 1)
    assert host in ("127.0.0.1", "localhost"), "loopback only"
    port = int(port)

    before = rss_mib(args.pid)
    length = args.mib * 1024 * 1024
    chunk = b"\0" * (1024 * 1024)
    held, refused = [], 0
    for _ in range(args.uploads):
        s = socket.create_connection((host, port))
        s.settimeout(5)
        s.sendall(
            f"POST /batches HTTP/1.1\r\nHost: {args.addr}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n".encode()
        )
        try:
            left = length - 1
            while left > 0:
                n = min(left, len(chunk))
                s.sendall(chunk[:n])
                left -= n
            held.append(s)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            # The server answered (e.g. 429) and stopped reading this upload.
            refused += 1
            s.close()
    time.sleep(2)
    after = rss_mib(args.pid)
    answered = 0
    for s in held:
        s.setblocking(False)
        try:
            if s.recv(64):
                answered += 1
        except BlockingIOError:
            pass
        except OSError:
            answered += 1
    for s in held:
        s.close()

    slow = socket.create_connection((host, port))
    slow.sendall(b"GET /blocks HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    slow.settimeout(args.slowloris_s)
    started = time.monotonic()
    try:
        closed = slow.recv(1) == b""
    except socket.timeout:
        closed = False
    except OSError:
        closed = True
    open_s = time.monotonic() - started
    slow.close()

    print(
        json.dumps(
            {
                "uploads": args.uploads,
                "upload_mib": args.mib,
                "rss_before_mib": round(before, 1),
                "rss_with_uploads_held_mib": round(after, 1),
                "rss_growth_mib": round(after - before, 1),
                "uploads_refused_while_sending": refused,
                "uploads_answered_while_held": answered,
                "slowloris_closed_by_server": closed,
                "slowloris_open_s": round(open_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
