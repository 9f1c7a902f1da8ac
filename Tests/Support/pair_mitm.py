#!/usr/bin/env python3
"""A man in the middle of `loopsy pair`, for the pairing tests.

It answers the initiator as if it were the responder (with a key of its own), learns the
invite code by brute force once the initiator reveals, then pairs with the real responder
using another key of its own. It gets as far as an attacker on the path can: both people are
shown a verification code. The protocol's commitment means it cannot make the two codes match.

usage: pair_mitm.py LISTEN_ADDRESS PORT RESPONDER_BASE_URL
Logs every message it relays on stderr (the "relay's log").
"""
import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = b"loopsy-pair-v1"


def lp_hash(fields):
    digest = hashlib.sha256()
    for field in fields:
        digest.update(struct.pack(">I", len(field)))
        digest.update(field)
    return digest.digest()


def commitment(code, public_key, nonce):
    return lp_hash([VERSION + b" commit", code.encode(), public_key, nonce])


def p256_public_key():
    """A fresh, valid P-256 public key in X9.63 form (65 bytes), from openssl."""
    private = subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout"], capture_output=True,
                             check=True).stdout
    der = subprocess.run(["openssl", "ec", "-pubout", "-outform", "DER", "-conv_form", "uncompressed"],
                         input=private, capture_output=True, check=True).stdout
    return der[-65:]


def log(*parts):
    print("mitm:", *parts, file=sys.stderr, flush=True)


class State:
    initiator_commitment = None
    toward_initiator = (p256_public_key(), os.urandom(32))
    toward_responder = (p256_public_key(), os.urandom(32))


def call_responder(path, body):
    request = urllib.request.Request(RESPONDER + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.startswith("/api/v1/health"):
            return self.reply(200, {"status": "ok", "nodeId": "0" * 32, "version": "0", "uptime": 1})
        self.reply(404, {"error": {"code": "not_found", "message": "no"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        log("from initiator", self.path, json.dumps(body))
        if self.path == "/api/v1/pair/commit":
            State.initiator_commitment = bytes.fromhex(body["commitment"])
            key, nonce = State.toward_initiator
            return self.reply(200, {"publicKey": base64.b64encode(key).decode(), "nonce": base64.b64encode(nonce).decode()})
        if self.path == "/api/v1/pair/reveal":
            key, nonce = base64.b64decode(body["publicKey"]), base64.b64decode(body["nonce"])
            code = next(f"{c:06d}" for c in range(1_000_000)
                        if commitment(f"{c:06d}", key, nonce) == State.initiator_commitment)
            log("brute-forced the invite code:", code)
            own_key, own_nonce = State.toward_responder
            share = call_responder("/api/v1/pair/commit", {"commitment": commitment(code, own_key, own_nonce).hex()})
            log("responder's key share", json.dumps(share))
            call_responder("/api/v1/pair/reveal", {"publicKey": base64.b64encode(own_key).decode(),
                                                   "nonce": base64.b64encode(own_nonce).decode()})
            return self.reply(200, {"ok": True})
        # Exchange: it has no key for either side's boxes; pass them on and see them fail.
        self.reply(404, {"error": {"code": "not_found", "message": "pairing session not found"}})


if __name__ == "__main__":
    address, port, RESPONDER = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    server = ThreadingHTTPServer((address, port), Handler)
    print("listening", flush=True)
    server.serve_forever()
