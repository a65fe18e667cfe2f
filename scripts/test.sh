#!/usr/bin/env bash
# vmail's one test command.
#
# Installs what the tests need when it is missing (Debian):
#   - sipp (package sip-tester), plus CAP_NET_RAW on it when not run as root
#     (sipp replays RTP captures through a raw socket);
#   - sox with MP3 support (sox, libsox-fmt-mp3): the API tests make
#     MP3/FLAC/Ogg greetings with it;
#   - kamailio (its service kept stopped and disabled): tests/kamailio.rs
#     runs a Kamailio dispatcher in front of vmail instances;
#   - etcd (etcd-server): the etcd coordination backend's tests start a
#     3-member cluster on 127.0.0.1; protoc (protobuf-compiler) builds the
#     etcd client (cargo feature `etcd`, on for every run here);
#   - libopus (libopus-dev, pkg-config): the Opus codec links the system
#     libopus; baresip (baresip-core, with its opus module): tests/codecs.rs
#     deposits with it as a real Opus peer;
#   - Chromium and its WebDriver (chromium, chromium-driver): tests/web.rs
#     drives the web inbox in headless Chromium through Selenium;
#   - a Python venv at .venv/ with pjsua2-python (pjsua2, a real SIP client
#     library) -- python3-venv is installed first when needed --,
#     schemathesis (fuzzes the HTTP API from its OpenAPI description),
#     selenium (drives Debian's chromedriver; never downloads a driver) and
#     aiosmtpd (the SMTP server of the e-mail notification tests);
# then runs `cargo test --features etcd` with VMAIL_PYTHON pointing at the
# venv. `--deps-only` (alone) installs and stops there (CI runs it before
# clippy, which needs protoc for the feature).
# Quick and silent about installing when everything is there already.
# Without arguments every target is built and run (`--all-targets`: the
# library, the binary, every test file, and the benches compile). Extra
# arguments go to cargo test; one that picks targets (`--test NAME`, `--lib`,
# `--bench NAME`, ...) narrows the run to those, e.g.
# `bash scripts/test.sh --test infra_selftest` or
# `bash scripts/test.sh --test security tcp::`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "test.sh: $*"; }
die() { echo "test.sh: $*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  fi
fi

as_root() {
  if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
    die "need root or sudo to run: $*"
  fi
  "${SUDO[@]}" "$@"
}

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
    APT_UPDATED=1
  fi
  say "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@" >/dev/null
}

# --- sipp ------------------------------------------------------------------
if ! command -v sipp >/dev/null 2>&1; then
  apt_install sip-tester
fi
SIPP="$(command -v sipp)" || die "sipp is still missing after installing sip-tester"
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v setcap >/dev/null 2>&1 && ! [ -x /usr/sbin/setcap ] && ! [ -x /sbin/setcap ]; then
    apt_install libcap2-bin
  fi
  GETCAP="$(command -v getcap || echo /usr/sbin/getcap)"
  SETCAP="$(command -v setcap || echo /usr/sbin/setcap)"
  if ! "$GETCAP" "$SIPP" 2>/dev/null | grep -q cap_net_raw; then
    say "giving $SIPP cap_net_raw (its RTP capture replay uses a raw socket)"
    as_root "$SETCAP" cap_net_raw+ep "$SIPP"
  fi
fi

# --- sox (makes MP3/FLAC/Ogg greetings for the API tests) ---------------------
if ! command -v sox >/dev/null 2>&1; then
  apt_install sox libsox-fmt-mp3
elif ! sox -n -t mp3 /dev/null synth 0.01 sine 440 >/dev/null 2>&1; then
  apt_install libsox-fmt-mp3
fi

# --- openssl (tests/secure.rs and tests/notify.rs make certificates) --------
if ! command -v openssl >/dev/null 2>&1; then
  apt_install openssl
fi

# --- kamailio (tests/kamailio.rs: a real SIP proxy in front of vmail) --------
# Only the binaries are wanted (kamailio, kamcmd): the tests start their own
# Kamailio on a free port. The package's service would take port 5060 with
# Debian's sample configuration, so it must not start: invoke-rc.d asks
# /usr/sbin/policy-rc.d first (101 = deny) -- one is put there for the
# install when the machine has none -- and on systemd the unit the package
# enables is disabled and stopped again.
if ! command -v kamailio >/dev/null 2>&1 && ! [ -x /usr/sbin/kamailio ]; then
  POLICY_RC=/usr/sbin/policy-rc.d
  if [ -e "$POLICY_RC" ]; then
    apt_install kamailio
  else
    trap 'as_root rm -f "$POLICY_RC"' EXIT
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$POLICY_RC" >/dev/null
    as_root chmod 755 "$POLICY_RC"
    apt_install kamailio
    as_root rm -f "$POLICY_RC"
    trap - EXIT
  fi
  if [ -d /run/systemd/system ]; then
    as_root systemctl disable --now kamailio.service >/dev/null 2>&1 || true
  else
    as_root update-rc.d kamailio disable >/dev/null 2>&1 || true
  fi
  [ -x /usr/sbin/kamailio ] && [ -x /usr/sbin/kamcmd ] ||
    die "kamailio or kamcmd is still missing after installing kamailio"
fi

# --- etcd and protoc (the etcd coordination backend, feature `etcd`) ---------
ETCD_PKGS=()
command -v etcd >/dev/null 2>&1 || ETCD_PKGS+=(etcd-server)
command -v protoc >/dev/null 2>&1 || ETCD_PKGS+=(protobuf-compiler)
if [ ${#ETCD_PKGS[@]} -gt 0 ]; then
  apt_install "${ETCD_PKGS[@]}"
fi
command -v etcd >/dev/null 2>&1 || die "etcd is still missing after installing etcd-server"
command -v protoc >/dev/null 2>&1 || die "protoc is still missing after installing protobuf-compiler"

# --- libopus (the Opus codec, found with pkg-config) and baresip (Opus peer) --
CODEC_PKGS=()
pkg-config --exists opus 2>/dev/null || CODEC_PKGS+=(libopus-dev pkg-config)
[ -e /usr/lib/baresip/modules/opus.so ] || CODEC_PKGS+=(baresip-core)
# opusdec (opus-tools): tests/notify.rs decodes the Opus copy of an e-mail
command -v opusdec >/dev/null 2>&1 || CODEC_PKGS+=(opus-tools)
if [ ${#CODEC_PKGS[@]} -gt 0 ]; then
  apt_install "${CODEC_PKGS[@]}"
fi
pkg-config --exists opus 2>/dev/null || die "libopus is still missing after installing libopus-dev"
[ -e /usr/lib/baresip/modules/opus.so ] || die "baresip's opus module is still missing after installing baresip-core"
command -v opusdec >/dev/null 2>&1 || die "opusdec is still missing after installing opus-tools"

# --- Chromium and chromedriver (tests/web.rs: the web inbox in a browser) ----
# Debian's builds, at the paths tests/browser/inbox.py uses: Selenium is
# given /usr/bin/chromedriver and /usr/bin/chromium and never fetches one.
CHROME_PKGS=()
[ -x /usr/bin/chromium ] || CHROME_PKGS+=(chromium)
[ -x /usr/bin/chromedriver ] || CHROME_PKGS+=(chromium-driver)
if [ ${#CHROME_PKGS[@]} -gt 0 ]; then
  apt_install "${CHROME_PKGS[@]}"
fi
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] ||
  die "chromium or chromedriver is still missing after installing chromium, chromium-driver"

# --- Python venv with pjsua2 -------------------------------------------------
VENV=.venv
PY="$VENV/bin/python"

pick_python() {
  # pjsua2-python ships wheels for CPython 3.11 and 3.12 (x86_64 Linux).
  local c
  for c in python3 python3.12 python3.11; do
    if command -v "$c" >/dev/null 2>&1 &&
      "$c" -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 11), (3, 12)) else 1)' 2>/dev/null; then
      command -v "$c"
      return 0
    fi
  done
  return 1
}

if ! { [ -x "$PY" ] && "$PY" -c 'import pjsua2' >/dev/null 2>&1; }; then
  BASE_PY="$(pick_python)" ||
    die "no python3.11 or python3.12 found: pjsua2-python has wheels only for those"
  if ! [ -x "$PY" ]; then
    rm -rf "$VENV"
    say "creating $VENV with $BASE_PY"
    if ! "$BASE_PY" -m venv "$VENV" >/dev/null 2>&1; then
      rm -rf "$VENV"
      apt_install python3-venv
      "$BASE_PY" -m venv "$VENV"
    fi
  fi
  say "installing pjsua2-python into $VENV"
  "$PY" -m pip install -q --disable-pip-version-check pjsua2-python
  "$PY" -c 'import pjsua2' || die "pjsua2 does not import in $VENV"
fi

# schemathesis (PyPI) runs against the HTTP API's OpenAPI description.
if ! [ -x "$VENV/bin/schemathesis" ]; then
  say "installing schemathesis into $VENV"
  "$PY" -m pip install -q --disable-pip-version-check "schemathesis>=4.32,<5"
  [ -x "$VENV/bin/schemathesis" ] || die "schemathesis is still missing in $VENV"
fi

# selenium (PyPI) drives Chromium through Debian's chromedriver
# (tests/browser/inbox.py passes the driver's path, so Selenium Manager,
# which would download one, is never used; SE_OFFLINE keeps it offline too).
if ! "$PY" -c 'import selenium, sys; sys.exit(0 if selenium.__version__.split(".")[0] == "4" else 1)' >/dev/null 2>&1; then
  say "installing selenium into $VENV"
  "$PY" -m pip install -q --disable-pip-version-check "selenium>=4.20,<5"
  "$PY" -c 'import selenium' || die "selenium does not import in $VENV"
fi
export SE_OFFLINE=true

# aiosmtpd (PyPI): the SMTP server the e-mail notification tests start.
if ! "$PY" -c 'import aiosmtpd' >/dev/null 2>&1; then
  say "installing aiosmtpd into $VENV"
  "$PY" -m pip install -q --disable-pip-version-check "aiosmtpd>=1.4,<2"
  "$PY" -c 'import aiosmtpd' || die "aiosmtpd does not import in $VENV"
fi

VMAIL_PYTHON="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
export VMAIL_PYTHON

if [ "${1:-}" = "--deps-only" ]; then
  exit 0
fi

# --- the tests -----------------------------------------------------------------
# Arguments before `--` that select targets replace `--all-targets`.
TARGETS=(--all-targets)
for arg in "$@"; do
  case "$arg" in
    --) break ;;
    --lib | --bins | --bin | --bin=* | --examples | --example | --example=* | \
      --tests | --test | --test=* | --benches | --bench | --bench=* | \
      --all-targets | --doc)
      TARGETS=()
      break
      ;;
  esac
done
say "cargo test --features etcd ${TARGETS[*]} $* (VMAIL_PYTHON=$VMAIL_PYTHON)"
cargo test --features etcd "${TARGETS[@]}" "$@"
