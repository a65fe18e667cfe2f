"""An aiosmtpd handler for the notification tests.

Run as:  python -m aiosmtpd -n -l 127.0.0.1:PORT -c smtp_sink.Sink OUTDIR
(with this folder on PYTHONPATH). Every message received is written to
OUTDIR as <n>.eml (the raw DATA), with <n>.json describing its MIME
structure as Python's email parser sees it and <n>.part<i> holding the
decoded bytes of each attachment. Files appear atomically (rename).
"""

import json
import os
import time
from email import message_from_bytes
from email.policy import default


def login_of(session):
    """The user name the client authenticated as, if it did."""
    data = getattr(session, "auth_data", None)
    login = getattr(data, "login", None)
    if isinstance(login, bytes):
        return login.decode("utf-8", "replace")
    return login


class Sink:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("usage: -c smtp_sink.Sink OUTDIR")
        return cls(args[0])

    def _put(self, name, data):
        tmp = os.path.join(self.outdir, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.outdir, name))

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = "%d-%d" % (time.time_ns(), self.count)
        raw = envelope.original_content or envelope.content
        msg = message_from_bytes(raw, policy=default)
        parts = []
        for i, part in enumerate(msg.walk()):
            info = {
                "content_type": part.get_content_type(),
                "filename": part.get_filename(),
                "disposition": part.get_content_disposition(),
            }
            if part.is_multipart():
                pass
            elif part.get_content_maintype() == "text":
                info["text"] = part.get_content()
            else:
                payload = part.get_payload(decode=True) or b""
                info["file"] = "%s.part%d" % (base, i)
                info["size"] = len(payload)
                self._put(info["file"], payload)
            parts.append(info)
        summary = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": msg.get("Subject"),
            "message_id": msg.get("Message-ID"),
            "from": msg.get("From"),
            "to": msg.get("To"),
            "content_type": msg.get_content_type(),
            "parts": parts,
            "tls": getattr(session, "ssl", None) is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "auth_login": login_of(session),
        }
        self._put(base + ".eml", raw)
        self._put(base + ".json", json.dumps(summary).encode())
        return "250 Message accepted for delivery"
