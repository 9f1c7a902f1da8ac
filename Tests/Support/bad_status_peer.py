#!/usr/bin/env python3
"""A peer whose answers carry status lines that are not HTTP, for the tests.

  bad_status_peer.py TARGET_PORT MODE

Listens on an ephemeral port of 127.0.0.1 and passes every request to the loopsyd on
127.0.0.1:TARGET_PORT (plain HTTP), so its identity, health and keys are real. Then:

  MODE status: GET /api/v1/status is answered "HTTP/2 -5 " (curl 7.88 reports -5).
  MODE relay:  GET /api/v1/context/bad-N is answered one of several broken heads:
               bad-1 a second status line "HTTP/1.1 4294967296 a: b" after a good one,
               bad-2 "HTTP/1.1 -5 X", bad-3 "HTTP/2 99999999999 ", bad-4 "HTTP/1.1 2000 X",
               bad-5 "HTTP/1.1 200x OK" with a body.

Prints "ready PORT" once it listens. Every answer closes its connection.
"""
import http.client
import socket
import sys
import threading

BROKEN = {
    "bad-1": b"HTTP/1.1 200 OK\r\nHTTP/1.1 4294967296 a: b\r\nContent-Length: 0\r\n\r\n",
    "bad-2": b"HTTP/1.1 -5 X\r\nContent-Length: 2\r\n\r\n{}",
    "bad-3": b"HTTP/2 99999999999 \r\nContent-Length: 2\r\n\r\n{}",
    "bad-4": b"HTTP/1.1 2000 X\r\nContent-Length: 2\r\n\r\n{}",
    # curl 7.88 reads 200 here; status(ofLine:) does not.
    "bad-5": b"HTTP/1.1 200x OK\r\nContent-Length: 2\r\n\r\n{}",
}


def read_request(connection):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    length = int(headers.get("Content-Length", headers.get("content-length", "0")))
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return method, path, headers, body


def serve(connection, target_port, mode):
    try:
        request = read_request(connection)
        if request is None:
            return
        method, path, headers, body = request
        if mode == "status" and path == "/api/v1/status":
            error = b'{"error":{"code":"x","message":"y"}}'
            connection.sendall(b"HTTP/2 -5 \r\nContent-Length: %d\r\n\r\n%s" % (len(error), error))
            return
        name = path.rsplit("/", 1)[-1]
        if mode == "relay" and path.startswith("/api/v1/context/") and name in BROKEN:
            connection.sendall(BROKEN[name])
            return
        forwarded = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
        upstream = http.client.HTTPConnection("127.0.0.1", target_port, timeout=30)
        upstream.request(method, path, body=body or None, headers=forwarded)
        answer = upstream.getresponse()
        payload = answer.read()
        head = f"HTTP/1.1 {answer.status} {answer.reason}\r\n"
        for key, value in answer.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                head += f"{key}: {value}\r\n"
        head += f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        connection.sendall(head.encode("latin-1") + payload)
    finally:
        connection.close()


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("status", "relay"):
        sys.exit(__doc__)
    target_port, mode = int(sys.argv[1]), sys.argv[2]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    print("ready", server.getsockname()[1], flush=True)
    while True:
        connection, _ = server.accept()
        threading.Thread(target=serve, args=(connection, target_port, mode), daemon=True).start()


if __name__ == "__main__":
    main()
