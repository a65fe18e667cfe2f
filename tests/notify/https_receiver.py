"""An HTTPS webhook receiver for the notification tests.

    python https_receiver.py --port P --outdir DIR --cert C --key K

Answers every POST 200 and writes it to DIR as <n>.json:
{"path", "signature" (the Vmail-Signature header), "event_id"
(Vmail-Event-Id), "body"} (atomically, by rename). Runs until killed.
"""

import argparse
import json
import os
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNT = [0]
LOCK = threading.Lock()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--outdir", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    args = p.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n).decode("utf-8", "replace")
            with LOCK:
                COUNT[0] += 1
                name = "%d-%d.json" % (time.time_ns(), COUNT[0])
            record = {
                "path": self.path,
                "signature": self.headers.get("Vmail-Signature", ""),
                "event_id": self.headers.get("Vmail-Event-Id", ""),
                "body": body,
            }
            tmp = os.path.join(args.outdir, "." + name + ".tmp")
            with open(tmp, "w") as f:
                json.dump(record, f)
            os.rename(tmp, os.path.join(args.outdir, name))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, fmt, *a):
            pass

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
