"""Run one cell through a running JupyterLab, as a learner's first cell would.

Starts a python3 kernel through the server's REST API, sends it code over the kernel's
websocket, prints what the code printed, and shuts the kernel down. Exits 1 when the
code raises or nothing comes back in time. Used by tools/rehearse_offline_kit.sh.

Usage: python tools/lab_smoke.py URL TOKEN [CODE]     (URL like http://127.0.0.1:8888)
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

DEFAULT_CODE = "import helpers, torch, tensorflow, transformers\nprint(helpers.__name__, 'ready')"


async def run_cell(url: str, token: str, code: str, timeout: float = 120) -> str:
    """Return what `code` printed in a new kernel of the server at `url`."""
    http = AsyncHTTPClient()
    headers = {"Authorization": f"token {token}"}
    reply = await http.fetch(
        HTTPRequest(f"{url}/api/kernels", "POST", headers, body='{"name": "python3"}')
    )
    kernel = json.loads(reply.body)["id"]
    ws_url = url.replace("http", "ws", 1) + f"/api/kernels/{kernel}/channels"
    socket = await websocket_connect(HTTPRequest(ws_url, headers=headers))
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "session": uuid.uuid4().hex}
    header |= {"username": "rehearsal", "version": "5.3"}
    content = {"code": code, "silent": False, "store_history": False}
    message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
    await socket.write_message(json.dumps(message | {"channel": "shell"}))
    printed = []
    try:
        while True:
            raw = await asyncio.wait_for(socket.read_message(), timeout)
            if raw is None:
                raise RuntimeError("the kernel's websocket closed")
            reply = json.loads(raw)
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, body = reply["msg_type"], reply["content"]
            if kind == "stream":
                printed.append(body["text"])
            elif kind == "error":
                raise RuntimeError(f"{body['ename']}: {body['evalue']}")
            elif kind == "status" and body["execution_state"] == "idle":
                return "".join(printed)  # idle comes after the cell's last output
    finally:
        socket.close()
        await http.fetch(HTTPRequest(f"{url}/api/kernels/{kernel}", "DELETE", headers))


def main() -> int:
    url, token, *rest = sys.argv[1:]
    code = rest[0] if rest else DEFAULT_CODE
    try:
        printed = asyncio.run(run_cell(url.rstrip("/"), token, code))
    except (RuntimeError, TimeoutError) as error:
        print(f"error: the cell failed in JupyterLab's kernel: {error}", file=sys.stderr)
        return 1
    print(printed, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
