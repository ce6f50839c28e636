"""An HTTP/1.1 upstream that writes each response's head and body in two sends (Python's
`http.server`, keep-alive), with Nagle on or, given `--nodelay`, off.

    python bench/upstream_twosends.py PORT [--nodelay]
"""

from __future__ import annotations

import http.server
import os
import socket
import sys

BODY = os.urandom(1024)


class TwoSends(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    nodelay = False

    def setup(self) -> None:
        super().setup()
        if self.nodelay:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()  # the head: one send
        self.wfile.write(BODY)  # the body: another (wfile is unbuffered)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    TwoSends.nodelay = "--nodelay" in sys.argv[2:]
    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), TwoSends)
    server.serve_forever()


if __name__ == "__main__":
    main()
