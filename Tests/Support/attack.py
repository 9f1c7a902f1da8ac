#!/usr/bin/env python3
"""Attacks on a loopsyd, for the tests and bench/soak.sh. Each one is bounded in count and time
and prints one JSON line of what it saw.

  attack.py slowloris HOST PORT CONNECTIONS INTERVAL SECONDS
      Opens CONNECTIONS connections that send a request head one line every INTERVAL seconds
      and never finish it. Reports how many the server admitted, the most open at once, and
      how long the longest one was held.
  attack.py flood HOST PORT REQUESTS PATH_BYTES
      Unauthenticated GETs with long paths on keep-alive connections; reports the statuses.
  attack.py mdns COUNT SECONDS PORT
      Announces COUNT fake _loopsy._tcp nodes with avahi-publish for SECONDS.
  attack.py mdns-at ADDRESS SECONDS PORT
      Announces for SECONDS two fake _loopsy._tcp nodes: one on a host name published at ADDRESS
      (say 127.0.0.1, to have the listener call its own loopback), one at this host's own address.
  attack.py bodies HOST PORT KEYFILE CONNECTIONS BYTES SECONDS MARKER
      Opens CONNECTIONS context PUTs of BYTES each with the key in KEYFILE, sends all of each body
      but its last byte, creates the file MARKER, waits SECONDS, then ends every body; reports
      each answer's status and error code.
"""
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import time


def slowloris(host, port, count, interval, seconds):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 64)), hard))
    selector = selectors.DefaultSelector()
    started = time.monotonic()
    opened = {}  # socket -> time it connected
    held = []  # seconds each admitted connection stayed open
    refused = 0
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect((host, port))
        except BlockingIOError:
            pass
        except OSError:
            refused += 1
            sock.close()
            continue
        opened[sock] = time.monotonic()
        selector.register(sock, selectors.EVENT_READ)
    # Everything connected (the kernel accepts before the server decides); the first line goes out.
    for sock in list(opened):
        try:
            sock.send(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            pass
    max_open = 0
    next_line = time.monotonic() + interval
    while time.monotonic() - started < seconds and opened:
        timeout = max(0.0, min(next_line, started + seconds) - time.monotonic())
        for key, _ in selector.select(timeout):
            sock = key.fileobj
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                held.append(time.monotonic() - opened.pop(sock))
                selector.unregister(sock)
                sock.close()
        # Connections the server closed within a moment were refused at accept.
        alive = len(opened)
        max_open = max(max_open, alive)
        if time.monotonic() >= next_line:
            next_line += interval
            for sock in list(opened):
                try:
                    sock.send(b"X-Dribble: 1\r\n")
                except OSError:
                    pass
    still_open = len(opened)
    for sock, since in opened.items():
        held.append(time.monotonic() - since)
        sock.close()
    admitted = sum(1 for h in held if h > 0.5)
    print(json.dumps({"connections": count, "refusedAtConnect": refused, "admitted": admitted,
                      "openAtEnd": still_open, "longestHeld": round(max(held, default=0), 2)}))


def flood(host, port, requests, path_bytes):
    statuses = {}
    path = "/api/v1/" + "a" * max(0, path_bytes - 8)
    sent = 0
    sock = None
    reader = None
    while sent < requests:
        if sock is None:
            sock = socket.create_connection((host, port), timeout=10)
            reader = sock.makefile("rb")
        try:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            status_line = reader.readline()
            status = status_line.split(b" ")[1].decode() if status_line else "closed"
            length = 0
            while True:
                line = reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reader.read(length)
            close = status == "closed"
        except OSError:
            status, close = "error", True
        statuses[status] = statuses.get(status, 0) + 1
        sent += 1
        if close:
            sock.close()
            sock = None
    if sock:
        sock.close()
    print(json.dumps({"sent": sent, "statuses": statuses}))


def bodies(host, port, key_file, count, length, seconds, marker):
    with open(key_file) as handle:
        key = handle.read().strip()
    head = (f"PUT /api/v1/context/held HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()
    socks = []
    for _ in range(count):
        sock = socket.create_connection((host, port), timeout=30)
        sock.sendall(head + b"v" * (length - 1))
        socks.append(sock)
    open(marker, "w").close()
    time.sleep(seconds)
    answers = []
    for sock in socks:
        sock.sendall(b"v")
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        text = reply.decode("utf-8", "replace")
        status = int(text.split(" ", 2)[1]) if text.startswith("HTTP/") else 0
        code = text.split('"code":"', 1)[1].split('"', 1)[0] if '"code":"' in text else ""
        answers.append({"status": status, "code": code, "message": text.split('"message":"', 1)[-1][:120]})
        sock.close()
    print(json.dumps({"answers": answers}))


def mdns(count, seconds, port):
    children = []
    for index in range(count):
        node_id = "%016x%016x" % (0xFA4E0000 + os.getpid(), index)  # distinct per announcing process
        children.append(subprocess.Popen(
            ["avahi-publish", "-s", f"fake-{os.getpid()}-{index}", "_loopsy._tcp", str(port), f"nodeId={node_id}",
             f"name=fake-{os.getpid()}-{index}", "version=0", "platform=linux", "tls=0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(seconds)
    for child in children:
        child.kill()  # SIGKILL: a mask inherited from the test runner may block SIGTERM
    for child in children:
        child.wait()
    print(json.dumps({"announced": count}))


def mdns_at(address, seconds, port):
    pid = os.getpid()
    host = f"elsewhere-{pid}.local"
    pointed, control = "%016x%016x" % (0xFA4E0000 + pid, 1), "%016x%016x" % (0xFA4E0000 + pid, 2)
    children = [
        subprocess.Popen(["avahi-publish", "-a", "-R", host, address],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(["avahi-publish", "-s", "-H", host, f"pointed-{pid}", "_loopsy._tcp", str(port),
                          f"nodeId={pointed}", f"name=pointed-{pid}", "version=0", "platform=linux", "tls=0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(["avahi-publish", "-s", f"control-{pid}", "_loopsy._tcp", str(port),
                          f"nodeId={control}", f"name=control-{pid}", "version=0", "platform=linux", "tls=0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    print(json.dumps({"pointed": pointed, "control": control}), flush=True)
    time.sleep(seconds)
    for child in children:
        child.kill()  # SIGKILL: a mask inherited from the test runner may block SIGTERM
    for child in children:
        child.wait()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    kind, args = sys.argv[1], sys.argv[2:]
    if kind == "slowloris" and len(args) == 5:
        slowloris(args[0], int(args[1]), int(args[2]), float(args[3]), float(args[4]))
    elif kind == "flood" and len(args) == 4:
        flood(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif kind == "bodies" and len(args) == 7:
        bodies(args[0], int(args[1]), args[2], int(args[3]), int(args[4]), float(args[5]), args[6])
    elif kind == "mdns" and len(args) == 3:
        mdns(int(args[0]), float(args[1]), int(args[2]))
    elif kind == "mdns-at" and len(args) == 3:
        mdns_at(args[0], float(args[1]), int(args[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
