"""Headless Chromium driven over the Chrome DevTools Protocol, for the web chat test.

Debian's ``chromium`` package and the ``websockets`` library already installed are
enough: no chromedriver, no Selenium, nothing downloaded. Input goes through
``Input.*`` events (real key presses and mouse clicks, as a person makes them), and
every request the page makes is recorded so the test can show that none leaves the
server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import websockets

INSTALL_HINT = "apt-get install chromium chromium-driver"
BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_binary() -> str:
    """The browser to run; a missing one fails the test (CI must run it, not skip it)."""
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "headless Chromium is needed for the web chat browser test and was not found "
        f"({', '.join(BINARIES)}); install it with: {INSTALL_HINT}",
        pytrace=False,
    )


class Browser:
    """One headless Chromium with one page, closed by :meth:`close`."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.process: Optional[subprocess.Popen] = None
        self.socket: Any = None
        self.requests: List[str] = []  # every URL the page asked for, sockets included
        self.errors: List[str] = []  # uncaught exceptions and console errors
        self._ids = itertools.count(1)
        self._waiting: Dict[int, asyncio.Future] = {}
        self._reader: Optional[asyncio.Task] = None

    async def start(self, *, timeout: float = 60) -> Browser:
        args = [
            chromium_binary(),
            "--headless=new",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-extensions",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={self.profile}",
            "about:blank",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root otherwise
        log = (self.profile.parent / "chromium.log").open("wb")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = (self.profile.parent / "chromium.log").read_text(errors="replace")
                pytest.fail(f"Chromium did not start:\n{output[-3000:]}")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = await asyncio.to_thread(self._targets, port)
        page = next(t for t in targets if t.get("type") == "page")
        self.socket = await websockets.connect(
            page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        for domain in ("Page", "Runtime", "Network", "Log"):
            await self.call(f"{domain}.enable")
        return self

    @staticmethod
    def _targets(port: int) -> List[Dict[str, Any]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            return json.loads(answer.read())

    async def _read(self) -> None:
        async for raw in self.socket:
            message = json.loads(raw)
            waiter = self._waiting.pop(message.get("id"), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)
                continue
            self._record(message.get("method"), message.get("params") or {})

    def _record(self, method: Optional[str], params: Dict[str, Any]) -> None:
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Network.webSocketCreated":
            self.requests.append(params["url"])
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(str(details.get("exception", {}).get("description") or details))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(json.dumps(params.get("args"))[:500])
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.errors.append(params["entry"].get("text", "")[:500])

    async def call(self, method: str, timeout: float = 30, **params: Any) -> Dict[str, Any]:
        message_id = next(self._ids)
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = waiter
        await self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        answer = await asyncio.wait_for(waiter, timeout)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, timeout: float = 60, what: str = "") -> Any:
        """Poll ``expression`` until it is truthy; fail with the page's state otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                page = await self.evaluate("document.getElementById('webchat-log').innerText")
                status = await self.evaluate("document.getElementById('webchat-status').innerText")
                pytest.fail(
                    f"timed out after {timeout} s waiting for {what or expression}\n"
                    f"status: {status}\nconversation:\n{page}\nerrors: {self.errors}"
                )
            await asyncio.sleep(0.2)

    async def open(self, url: str) -> None:
        await self.call("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'", what="the page to load")

    async def reload(self) -> None:
        await self.call("Page.reload", ignoreCache=True)
        await asyncio.sleep(0.5)
        await self.wait_for("document.readyState === 'complete'", what="the page to reload")

    async def type(self, text: str) -> None:
        """Type into the focused element and press Enter, as a person does."""
        await self.call("Input.insertText", text=text)
        for kind in ("keyDown", "keyUp"):
            await self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key="Enter",
                code="Enter",
                windowsVirtualKeyCode=13,
                nativeVirtualKeyCode=13,
                **({"text": "\r"} if kind == "keyDown" else {}),
            )

    async def click(self, selector_js: str) -> None:
        """Click the centre of the element ``selector_js`` evaluates to, with the mouse."""
        box = await self.evaluate(
            f"(() => {{ const e = {selector_js}; e.scrollIntoView({{block: 'center'}});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box["x"],
                y=box["y"],
                button="left",
                clickCount=1,
            )

    async def attach_file(self, selector: str, path: Path) -> None:
        """Choose ``path`` in a file input, as the file picker would."""
        document = await self.call("DOM.getDocument")
        node = await self.call(
            "DOM.querySelector", nodeId=document["root"]["nodeId"], selector=selector
        )
        await self.call("DOM.setFileInputFiles", files=[str(path)], nodeId=node["nodeId"])

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.socket is not None:
            await self.socket.close()
        if self.process is not None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
