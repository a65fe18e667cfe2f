#!/usr/bin/env python3
"""Place one SIP call with pjsua2 (a real SIP client library), headless.

Used by vmail's integration tests as "a real phone": it calls a mailbox, plays
a WAV file into the call, optionally records what it hears, sends DTMF, and
hangs up (or waits for the server to hang up).

- No sound card: the null audio device drives the conference bridge clock.
- No registration: one local account, requests go to --proxy (an outbound
  proxy, so the INVITE carries `Route: <sip:HOST:PORT;lr>`), the
  Request-URI and To stay --target. With --route the INVITE's Request-URI
  names the server instead (`maddr`, port) and the account has no proxy,
  so that a call the server transfers us to
  (REFER, which pjsua accepts and follows like a phone) goes straight to
  its target rather than back through --proxy.
- Everything stays on 127.0.0.1.

stdout carries exactly one line of JSON (the result); pjsip's own log and the
script's messages go to stderr (and to --log-file if given).

Exit status: 0 the call was confirmed (or ended with --expect-status);
1 the call failed (never confirmed / other status); 2 bad arguments or setup
error; 3 the overall --timeout expired.
"""

import argparse
import json
import os
import sys
import time
import wave


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True, help="Request-URI / To, e.g. sip:1001@test.rootdomain.ru")
    p.add_argument("--proxy", required=True, help="HOST:PORT the requests are sent to (vmail)")
    p.add_argument("--transport", choices=["udp", "tcp", "tls"], default="udp", help="tls: the server's certificate is not verified (self-signed in tests)")
    p.add_argument("--srtp", choices=["off", "mandatory"], default="off", help="mandatory: offer RTP/SAVP with SDES keys (a=crypto)")
    p.add_argument("--srtp-secure-signaling", type=int, default=1, help="pjsua's srtpSecureSignaling: 1 requires TLS for SDES, 0 allows UDP/TCP")
    p.add_argument("--caller", default="sip:5551234@test.rootdomain.ru", help="From URI (the local account)")
    p.add_argument("--wav", help="WAV file played into the call once, from when media is up")
    p.add_argument("--wav-delay", type=float, default=0.0, help="start the --wav this many seconds after media is up (e.g. after the greeting)")
    p.add_argument(
        "--hangup-after-seconds",
        type=float,
        help="hang up this long after the call is confirmed (default: when the WAV ends + 0.5 s, or 5 s without --wav)",
    )
    p.add_argument("--wait-bye", action="store_true", help="never hang up; wait for the server's BYE (bounded by --timeout)")
    p.add_argument("--record", help="record what the caller hears into this WAV (16-bit mono, at --clock-rate)")
    p.add_argument(
        "--header",
        action="append",
        default=[],
        help="extra INVITE header 'Name: value' (repeatable), e.g. 'Diversion: <sip:1001@d>;reason=user-busy'",
    )
    p.add_argument(
        "--dtmf",
        action="append",
        default=[],
        metavar="SECONDS:DIGITS",
        help="send DTMF DIGITS this many seconds after the call is confirmed (repeatable)",
    )
    p.add_argument("--dtmf-method", choices=["rfc2833", "info"], default="rfc2833")
    p.add_argument("--expect-status", type=int, help="succeed only if the INVITE ends with this final status (e.g. 404)")
    p.add_argument("--rtp-port", type=int, default=0, help="local RTP port (0: pjsua picks one)")
    p.add_argument(
        "--codecs",
        help="comma-separated codec ids to offer, in order, e.g. PCMA,PCMU or G722 (default: pjsua's own list)",
    )
    p.add_argument(
        "--lock-codec",
        action="store_true",
        help="let pjsua send its re-INVITE that locks one codec when the answer lists several (off by default)",
    )
    p.add_argument(
        "--route",
        action="store_true",
        help="send only this call to --proxy (maddr in the Request-URI), not the account: a transfer goes to its target directly",
    )
    p.add_argument(
        "--transfer-hold",
        type=float,
        default=1.0,
        help="hang up a call we were transferred to this long after it is confirmed",
    )
    p.add_argument(
        "--clock-rate",
        type=int,
        default=8000,
        help="the conference bridge's rate (16000 keeps a wideband codec's audio wideband)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="overall limit in seconds")
    p.add_argument("--log-file", help="write pjsip's log (level 5) here")
    p.add_argument("--log-level", type=int, default=3, help="pjsip log level on stderr")
    return p.parse_args(argv)


def log(msg):
    sys.stderr.write("deposit.py: %s\n" % msg)
    sys.stderr.flush()


def wav_seconds(path):
    with wave.open(path, "rb") as w:
        return w.getnframes() / float(w.getframerate())


def main(argv):
    args = parse_args(argv)

    # stdout is for the JSON result only: pjsip's console output goes to stderr.
    result_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    try:
        import pjsua2 as pj
    except ImportError as e:
        log("cannot import pjsua2 (pip install pjsua2-python): %s" % e)
        return 2

    dtmf_plan = []
    for spec in args.dtmf:
        at, _, digits = spec.partition(":")
        try:
            dtmf_plan.append([float(at), digits, False])
        except ValueError:
            log("bad --dtmf %r, expected SECONDS:DIGITS" % spec)
            return 2
    wav_len = None
    if args.wav:
        try:
            wav_len = wav_seconds(args.wav)
        except (OSError, wave.Error) as e:
            log("cannot read --wav %s: %s" % (args.wav, e))
            return 2
    if args.wait_bye:
        hold = None
    elif args.hangup_after_seconds is not None:
        hold = args.hangup_after_seconds
    elif wav_len is not None:
        hold = wav_len + 0.5 + args.wav_delay
    else:
        hold = 5.0

    state = {
        "confirmed": False,
        "confirmed_at": None,
        "disconnected": False,
        "last_status": None,
        "last_reason": "",
        "hung_up_by": None,
        "media_active": False,
        "rtp_tx_packets": 0,
        "rtp_rx_packets": 0,
        "dtmf_sent": "",
        "call_id": "",
        "transfer_to": None,
        "transfer_status": [],
        "transfer_confirmed": False,
        "transfer_last_status": None,
        "transfer_disconnected": False,
    }

    class Player(pj.AudioMediaPlayer):
        def __init__(self):
            pj.AudioMediaPlayer.__init__(self)
            self.ended = False

        def onEof2(self):
            self.ended = True

    class TestCall(pj.Call):
        def __init__(self, acc):
            pj.Call.__init__(self, acc)
            self.player = None
            self.recorder = None
            self.audio = None
            self.med_idx = None

        def onCallState(self, prm):
            ci = self.getInfo()
            state["call_id"] = ci.callIdString
            if ci.lastStatusCode:
                state["last_status"] = int(ci.lastStatusCode)
                state["last_reason"] = ci.lastReason
            if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and not state["confirmed"]:
                state["confirmed"] = True
                state["confirmed_at"] = time.monotonic()
                log("call confirmed (%s)" % ci.callIdString)
            elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                state["disconnected"] = True
                if state["hung_up_by"] is None:
                    state["hung_up_by"] = "remote"
                log("call disconnected: %s %s" % (ci.lastStatusCode, ci.lastReason))

        def onCallMediaState(self, prm):
            ci = self.getInfo()
            for mi in ci.media:
                if mi.type != pj.PJMEDIA_TYPE_AUDIO or mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                    continue
                if self.audio is not None:
                    continue
                self.med_idx = mi.index
                self.audio = self.getAudioMedia(mi.index)
                state["media_active"] = True
                if args.wav:
                    state["play_at"] = time.monotonic() + max(0.0, args.wav_delay)
                    if args.wav_delay <= 0:
                        self.start_player()
                if args.record:
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(args.record)
                    self.audio.startTransmit(self.recorder)
                    log("recording into %s" % args.record)

        def start_player(self):
            state["play_at"] = None
            self.player = Player()
            self.player.createPlayer(args.wav, pj.PJMEDIA_FILE_NO_LOOP)
            self.player.startTransmit(self.audio)
            log("playing %s (%.2f s)" % (args.wav, wav_len))

        def onCallTransferRequest(self, prm):
            # Accept (the default 202) and let pjsua place the new call, as
            # a phone does; watch it through our own Call object.
            state["transfer_to"] = prm.dstUri
            log("transfer requested to %s" % prm.dstUri)
            self.xfer_call = TransferCall(acc_holder[0])
            prm.newCall = self.xfer_call

        def onCallTransferStatus(self, prm):
            state["transfer_status"].append(int(prm.statusCode))
            log("transfer status %s %s" % (prm.statusCode, prm.reason))

        def poll_stats(self):
            if self.med_idx is None:
                return
            try:
                st = self.getStreamStat(self.med_idx)
            except pj.Error:
                return
            state["rtp_tx_packets"] = int(st.rtcp.txStat.pkt)
            state["rtp_rx_packets"] = int(st.rtcp.rxStat.pkt)

    class TransferCall(pj.Call):
        """The call pjsua places to a REFER's target."""

        def __init__(self, acc):
            pj.Call.__init__(self, acc)
            self.confirmed_at = None

        def onCallState(self, prm):
            ci = self.getInfo()
            if ci.lastStatusCode:
                state["transfer_last_status"] = int(ci.lastStatusCode)
            if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
                self.confirmed_at = time.monotonic()
                state["transfer_confirmed"] = True
                log("transferred call confirmed (%s)" % ci.remoteUri)
            elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                state["transfer_disconnected"] = True
                log("transferred call disconnected: %s %s" % (ci.lastStatusCode, ci.lastReason))

    acc_holder = [None]

    def transfer_pending(c):
        # A transfer we accepted: wait for its call to end too.
        x = getattr(c, "xfer_call", None)
        return x is not None and not state["transfer_disconnected"]
    ep = pj.Endpoint()
    ep.libCreate()
    ep_cfg = pj.EpConfig()
    ep_cfg.uaConfig.threadCnt = 0
    ep_cfg.uaConfig.mainThreadOnly = True
    ep_cfg.uaConfig.maxCalls = 4
    ep_cfg.uaConfig.userAgent = "vmail-tests pjsua2 deposit.py"
    ep_cfg.logConfig.level = 5 if args.log_file else args.log_level
    ep_cfg.logConfig.consoleLevel = args.log_level
    if args.log_file:
        ep_cfg.logConfig.filename = args.log_file
    ep_cfg.medConfig.clockRate = args.clock_rate
    ep_cfg.medConfig.sndClockRate = args.clock_rate
    ep_cfg.medConfig.noVad = True
    ep_cfg.medConfig.ecTailLen = 0
    ep.libInit(ep_cfg)

    status = 1
    call = None
    acc = None
    try:
        tcfg = pj.TransportConfig()
        tcfg.port = 0
        tcfg.boundAddress = "127.0.0.1"
        tcfg.publicAddress = "127.0.0.1"
        ttype = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP, "tls": pj.PJSIP_TRANSPORT_TLS}[args.transport]
        if args.transport == "tls":
            tcfg.tlsConfig.verifyServer = False
        tid = ep.transportCreate(ttype, tcfg)
        ep.libStart()
        ep.audDevManager().setNullDev()
        if args.codecs:
            wanted = [c.strip().lower() for c in args.codecs.split(",") if c.strip()]
            offered = []
            for ci in ep.codecEnum2():
                cid = ci.codecId  # e.g. "PCMA/8000/1"
                name = cid.split("/")[0].lower()
                if name in wanted or cid.lower() in wanted:
                    idx = wanted.index(name) if name in wanted else wanted.index(cid.lower())
                    ep.codecSetPriority(cid, 250 - idx)
                    offered.append(cid)
                else:
                    ep.codecSetPriority(cid, 0)
            if not offered:
                log("none of --codecs %s is available" % args.codecs)
                return 2

        acfg = pj.AccountConfig()
        acfg.idUri = args.caller
        acfg.regConfig.registrarUri = ""
        acfg.regConfig.registerOnAdd = False
        acfg.sipConfig.transportId = tid
        route = "sip:%s;lr;transport=%s" % (args.proxy, args.transport)
        if not args.route:
            acfg.sipConfig.proxies.append(route)
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
        acfg.mediaConfig.transportConfig.port = args.rtp_port
        acfg.mediaConfig.lockCodecEnabled = args.lock_codec
        if args.srtp == "mandatory":
            acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_MANDATORY
            acfg.mediaConfig.srtpSecureSignaling = args.srtp_secure_signaling
        acc = pj.Account()
        acc.create(acfg)
        acc_holder[0] = acc

        call = TestCall(acc)
        prm = pj.CallOpParam(True)
        if args.route:
            # The Request-URI names the server itself (maddr, port) while
            # To stays --target: no account-wide proxy.
            host, _, port = args.proxy.rpartition(":")
            user_domain = args.target.split(";")[0]
            prm.txOption.targetUri = "%s:%s;maddr=%s;transport=%s" % (user_domain, port, host, args.transport)
        for h in args.header:
            name, sep, value = h.partition(":")
            if not sep:
                log("bad --header %r, expected 'Name: value'" % h)
                return 2
            sh = pj.SipHeader()
            sh.hName = name.strip()
            sh.hValue = value.strip()
            prm.txOption.headers.append(sh)
        log("calling %s via %s/%s" % (args.target, args.proxy, args.transport))
        call.makeCall(args.target, prm)

        start = time.monotonic()
        deadline = start + args.timeout
        timed_out = False
        last_stats = 0.0
        while not state["disconnected"] or transfer_pending(call):
            ep.libHandleEvents(10)
            now = time.monotonic()
            xfer = getattr(call, "xfer_call", None)
            if xfer is not None and xfer.confirmed_at is not None and not state["transfer_disconnected"]:
                if now - xfer.confirmed_at >= args.transfer_hold and not getattr(xfer, "hung_up", False):
                    xfer.hung_up = True
                    xfer.hangup(pj.CallOpParam(True))
            if now - last_stats > 0.2:
                call.poll_stats()
                last_stats = now
            if state.get("play_at") is not None and now >= state["play_at"] and call.audio is not None:
                call.start_player()
            if state["confirmed"]:
                since = now - state["confirmed_at"]
                for item in dtmf_plan:
                    if not item[2] and since >= item[0]:
                        item[2] = True
                        dp = pj.CallSendDtmfParam()
                        dp.digits = item[1]
                        dp.method = (
                            pj.PJSUA_DTMF_METHOD_RFC2833 if args.dtmf_method == "rfc2833" else pj.PJSUA_DTMF_METHOD_SIP_INFO
                        )
                        call.sendDtmf(dp)
                        state["dtmf_sent"] += item[1]
                        log("sent DTMF %s" % item[1])
                if hold is not None and since >= hold and state["hung_up_by"] is None:
                    state["hung_up_by"] = "local"
                    call.poll_stats()
                    call.hangup(pj.CallOpParam(True))
            if now > deadline and not timed_out:
                timed_out = True
                log("timeout after %.1f s" % args.timeout)
                if state["hung_up_by"] is None:
                    state["hung_up_by"] = "local-timeout"
                call.poll_stats()
                try:
                    call.hangup(pj.CallOpParam(True))
                except pj.Error:
                    pass
            if now > deadline + 5:
                break
        # Let the final transactions (200 for BYE, ACK) go out.
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            ep.libHandleEvents(10)
        call.poll_stats()

        state["wav_seconds"] = wav_len
        state["timed_out"] = timed_out
        if timed_out:
            status = 3
        elif args.expect_status is not None:
            status = 0 if state["last_status"] == args.expect_status else 1
        else:
            status = 0 if state["confirmed"] else 1
        if status != 0:
            log("failed: confirmed=%s last_status=%s %s" % (state["confirmed"], state["last_status"], state["last_reason"]))
    except pj.Error as e:
        log("pjsua2 error: %s" % e.info())
        status = 2
    finally:
        result_out.write(json.dumps(state) + "\n")
        result_out.flush()
        # pjsua2 objects must go before the library does.
        if call is not None:
            call.xfer_call = None
            call.player = None
            call.recorder = None
            call.audio = None
        del call
        del acc
        try:
            ep.libDestroy()
        except pj.Error:
            pass
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
