#!/usr/bin/env python3
"""Drive vmail's web inbox in headless Chromium (Selenium + Debian's chromedriver).

Used by vmail's integration tests (tests/web.rs) as "a subscriber with a
browser": one browser session runs the steps given on the command line in
order and prints one JSON line per step on stdout:

    {"step": "play", "args": ["<id>"], "ok": true, "duration": 2.71, ...}

and a last line {"step": "done", "ok": true|false, "steps": N}. A failed step
ends the run (its line has "ok": false and an "error"). Everything else
(chromedriver's and the script's messages) goes to stderr.

Steps (arguments after the step's name):
  login                  log in with --mailbox and --pin; ok when /inbox is reached
  wrong-pin N            N logins with a wrong PIN; ok when each shows #login-error
  goto PATH              open PATH; reports url, title, the ids present
  expect-messages N      open /inbox (reloading until the deadline) until it
                         lists exactly N `.message` rows; reports their ids
  play ID                load the message's <audio id="audio-ID">: its duration
                         after `loadedmetadata`; then it plays until its
                         currentTime moves and is paused (not heard to the end)
  play-to-end ID         the same, but played until the `ended` event
  delete ID              delete the message with the page's form.delete; waits
                         for the undo banner #undo to appear and to go again,
                         then until /inbox no longer lists the message
  upload-greeting KIND FILE
                         upload FILE through form.upload of section#greeting-KIND
                         on /greetings; ok when the section then has an audio player
  set-language CODE      on /settings, choose CODE in the #language list and
                         save with #settings-submit; ok when the answer is
                         /settings with #settings-saved; reports the page's lang
  logout                 submit the logout form; ok when /login is reached
  post-without-csrf PATH a POST to PATH (same origin, with the session cookie)
                         lacking the csrf field; reports status and whether the
                         answer has #csrf-error
  get PATH               fetch PATH in the page: reports status, redirected,
                         final url and content type; then opens it for title/ids
                         unless it is not HTML
  screenshot FILE        a PNG of the current page (directories are created)

Browser: --chromium (default /usr/bin/chromium) and --chromedriver (default
/usr/bin/chromedriver) are given to Selenium explicitly, so Selenium Manager
never runs and nothing is downloaded (SE_OFFLINE=true as well). Chromium runs
headless with a temporary profile, no sandbox (tests run as root in CI),
autoplay allowed without a gesture (the audio steps).

Exit status: 0 every step ok; 1 a step failed; 2 bad arguments or the browser
could not start; 3 the --timeout ran out (a {"step": "timeout"} line is
printed and the browser is killed).
"""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.parse

os.environ.setdefault("SE_OFFLINE", "true")

# Step name -> number of arguments.
STEPS = {
    "login": 0,
    "wrong-pin": 1,
    "goto": 1,
    "expect-messages": 1,
    "play": 1,
    "play-to-end": 1,
    "delete": 1,
    "upload-greeting": 2,
    "set-language": 1,
    "logout": 0,
    "post-without-csrf": 1,
    "get": 1,
    "screenshot": 1,
}

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--autoplay-policy=no-user-gesture-required",
    "--log-level=3",
]


class StepError(Exception):
    """A step did not reach what it checks; the message says what was seen."""


def log(msg):
    sys.stderr.write("inbox.py: %s\n" % msg)
    sys.stderr.flush()


_print_lock = threading.Lock()


def emit(obj):
    with _print_lock:
        sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
        sys.stdout.flush()


def parse_steps(tokens):
    """The command list: [(name, [args])]; ValueError on a bad list."""
    steps = []
    i = 0
    while i < len(tokens):
        name = tokens[i]
        if name not in STEPS:
            raise ValueError("unknown step %r (known: %s)" % (name, ", ".join(sorted(STEPS))))
        n = STEPS[name]
        args = tokens[i + 1 : i + 1 + n]
        if len(args) != n:
            raise ValueError("step %r needs %d argument(s)" % (name, n))
        if name in ("wrong-pin", "expect-messages"):
            try:
                if int(args[0]) < 0:
                    raise ValueError
            except ValueError:
                raise ValueError("step %r needs a count >= 0, got %r" % (name, args[0]))
        if name in ("goto", "get", "post-without-csrf") and not args[0].startswith("/"):
            raise ValueError("step %r needs a path starting with /, got %r" % (name, args[0]))
        steps.append((name, args))
        i += 1 + n
    if not steps:
        raise ValueError("no steps given")
    return steps


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="steps: " + ", ".join("%s(%d)" % kv for kv in sorted(STEPS.items())),
    )
    p.add_argument("--base", required=True, help="the web application's origin, e.g. http://127.0.0.1:8080")
    p.add_argument("--mailbox", default="", help="mailbox address user@domain (login, wrong-pin)")
    p.add_argument("--pin", default="", help="the mailbox's PIN (login; wrong-pin uses another one)")
    p.add_argument("--timeout", type=float, default=60.0, help="overall limit in seconds")
    p.add_argument("--step-timeout", type=float, default=20.0, help="limit of one wait inside a step, seconds")
    p.add_argument("--chromium", default="/usr/bin/chromium", help="the browser binary")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver", help="the WebDriver binary")
    p.add_argument("--window", default="1280x900", help="window size WIDTHxHEIGHT (screenshots)")
    p.add_argument("--lang", default="en-US", help="the browser's Accept-Language")
    p.add_argument("steps", nargs=argparse.REMAINDER, help="the steps, in order")
    a = p.parse_args(argv)
    try:
        a.steps = parse_steps(a.steps)
        w, h = a.window.lower().split("x")
        a.window = (int(w), int(h))
    except ValueError as e:
        p.error(str(e))
    parsed = urllib.parse.urlsplit(a.base)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        p.error("--base must be an http(s) origin, got %r" % a.base)
    a.base = "%s://%s" % (parsed.scheme, parsed.netloc)
    for path in (a.chromium, a.chromedriver):
        if not os.access(path, os.X_OK):
            p.error("%s is missing or not executable (bash scripts/test.sh installs it)" % path)
    return a


def wrong_pin_for(pin):
    """A PIN that differs from `pin` in every digit, of the same length (4 if none)."""
    digits = [c for c in pin if c.isdigit()] or list("0000")
    return "".join(str((int(c) + 5) % 10) for c in digits)


class Session:
    """One headless Chromium with the steps' implementations."""

    def __init__(self, args):
        # Imported here so that --help and argument errors work without selenium.
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.args = args
        self.profile = tempfile.mkdtemp(prefix="vmail-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = args.chromium
        for flag in CHROMIUM_FLAGS:
            opts.add_argument(flag)
        opts.add_argument("--user-data-dir=%s" % self.profile)
        opts.add_argument("--window-size=%d,%d" % args.window)
        opts.add_argument("--lang=%s" % args.lang)
        opts.add_experimental_option("prefs", {"intl.accept_languages": args.lang})
        opts.page_load_strategy = "normal"
        # The driver's own process group: killing it takes Chromium along.
        self.service = Service(
            executable_path=args.chromedriver,
            log_output=sys.stderr,
            popen_kw={"start_new_session": True},
        )
        self.driver = None
        self.driver = webdriver.Chrome(service=self.service, options=opts)
        self.driver.set_page_load_timeout(args.step_timeout)
        self.driver.set_script_timeout(args.step_timeout)

    # --- plumbing ---------------------------------------------------------

    def url(self, path):
        return self.args.base + path

    def path(self):
        return urllib.parse.urlsplit(self.driver.current_url).path

    def on_origin(self):
        """Make sure the current page is on --base (fetch() needs its origin)."""
        cur = urllib.parse.urlsplit(self.driver.current_url)
        if "%s://%s" % (cur.scheme, cur.netloc) != self.args.base:
            self.driver.get(self.url("/login"))

    def wait(self, what, cond, timeout=None):
        """Poll cond() (exceptions count as false) until truthy; StepError after timeout."""
        deadline = time.monotonic() + (timeout or self.args.step_timeout)
        last = None
        while True:
            try:
                v = cond()
                if v:
                    return v
            except Exception as e:  # noqa: BLE001 -- stale elements and the like
                last = e
            if time.monotonic() >= deadline:
                raise StepError("timed out waiting for %s%s" % (what, "" if last is None else " (%s)" % last))
            time.sleep(0.1)

    def css(self, selector):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def ids(self):
        return self.driver.execute_script(
            "return Array.from(document.querySelectorAll('[id]')).map(e => e.id);"
        )

    def page_info(self):
        return {
            "url": self.driver.current_url,
            "title": self.driver.title,
            "lang": self.driver.execute_script("return document.documentElement.lang || '';"),
            "ids": self.ids(),
        }

    def fetch(self, path, method="GET", form=None):
        """fetch() in the page (cookies of the origin, no redirects followed
        for POST): status, redirected, url, content type, a body excerpt."""
        self.on_origin()
        script = """
            const [path, method, form, done] = arguments;
            const init = {method: method, credentials: 'same-origin',
                          redirect: method === 'GET' ? 'follow' : 'manual'};
            if (form !== null) {
              init.body = new URLSearchParams(form);
            }
            fetch(path, init).then(async r => {
              const type = r.headers.get('content-type') || '';
              let text = '';
              if (r.type !== 'opaqueredirect' && !type.startsWith('audio/')) {
                text = await r.text();
              }
              done({status: r.status, type: r.type, redirected: r.redirected,
                    url: r.url, content_type: type, body: text.slice(0, 20000)});
            }).catch(e => done({error: String(e)}));
        """
        res = self.driver.execute_async_script(script, path, method, form)
        if "error" in res:
            raise StepError("fetch %s %s failed: %s" % (method, path, res["error"]))
        return res

    # --- steps ------------------------------------------------------------

    def submit_login(self, pin):
        from selenium.webdriver.common.by import By

        if not self.args.mailbox:
            raise StepError("--mailbox is needed to log in")
        self.driver.get(self.url("/login"))
        form = self.wait("#login-form", lambda: self.css("#login-form"))[0]
        box = form.find_element(By.ID, "mailbox")
        box.clear()
        box.send_keys(self.args.mailbox)
        field = form.find_element(By.ID, "pin")
        field.clear()
        field.send_keys(pin)
        old = self.driver.find_element(By.TAG_NAME, "html")
        form.find_element(By.ID, "login-submit").click()
        # A new document: the old <html> goes stale.
        self.wait("the login answer", lambda: not _alive(old))
        return self.wait(
            "/inbox or #login-error",
            lambda: "inbox" if self.path() == "/inbox" else ("error" if self.css("#login-error") else None),
        )

    def step_login(self):
        if not self.args.pin:
            raise StepError("--pin is needed to log in")
        outcome = self.submit_login(self.args.pin)
        if outcome != "inbox":
            text = self.css("#login-error")[0].text if self.css("#login-error") else ""
            raise StepError("login refused: %r" % text)
        return {"url": self.driver.current_url}

    def step_wrong_pin(self, n):
        pin = wrong_pin_for(self.args.pin)
        texts = []
        for k in range(int(n)):
            outcome = self.submit_login(pin)
            if outcome != "error":
                raise StepError("wrong PIN %d of %s was not refused (reached %s)" % (k + 1, n, self.driver.current_url))
            texts.append(self.css("#login-error")[0].text)
        return {"attempts": int(n), "errors": texts}

    def step_goto(self, path):
        self.driver.get(self.url(path))
        return self.page_info()

    def messages(self):
        return self.driver.execute_script(
            """
            return Array.from(document.querySelectorAll('.message')).map(m => ({
              id: m.dataset.id || '',
              duration_ms: m.dataset.durationMs === undefined ? null : Number(m.dataset.durationMs),
              urgent: m.classList.contains('urgent'),
              caller: (m.querySelector('.caller') || {}).textContent || '',
              received: (m.querySelector('.received') || {}).textContent || '',
              duration: (m.querySelector('.duration') || {}).textContent || '',
              hidden: m.hidden || m.offsetParent === null,
            }));
            """
        )

    def step_expect_messages(self, n):
        n = int(n)
        deadline = time.monotonic() + self.args.step_timeout
        while True:
            self.driver.get(self.url("/inbox"))
            if self.path().rstrip("/") != "/inbox":
                raise StepError("/inbox led to %s (not logged in?)" % self.driver.current_url)
            msgs = self.messages()
            if len(msgs) == n:
                break
            if time.monotonic() >= deadline:
                raise StepError("/inbox lists %d messages, expected %d: %s" % (len(msgs), n, msgs))
            time.sleep(0.5)
        counts = {}
        for key in ("count-new", "count-old"):
            el = self.css("#" + key)
            counts[key.replace("-", "_")] = el[0].text.strip() if el else None
        return dict({"count": len(msgs), "messages": msgs, "empty_shown": bool(self.css("#empty"))}, **counts)

    def audio_of(self, msg_id):
        if self.path().rstrip("/") != "/inbox":
            self.driver.get(self.url("/inbox"))
        return self.wait("audio#audio-%s" % msg_id, lambda: self.css("audio#audio-" + _css_ident(msg_id)))[0]

    def step_play(self, msg_id, to_end=False):
        audio = self.audio_of(msg_id)
        meta = self.driver.execute_async_script(
            """
            const [a, done] = arguments;
            const report = () => done({duration: a.duration, src: a.currentSrc || a.src,
                                       ready_state: a.readyState});
            if (a.readyState >= 1 && isFinite(a.duration)) { report(); return; }
            a.addEventListener('loadedmetadata', report, {once: true});
            a.addEventListener('error', () => done({error: 'media error ' +
                (a.error ? a.error.code + ' ' + a.error.message : '?')}), {once: true});
            if (a.preload === 'none' || a.readyState === 0) { a.load(); }
            """,
            audio,
        )
        if "error" in meta:
            raise StepError("audio %s: %s" % (msg_id, meta["error"]))
        if meta["duration"] is None or not (meta["duration"] > 0):
            raise StepError("audio %s has no duration: %s" % (msg_id, meta))
        started = self.driver.execute_async_script(
            """
            const [a, done] = arguments;
            a.currentTime = 0;
            a.play().then(() => done({playing: true}), e => done({error: String(e)}));
            """,
            audio,
        )
        if "error" in started:
            raise StepError("audio %s did not play: %s" % (msg_id, started["error"]))
        out = dict(meta, playing=True)
        if not to_end:
            # Played a moment, then paused: the message is not played to its
            # end, so the page does not mark it heard.
            moved = self.driver.execute_async_script(
                """
                const [a, done] = arguments;
                const check = () => {
                  if (a.currentTime > 0) { a.pause(); done({played_to: a.currentTime}); }
                  else if (a.error) { done({error: 'media error while playing'}); }
                  else { setTimeout(check, 20); }
                };
                check();
                """,
                audio,
            )
            if "error" in moved:
                raise StepError("audio %s: %s" % (msg_id, moved["error"]))
            out.update(moved, playing=False)
            return out
        limit = max(self.args.step_timeout, meta["duration"] * 2 + 5)
        t0 = time.monotonic()
        self.driver.set_script_timeout(limit)
        try:
            ended = self.driver.execute_async_script(
                """
                const [a, done] = arguments;
                if (a.ended) { done({ended: true, current_time: a.currentTime}); return; }
                a.addEventListener('ended', () => done({ended: true, current_time: a.currentTime}), {once: true});
                a.addEventListener('error', () => done({error: 'media error during play'}), {once: true});
                """,
                audio,
            )
        finally:
            self.driver.set_script_timeout(self.args.step_timeout)
        if "error" in ended:
            raise StepError("audio %s: %s" % (msg_id, ended["error"]))
        out.update(ended, played_seconds=round(time.monotonic() - t0, 3))
        return out

    def step_delete(self, msg_id):
        from selenium.webdriver.common.by import By

        if self.path() != "/inbox":
            self.driver.get(self.url("/inbox"))
        sel = '.message[data-id="%s"]' % msg_id.replace('"', "")
        row = self.wait(sel, lambda: self.css(sel))[0]
        form = row.find_element(By.CSS_SELECTOR, "form.delete")
        html = self.driver.find_element(By.TAG_NAME, "html")
        buttons = form.find_elements(By.CSS_SELECTOR, "button, input[type=submit]")
        if buttons:
            buttons[0].click()
        else:
            self.driver.execute_script("arguments[0].requestSubmit();", form)
        # With the page's script: #undo shows for a few seconds, then the
        # delete is sent. Without it the form posts at once (no banner).
        undo_seen = False
        try:
            self.wait("#undo", lambda: any(_shown(e) for e in self.css("#undo")), timeout=3)
            undo_seen = True
        except StepError:
            pass
        if undo_seen:
            self.wait(
                "#undo to go",
                lambda: not any(_shown(e) for e in self.css("#undo")),
                timeout=self.args.step_timeout,
            )
            # Then the page sends the delete: let its answer arrive before
            # leaving the page (a navigation would abort the request).
            try:
                self.wait(
                    "the delete request's answer",
                    lambda: not _alive(html) or self.driver.execute_script(
                        "return performance.getEntriesByType('resource')"
                        ".some(e => e.name.includes(arguments[0]) && e.responseEnd > 0);",
                        "/messages/%s/delete" % msg_id,
                    ),
                    timeout=self.args.step_timeout,
                )
            except StepError:
                log("no answer to the delete request seen in the page; looking at /inbox anyway")
        # Reload until the row is gone (the request may still be on its way).
        deadline = time.monotonic() + self.args.step_timeout
        while True:
            time.sleep(0.3)
            self.driver.get(self.url("/inbox"))
            if not self.css(sel):
                break
            if time.monotonic() >= deadline:
                raise StepError("message %s is still listed after the delete" % msg_id)
        return {"undo_seen": undo_seen, "remaining": [m["id"] for m in self.messages()]}

    def step_upload_greeting(self, kind, path):
        from selenium.webdriver.common.by import By

        path = os.path.abspath(path)
        if not os.path.isfile(path):
            raise StepError("no such file: %s" % path)
        self.driver.get(self.url("/greetings"))
        if self.path() != "/greetings":
            raise StepError("/greetings led to %s (not logged in?)" % self.driver.current_url)
        sec_sel = "section#greeting-%s" % _css_ident(kind)
        section = self.wait(sec_sel, lambda: self.css(sec_sel))[0]
        form = section.find_element(By.CSS_SELECTOR, "form.upload")
        form.find_element(By.CSS_SELECTOR, "input[type=file][name=file]").send_keys(path)
        old = self.driver.find_element(By.TAG_NAME, "html")
        buttons = form.find_elements(By.CSS_SELECTOR, "button[type=submit], input[type=submit], button:not([type])")
        if buttons:
            buttons[0].click()
        else:
            self.driver.execute_script("arguments[0].requestSubmit();", form)
        # A plain form post loads a new page (PRG back to /greetings); a
        # script-driven upload may update this one instead.
        self.wait(
            "the upload's answer",
            lambda: not _alive(old) or self.css(sec_sel + " audio.player"),
        )
        self.wait("the greetings page again", lambda: self.css(sec_sel))
        # PRG back to /greetings; a script-driven upload may reload later.
        deadline = time.monotonic() + self.args.step_timeout
        while True:
            player = self.css(sec_sel + " audio.player")
            if player:
                break
            if time.monotonic() >= deadline:
                raise StepError("no audio player in %s after the upload (ids: %s)" % (sec_sel, self.ids()))
            time.sleep(0.5)
            self.driver.get(self.url("/greetings"))
        return {"url": self.driver.current_url, "src": player[0].get_attribute("src"), "ids": self.ids()}

    def step_set_language(self, code):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select

        self.driver.get(self.url("/settings"))
        form = self.wait("#settings-form", lambda: self.css("#settings-form"))[0]
        choice = Select(form.find_element(By.ID, "language"))
        offered = [o.get_attribute("value") for o in choice.options]
        if code not in offered:
            raise StepError("language %r not offered (offered: %s)" % (code, offered))
        label = form.find_element(By.CSS_SELECTOR, 'label[for="language"]').text
        choice.select_by_value(code)
        old = self.driver.find_element(By.TAG_NAME, "html")
        form.find_element(By.ID, "settings-submit").click()
        self.wait("the settings answer", lambda: not _alive(old))
        self.wait(
            "/settings with #settings-saved",
            lambda: self.path() == "/settings" and self.css("#settings-saved"),
        )
        info = self.page_info()
        info["label_before"] = label
        info["offered"] = offered
        info["saved_text"] = self.css("#settings-saved")[0].text
        return info

    def step_logout(self):
        from selenium.webdriver.common.by import By

        if not self.css('form[action="/logout"]'):
            self.driver.get(self.url("/inbox"))
        forms = self.css('form[action="/logout"]')
        if not forms:
            raise StepError("no logout form on %s" % self.driver.current_url)
        old = self.driver.find_element(By.TAG_NAME, "html")
        buttons = forms[0].find_elements(By.CSS_SELECTOR, "button, input[type=submit]")
        if buttons:
            buttons[0].click()
        else:
            self.driver.execute_script("arguments[0].requestSubmit();", forms[0])
        self.wait("the logout answer", lambda: not _alive(old))
        self.wait("/login", lambda: self.path() == "/login")
        return {"url": self.driver.current_url}

    def step_post_without_csrf(self, path):
        res = self.fetch(path, method="POST", form={})
        body = res.pop("body", "")
        res["csrf_error"] = 'id="csrf-error"' in body or "id='csrf-error'" in body
        return res

    def step_get(self, path):
        res = self.fetch(path)
        body = res.pop("body", "")
        res["body_bytes"] = len(body)
        if res.get("content_type", "").startswith("text/html"):
            self.driver.get(self.url(path))
            res["page"] = self.page_info()
        return res

    def step_screenshot(self, path):
        path = os.path.abspath(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not self.driver.save_screenshot(path):
            raise StepError("screenshot to %s failed" % path)
        return {"path": path, "bytes": os.path.getsize(path), "url": self.driver.current_url}

    def run(self, name, args):
        fn = getattr(self, "step_" + name.replace("-", "_"), None)
        if name == "play-to-end":
            return self.step_play(args[0], to_end=True)
        return fn(*args)

    def close(self):
        if self.driver is not None:
            try:
                self.driver.quit()
            except Exception as e:  # noqa: BLE001
                log("quit: %s" % e)
        kill_service(self.service)
        shutil.rmtree(self.profile, ignore_errors=True)


def _alive(element):
    """False once `element` belongs to a page that is gone."""
    try:
        element.tag_name
        return True
    except Exception:  # noqa: BLE001 -- StaleElementReferenceException
        return False


def _shown(element):
    try:
        return element.is_displayed()
    except Exception:  # noqa: BLE001
        return False


def _css_ident(s):
    """s for use after # or in an id selector: anything unusual escaped."""
    return "".join(c if (c.isalnum() or c in "-_") else "\\%x " % ord(c) for c in s)


def kill_service(service):
    proc = getattr(service, "process", None)
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def main(argv):
    args = parse_args(argv)
    state = {"session": None, "done": False}

    def watchdog():
        time.sleep(args.timeout)
        if state["done"]:
            return
        emit({"step": "timeout", "ok": False, "error": "the --timeout of %ss ran out" % args.timeout})
        s = state["session"]
        if s is not None:
            kill_service(s.service)
            shutil.rmtree(s.profile, ignore_errors=True)
        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        session = Session(args)
    except Exception as e:  # noqa: BLE001 -- report any start failure as a JSON line
        emit({"step": "start", "ok": False, "error": "%s: %s" % (type(e).__name__, e)})
        return 2
    state["session"] = session
    ok = True
    count = 0
    try:
        for name, step_args in args.steps:
            t0 = time.monotonic()
            line = {"step": name, "args": step_args}
            try:
                line.update(session.run(name, step_args) or {})
                line["ok"] = True
            except StepError as e:
                line.update(ok=False, error=str(e), url=_safe_url(session))
            except Exception as e:  # noqa: BLE001 -- WebDriver errors
                line.update(ok=False, error="%s: %s" % (type(e).__name__, str(e).strip()[:2000]), url=_safe_url(session))
            line["seconds"] = round(time.monotonic() - t0, 3)
            emit(line)
            count += 1
            if not line["ok"]:
                ok = False
                break
    finally:
        state["done"] = True
        session.close()
    emit({"step": "done", "ok": ok, "steps": count})
    return 0 if ok else 1


def _safe_url(session):
    try:
        return session.driver.current_url
    except Exception:  # noqa: BLE001
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
