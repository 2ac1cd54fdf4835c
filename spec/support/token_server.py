#!/usr/bin/env python3
"""A tiny OAuth2 token endpoint (client-credentials grant) that the dev server trusts.
Python 3 standard library only.

    python3 spec/support/token_server.py --client-id ID --client-secret SECRET
        [--host 127.0.0.1] [--port 0] [--expires-in N] [--no-expires-in]
        [--token-file FILE] [--token-prefix tok-] [--delay-ms N]

Prints "LISTENING 127.0.0.1:PORT" (flushed) once it accepts connections; SIGTERM/SIGINT stop it.

  POST /token   HTTP Basic client auth (RFC 6749 2.3.1: id and secret form-urlencoded, then
                base64), body grant_type=client_credentials
                -> 200 {"access_token": "tok-<n>", "token_type": "Bearer", "expires_in": N}
                -> 401 {"error": "invalid_client"} (with WWW-Authenticate) for missing/wrong credentials
                -> 400 {"error": "unsupported_grant_type"} for another grant
  GET  /stats   -> {"requests": POSTs to /token, "issued": tokens issued, "failed": refused
                    requests, "revoked": tokens revoked, "last_token": "..."}
  POST /revoke  every token issued so far stops being active -> {"revoked": n}

--delay-ms N: every POST /token is answered N ms after it came (a slow token endpoint;
/stats counts the request when it comes).

--token-file FILE: after every issue or revoke the file is rewritten atomically (temp file +
rename) with one line per active token, "TOKEN EXPIRY_UNIX_SECONDS" (0 = no expiry). Start
lh-devserver with the same --token-file and it accepts exactly those tokens until they expire:

    token_server.py --client-id c --client-secret s --expires-in 2 --token-file /tmp/t &
    lh-devserver --token-file /tmp/t

Tokens are "<prefix><n>" (n = 1, 2, ...), the same shape as spec/support/oauth_token_server.py,
so a dev server given fixed `--require-token tok-1 ...` also accepts them.
"""
import argparse
import base64
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret", required=True)
    ap.add_argument("--expires-in", type=float, default=3600)
    ap.add_argument("--no-expires-in", action="store_true", help="omit expires_in (tokens never expire)")
    ap.add_argument("--token-file", help="keep the active tokens in this file for lh-devserver --token-file")
    ap.add_argument("--token-prefix", default="tok-")
    ap.add_argument("--delay-ms", type=int, default=0, help="answer POST /token this many ms late")
    args = ap.parse_args()

    lock = threading.Lock()
    state = {"requests": 0, "issued": 0, "failed": 0, "revoked": 0, "last_token": None}
    active = {}  # token -> expiry (Unix seconds, 0 = never)

    def write_token_file():  # with lock held
        if not args.token_file:
            return
        now = time.time()
        for tok in [t for t, exp in active.items() if exp and exp <= now]:
            del active[tok]
        tmp = "%s.tmp.%d" % (args.token_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("# lh-devserver --token-file, written by token_server.py\n")
            for tok, exp in active.items():
                f.write("%s %.3f\n" % (tok, exp))
        os.replace(tmp, args.token_file)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):  # quiet
            pass

        def reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            if code == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="token"')
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/stats":
                with lock:
                    self.reply(200, dict(state))
            else:
                self.reply(404, {"error": "not_found"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            if self.path == "/stats":
                self.do_GET()
                return
            if self.path == "/revoke":
                with lock:
                    n = len(active)
                    active.clear()
                    state["revoked"] += n
                    write_token_file()
                self.reply(200, {"revoked": n})
                return
            if self.path != "/token":
                self.reply(404, {"error": "not_found"})
                return
            with lock:
                state["requests"] += 1
            if args.delay_ms > 0:
                time.sleep(args.delay_ms / 1000.0)
            auth = self.headers.get("Authorization") or ""
            cid = secret = None
            if auth[:6].lower() == "basic ":
                try:
                    dec = base64.b64decode(auth[6:].strip(), validate=True).decode()
                    u, sep, p = dec.partition(":")
                    if sep:
                        cid, secret = urllib.parse.unquote_plus(u), urllib.parse.unquote_plus(p)
                except Exception:
                    pass
            if cid != args.client_id or secret != args.client_secret:
                with lock:
                    state["failed"] += 1
                self.reply(401, {"error": "invalid_client", "error_description": "Bad client credentials"})
                return
            form = urllib.parse.parse_qs(raw)
            if form.get("grant_type") != ["client_credentials"]:
                with lock:
                    state["failed"] += 1
                self.reply(400, {"error": "unsupported_grant_type"})
                return
            with lock:
                state["issued"] += 1
                tok = "%s%d" % (args.token_prefix, state["issued"])
                state["last_token"] = tok
                active[tok] = 0 if args.no_expires_in else time.time() + args.expires_in
                write_token_file()
            out = {"access_token": tok, "token_type": "Bearer"}
            if not args.no_expires_in:
                e = args.expires_in
                out["expires_in"] = int(e) if e == int(e) else e
            self.reply(200, out)

    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True
    with lock:
        write_token_file()  # no token is active yet
    stop = lambda *_: threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("LISTENING %s:%d" % srv.server_address[:2], flush=True)
    srv.serve_forever(poll_interval=0.05)
    srv.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
