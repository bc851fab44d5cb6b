"""Test helper: drive the system's headless Chromium over the DevTools protocol on a pipe.

`--remote-debugging-pipe` makes Chromium read commands on fd 3 and write replies and events on fd
4, as NUL-terminated JSON: no websocket library, no browser download, only Debian's `chromium`.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any

WAIT_S = 60  # a generous bound for one reply on a busy CI box; never asserted as a duration


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium with one page. Use as a context manager."""

    def __init__(self, exe: str) -> None:
        self._exe = exe
        self._id = 0
        self._replies: dict[int, queue.Queue] = {}
        self.events: queue.Queue = queue.Queue()
        self.console: list[str] = []  # console errors and uncaught exceptions, as text

    def __enter__(self) -> Browser:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        self._profile = tempfile.mkdtemp(prefix="kb-chromium-")

        def fds() -> None:  # in the child: fd 3 = commands in, fd 4 = replies out
            # Via fresh copies: a pipe may itself be fd 3 or 4, and dup2 onto itself keeps close-on-exec.
            r, w = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(r, 3)
            os.dup2(w, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        args = [
            self._exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--remote-debugging-pipe",
            f"--user-data-dir={self._profile}",
            "--window-size=1280,1600",
            "about:blank",
        ]
        self._proc = subprocess.Popen(
            args,
            preexec_fn=fds,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # noqa: PLW1509
        os.close(to_browser_r)
        os.close(from_browser_w)
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=True)
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError, TimeoutError, RuntimeError):
            self.send("Browser.close")
        try:
            self._proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._to_browser)
        shutil.rmtree(self._profile, ignore_errors=True)

    def _read(self) -> None:
        buf = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg and msg["id"] in self._replies:
                    self._replies[msg["id"]].put(msg)
                else:
                    self._note(msg)
                    self.events.put(msg)

    def _note(self, msg: dict) -> None:
        p = msg.get("params", {})
        if msg.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.console.append(
                " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", []))
            )
        elif msg.get("method") == "Runtime.exceptionThrown":
            self.console.append(
                p["exceptionDetails"].get("exception", {}).get("description")
                or p["exceptionDetails"]["text"]
            )
        elif msg.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
            self.console.append(p["entry"]["text"])
        elif msg.get("method") == "Page.javascriptDialogOpening":
            self.console.append(f"dialog opened: {p.get('message')}")

    def send(self, method: str, session: bool = False, **params: Any) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self._session
        self._replies[self._id] = q = queue.Queue()
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        try:
            reply = q.get(timeout=WAIT_S)
        except queue.Empty:
            raise TimeoutError(f"no reply to {method}") from None
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def open(self, url: str) -> None:
        """Navigate and wait for the load event (images loaded, scripts run)."""
        self.send("Page.navigate", session=True, url=url)
        while True:
            msg = self.events.get(timeout=WAIT_S)
            if msg.get("method") == "Page.loadEventFired":
                return

    def js(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", session=True, expression=expression, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str) -> Any:
        """Poll `expression` until it is truthy (a page that fills itself in after its load
        event); its value. Raises TimeoutError after WAIT_S."""
        deadline = time.monotonic() + WAIT_S
        while not (value := self.js(expression)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"never true: {expression}")
            time.sleep(0.05)
        return value

    def click(self, selector: str) -> None:
        """A real mouse click (pressed + released) at the centre of the element."""
        x, y = self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView();"
            "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                session=True,
                type=kind,
                x=x,
                y=y,
                button="left",
                clickCount=1,
            )
