"""An SMTP server over TLS for the notification tests: aiosmtpd's
Controller with the Sink handler of smtp_sink.py.

    python smtp_server.py --port P --outdir DIR --cert C --key K
        [--implicit] [--auth USER:PASSWORD]

Without --implicit the server offers STARTTLS and refuses mail before it;
with --implicit it speaks TLS from the first byte (SMTPS). With --auth it
requires AUTH (PLAIN or LOGIN, only inside TLS) with that user and
password. Runs until killed.
"""

import argparse
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from smtp_sink import Sink


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--outdir", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--implicit", action="store_true")
    p.add_argument("--auth")
    args = p.parse_args()

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    kwargs = {}
    if args.auth:
        user, _, password = args.auth.partition(":")

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                getattr(auth_data, "login", None) == user.encode()
                and getattr(auth_data, "password", None) == password.encode()
            )
            return AuthResult(success=ok, auth_data=auth_data if ok else None)

        # AUTH only inside TLS: after STARTTLS, or on an SMTPS connection
        # (aiosmtpd does not count implicit TLS for auth_require_tls).
        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=not args.implicit)
    if args.implicit:
        kwargs.update(ssl_context=ctx)
    else:
        kwargs.update(tls_context=ctx, require_starttls=True)
    controller = Controller(Sink(args.outdir), hostname="127.0.0.1", port=args.port, **kwargs)
    controller.start()
    sys.stderr.write("smtp_server.py: listening on 127.0.0.1:%d\n" % args.port)
    sys.stderr.flush()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
