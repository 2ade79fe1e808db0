"""An SMTP server Herald's authors did not write, for the email fallback's tests.

aiosmtpd's SMTP protocol on 127.0.0.1 (a port the kernel picks), STARTTLS required, then
AUTH PLAIN or LOGIN with one user and password. Its certificate, for `localhost` and
`127.0.0.1`, is signed by a throwaway authority (trustme) whose PEM is written to CA_FILE.

    server.py CA_FILE MESSAGES_FILE USER PASSWORD

stdout, one JSON object a line: {"port": N} once listening, then one acknowledgement per
command. stdin, one command a line:

    close   stop listening (connections are refused: the server is down) and cut the open
            connections; the port stays bound (not listening) so that nothing else takes it
    open    listen again on the same port

Each message taken is appended to MESSAGES_FILE as one JSON line (the queue id, whether
the session was TLS, the user it logged in as, envelope sender and recipients, the raw
message in base64) before the server answers 250, so a
client that saw the 250 finds the line there. RCPT to reject@… is refused with 550, to
busy@… with 451. The server stops when stdin closes, so it never outlives its test.
"""

import asyncio
import base64
import json
import logging
import socket
import ssl
import sys
import uuid

import trustme
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Handler:
    def __init__(self, messages_file):
        self.messages_file = messages_file

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject@"):
            return "550 5.1.1 No such user"
        if address.startswith("busy@"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        queue_id = uuid.uuid4().hex[:10].upper()
        line = json.dumps(
            {
                "queue_id": queue_id,
                "tls": session.ssl is not None,
                "user": session.auth_data,
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "data": base64.b64encode(envelope.original_content).decode("ascii"),
            }
        )
        # One write of a whole line: a reader never sees half a message.
        with open(self.messages_file, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        return f"250 2.0.0 Ok: queued as {queue_id}"


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        if not ok:
            # handled=False: aiosmtpd answers 535 itself (with handled=True it would answer
            # nothing and the client would wait).
            return AuthResult(success=False, handled=False)
        # auth_data becomes session.auth_data: the user each message records.
        return AuthResult(success=True, auth_data=self.user.decode())


def reusable_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return s


class Server:
    def __init__(self, tls_context, handler, authenticator):
        self.tls_context = tls_context
        self.handler = handler
        self.authenticator = authenticator
        # Bound and never listening: keeps the port ours while the server is down, and a
        # connection to a port with no listener is refused.
        self.holder = reusable_socket()
        self.holder.bind(("127.0.0.1", 0))
        self.port = self.holder.getsockname()[1]
        self.server = None
        # Each connection's first transport (the TCP one, under any TLS layered on it).
        self.connections = {}

    def protocol(self):
        connections = self.connections

        class Tracked(SMTP):
            def connection_made(self, transport):
                connections.setdefault(self, transport)
                super().connection_made(transport)

            def connection_lost(self, error):
                connections.pop(self, None)
                super().connection_lost(error)

        return Tracked(
            self.handler,
            hostname="localhost",
            tls_context=self.tls_context,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=self.authenticator,
        )

    async def open(self):
        if self.server is not None:
            return
        sock = reusable_socket()
        sock.bind(("127.0.0.1", self.port))
        sock.listen(100)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self.protocol, sock=sock)

    async def close(self):
        if self.server is None:
            return
        self.server.close()
        # A server that went down takes its connections with it; otherwise a client's pooled
        # connection would carry on as if nothing happened.
        for transport in list(self.connections.values()):
            transport.abort()
        self.connections.clear()
        await self.server.wait_closed()
        self.server = None


async def main():
    ca_file, messages_file, user, password = sys.argv[1:5]
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)

    ca = trustme.CA()
    ca.cert_pem.write_to_path(ca_file)
    tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(tls_context)
    open(messages_file, "a").close()

    server = Server(tls_context, Handler(messages_file), Authenticator(user, password))
    await server.open()
    say({"port": server.port})

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while True:
        line = await stdin.readline()
        if not line:
            break
        command = line.decode().strip()
        if command == "close":
            await server.close()
            say({"closed": server.port})
        elif command == "open":
            await server.open()
            say({"opened": server.port})
        else:
            say({"error": f"unknown command {command!r}"})
    await server.close()


if __name__ == "__main__":
    asyncio.run(main())
