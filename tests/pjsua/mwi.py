#!/usr/bin/env python3
"""Subscribe to message-waiting indication with pjsua2 (a real SIP client
library), headless, and report every state it is told.

Used by vmail's integration tests as "a real phone with a message lamp":
one local account whose id is the mailbox's address of record, MWI enabled
(SUBSCRIBE for the message-summary event), requests sent to --proxy (an
outbound proxy: `Route: <sip:HOST:PORT;lr>`). Everything stays on
127.0.0.1.

pjsua (2.15) subscribes to MWI only for an account with a registration
client, after a successful REGISTER: the script runs its own stand-in
registrar on a local UDP port (it answers every REGISTER 200) and sends
REGISTER there directly, not through the proxy; vmail sees only the
SUBSCRIBE and the NOTIFY answers.

stdout carries one JSON line per NOTIFY pjsua2 reports through
Account.onMwiInfo: {"event": "mwi", "state": <subscription state>,
"waiting": true/false, "new": N, "old": N, "body": "..."}; the last line is
{"event": "done", "status": ...}. pjsip's own log and the script's messages
go to stderr.

Exit status: 0 a NOTIFY with --until-new new messages was seen (or, without
it, the --timeout ran out); 2 bad arguments or setup error; 3 --until-new
was not seen within --timeout.
"""

import argparse
import json
import os
import re
import socket
import sys
import threading
import time


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--aor", required=True, help="the mailbox's address, e.g. sip:1001@test.rootdomain.ru")
    p.add_argument("--proxy", required=True, help="HOST:PORT the requests are sent to (vmail)")
    p.add_argument("--until-new", type=int, help="exit 0 once a NOTIFY says this many new messages")
    p.add_argument(
        "--until-new-sequence",
        help="exit 0 once NOTIFYs have said these new-message counts in this order, e.g. 0,1,0",
    )
    p.add_argument("--expires", type=int, default=600, help="subscription length asked for, seconds")
    p.add_argument("--timeout", type=float, default=60.0, help="overall limit in seconds")
    p.add_argument("--log-level", type=int, default=3, help="pjsip log level on stderr")
    return p.parse_args(argv)


def log(msg):
    sys.stderr.write("mwi.py: %s\n" % msg)
    sys.stderr.flush()


def summary(body):
    """Messages-Waiting and the new/old voice counts of a message-summary body."""
    waiting = re.search(r"(?im)^Messages-Waiting:\s*(yes|no)\s*$", body or "")
    voice = re.search(r"(?im)^Voice-Message:\s*(\d+)/(\d+)", body or "")
    return (
        None if waiting is None else waiting.group(1).lower() == "yes",
        None if voice is None else int(voice.group(1)),
        None if voice is None else int(voice.group(2)),
    )


def start_registrar():
    """A stand-in registrar on 127.0.0.1: answers every REGISTER 200 with
    the request's Contact for an hour. Returns its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                data, peer = sock.recvfrom(65536)
            except OSError:
                return
            text = data.decode("utf-8", "replace")
            if not text.startswith("REGISTER "):
                continue
            head = text.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
            out = ["SIP/2.0 200 OK"]
            for line in head:
                name = line.split(":", 1)[0].strip().lower()
                if name in ("via", "v", "from", "f", "call-id", "i", "cseq"):
                    out.append(line)
                elif name in ("to", "t"):
                    out.append(line if ";tag=" in line else line + ";tag=reg")
                elif name in ("contact", "m"):
                    out.append(line.split(";expires=")[0] + ";expires=3600")
            out.append("Expires: 3600")
            out.append("Content-Length: 0")
            sock.sendto(("\r\n".join(out) + "\r\n\r\n").encode(), peer)

    threading.Thread(target=serve, daemon=True).start()
    return sock.getsockname()[1]


def main(argv):
    args = parse_args(argv)

    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def emit(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        import pjsua2 as pj
    except ImportError as e:
        log("cannot import pjsua2 (pip install pjsua2-python): %s" % e)
        return 2

    seen = {"done": False, "step": 0}
    try:
        sequence = [int(n) for n in args.until_new_sequence.split(",")] if args.until_new_sequence else []
    except ValueError:
        log("--until-new-sequence wants numbers separated by commas")
        return 2

    class MwiAccount(pj.Account):
        def onMwiInfo(self, prm):
            whole = prm.rdata.wholeMsg or ""
            body = whole.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in whole else ""
            waiting, new, old = summary(body)
            emit({"event": "mwi", "state": int(prm.state), "waiting": waiting, "new": new, "old": old, "body": body})
            log("MWI: waiting=%s new=%s old=%s" % (waiting, new, old))
            if args.until_new is not None and new == args.until_new:
                seen["done"] = True
            if sequence and seen["step"] < len(sequence) and new == sequence[seen["step"]]:
                seen["step"] += 1
                if seen["step"] == len(sequence):
                    seen["done"] = True

    ep = pj.Endpoint()
    ep.libCreate()
    ep_cfg = pj.EpConfig()
    ep_cfg.uaConfig.threadCnt = 0
    ep_cfg.uaConfig.mainThreadOnly = True
    ep_cfg.uaConfig.userAgent = "vmail-tests pjsua2 mwi.py"
    ep_cfg.logConfig.level = args.log_level
    ep_cfg.logConfig.consoleLevel = args.log_level
    ep.libInit(ep_cfg)

    status = 3
    acc = None
    try:
        tcfg = pj.TransportConfig()
        tcfg.port = 0
        tcfg.boundAddress = "127.0.0.1"
        tcfg.publicAddress = "127.0.0.1"
        tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        ep.libStart()
        ep.audDevManager().setNullDev()

        registrar = start_registrar()
        acfg = pj.AccountConfig()
        acfg.idUri = args.aor
        acfg.regConfig.registrarUri = "sip:127.0.0.1:%d" % registrar
        acfg.regConfig.registerOnAdd = True
        acfg.regConfig.proxyUse = 0  # REGISTER straight to the stand-in
        acfg.sipConfig.transportId = tid
        acfg.sipConfig.proxies.append("sip:%s;lr;transport=udp" % args.proxy)
        acfg.mwiConfig.enabled = True
        acfg.mwiConfig.expirationSec = args.expires
        acc = MwiAccount()
        acc.create(acfg)
        log("subscribed to MWI of %s via %s" % (args.aor, args.proxy))

        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and not seen["done"]:
            ep.libHandleEvents(20)
        if seen["done"]:
            status = 0
        elif args.until_new is None and not sequence:
            status = 0
        else:
            log("no NOTIFY with %s new messages within %.0f s" % (args.until_new_sequence or args.until_new, args.timeout))
    except pj.Error as e:
        log("pjsua2 error: %s" % e.info())
        status = 2
    finally:
        emit({"event": "done", "status": status})
        try:
            if acc is not None:
                acc.shutdown()
            ep.libDestroy()
        except pj.Error:
            pass
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
