"""Holds N inbox long polls open on a loopsyd and reports the CPU time the daemon spent
registering them, then what one message costs when it answers all of them.
Used by bench/longpoll.sh; arguments: port key count."""
import os
import select
import socket
import sys
import time

port, key, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
pid = int(os.environ["LOOPSYD_PID"])
ticks = os.sysconf("SC_CLK_TCK")


def cpu_seconds():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks


def request(method, path, body=b""):
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def cursor():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(request("GET", "/api/v1/messages/inbox?limit=1000&after=0"))
    head = s.recv(65536).decode()
    s.close()
    return int(head.split('"cursor":')[1].split(",")[0].split("}")[0])


after = cursor()
before = cpu_seconds()
started = time.monotonic()
sockets = []
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(request("GET", f"/api/v1/messages/inbox?wait=60&after={after}"))
    sockets.append(s)
registered = time.monotonic() - started
time.sleep(1.0)  # let the daemon finish what the registrations queued
register_cpu = cpu_seconds() - before
# The response head goes out at once (the body is streamed); no body may have come yet.
received = {}
for s in sockets:
    s.setblocking(False)
    try:
        received[s] = s.recv(65536)
    except BlockingIOError:
        received[s] = b""
    s.setblocking(True)
early = sum(b'"cursor"' in data for data in received.values())
if early:
    sys.exit(f"{early} of {count} long polls were answered before any message arrived")

# One message answers every poll.
before = cpu_seconds()
started = time.monotonic()
send = socket.create_connection(("127.0.0.1", port))
send.sendall(request("POST", "/api/v1/messages", b'{"to":"self","body":"wake up"}'))
answered = 0
for s in sockets:
    s.settimeout(30)
    data = received[s]
    while b'"cursor"' not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    answered += data.startswith(b"HTTP/1.1 200") and b'"wake up"' in data
elapsed = time.monotonic() - started
time.sleep(0.2)
answer_cpu = cpu_seconds() - before
print(f"{count} {registered:.3f} {register_cpu:.3f} {answered} {elapsed:.3f} {answer_cpu:.3f}")
