"""Headless Chromium (the Debian package) driven over the DevTools protocol with aiohttp.

The web TUI draws on a canvas (xterm.js), so its text is not in the DOM: the page gets a hook
before it loads that keeps what the terminal receives over its websocket, and the tests read
that, the page's own text, and screenshots.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# what the terminal receives, as text (escape sequences and all)
KEEP_RECEIVED = """
window.__received = "";
const Original = window.WebSocket;
window.WebSocket = class extends Original {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => {
      const data = event.data;
      if (typeof data === "string") window.__received += data;
      else if (data instanceof ArrayBuffer) window.__received += new TextDecoder().decode(data);
      else if (data instanceof Blob) data.text().then((text) => { window.__received += text; });
    });
  }
};
"""


class Page:
    """One tab: send DevTools commands, evaluate JavaScript."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        await self.socket.send_json({"id": ident, "method": method, "params": params})
        async for message in self.socket:
            data = json.loads(message.data)
            if data.get("id") == ident:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return dict(data.get("result", {}))
        raise RuntimeError(f"{method}: the browser closed the connection")

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def open(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def wait_for(self, expression: str, what: str, patience: float = 60.0) -> Any:
        """Evaluate until the value is truthy (a generous bound: a loaded machine, not timing)."""
        deadline = asyncio.get_running_loop().time() + patience
        while asyncio.get_running_loop().time() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


@contextlib.asynccontextmanager
async def chromium(profile_dir: Path, size: tuple[int, int] = (1280, 800)) -> AsyncIterator[Page]:
    """A headless Chromium with one tab that keeps what its websockets receive."""
    assert CHROMIUM is not None, "chromium is not installed (apt-get install chromium)"
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--remote-debugging-port=0", f"--user-data-dir={profile_dir}",
        f"--window-size={size[0]},{size[1]}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        browser_url = None
        while browser_url is None:
            line = await asyncio.wait_for(proc.stderr.readline(), 60)
            if not line:
                raise AssertionError("chromium exited before it listened")
            if found := re.search(rb"DevTools listening on (ws://\S+)", line):
                browser_url = found.group(1).decode()
        drain = asyncio.create_task(proc.stderr.read())  # chromium logs a lot: keep reading
        port = re.search(r":(\d+)/", browser_url).group(1)  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            tab = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                await page.send("Page.enable")
                await page.send("Page.addScriptToEvaluateOnNewDocument", source=KEEP_RECEIVED)
                yield page
        drain.cancel()
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
