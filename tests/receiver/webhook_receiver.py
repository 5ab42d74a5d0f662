"""A webhook receiver for billrun's tests: a real HTTP server on 127.0.0.1 that checks every
request with the Standard Webhooks reference library (the `standardwebhooks` package from
PyPI), not with billrun's code, and misbehaves on purpose on chosen attempts.

Usage: webhook_receiver.py --secret whsec_... --log FILE [--plan 500,hang,drop] [--always 410]
       [--hang SECONDS]

It prints the port it listens on, then serves until killed. For each webhook-id, attempt n is
answered by the n-th step of --plan (500: an HTTP 500; hang: no answer for --hang seconds, past
billrun's timeout; drop: the connection closed without an answer) and, after the plan, by 204.
--always answers every request the same way (a status, hang or drop). Every request is logged as one JSON line:
the id, the attempt, whether the signature verified, the answer given and the parsed body.
"""

import argparse
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--plan", default="")
    parser.add_argument("--always")
    parser.add_argument("--hang", type=float, default=3.0)
    args = parser.parse_args()
    plan = [step for step in args.plan.split(",") if step]
    hook = Webhook(args.secret)
    attempts = {}
    lock = threading.Lock()

    def record(entry):
        with lock, open(args.log, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            msg_id = self.headers.get("webhook-id", "")
            try:
                payload = hook.verify(body, dict(self.headers.items()))
                verified = True
            except WebhookVerificationError as e:
                payload, verified = {"error": str(e)}, False
            with lock:
                attempts[msg_id] = attempts.get(msg_id, 0) + 1
                n = attempts[msg_id]
            if not verified:
                answer = "400"
            elif args.always:
                answer = args.always
            elif n <= len(plan):
                answer = plan[n - 1]
            else:
                answer = "204"
            record({"id": msg_id, "attempt": n, "verified": verified, "answer": answer,
                    "timestamp": self.headers.get("webhook-timestamp"), "body": payload})
            if answer == "hang":
                time.sleep(args.hang)
                self.close_connection = True
                return
            if answer == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(int(answer))
            self.send_header("content-length", "0")
            self.end_headers()

    class Server(ThreadingHTTPServer):
        # A production receiver's backlog, not socketserver's 5: two deliverers opening
        # connections at once on a loaded machine overflowed that, and were reset.
        request_queue_size = 128

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
