#!/usr/bin/env python3
"""A local SMTP server (aiosmtpd) for the email exporter's tests.

    python smtp_sink.py --port N [--cert C --key K] [--user U --password P]

With --cert and --key it offers STARTTLS and refuses mail before it; with
--user and --password it requires AUTH PLAIN/LOGIN (only after STARTTLS).
Prints READY once listening, then one JSON line per message received:
{"from", "to", "tls", "user", "data"}. Stops on stdin EOF or SIGTERM.
Listens on 127.0.0.1 only.
"""
import argparse
import json
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Handler:
    async def handle_DATA(self, server, session, envelope):
        print(
            json.dumps(
                {
                    "from": envelope.mail_from,
                    "to": envelope.rcpt_tos,
                    "tls": session.ssl is not None,
                    "user": session.auth_data if session.authenticated else None,
                    "data": envelope.content.decode("utf8", "replace"),
                }
            ),
            flush=True,
        )
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()

    kwargs = {}
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        kwargs.update(tls_context=context, require_starttls=True)
    if args.user:

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = (
                auth_data.login.decode() == args.user
                and auth_data.password.decode() == args.password
            )
            if not ok:
                return AuthResult(success=False, handled=False)
            return AuthResult(success=True, auth_data=auth_data.login.decode())

        kwargs.update(authenticator=authenticate, auth_required=True)
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=args.port, server_hostname="localhost", **kwargs
    )
    controller.start()
    print("READY", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
