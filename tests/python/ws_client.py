"""A WebSocket client (the `websockets` library), as a caller of a Cloud Run service uses it.

usage: ws_client.py URL [TOKEN] [--idle SECONDS]
Connects to URL (http(s) becomes ws(s)), with `Authorization: Bearer TOKEN` when a token is given, reads the greeting,
sends two messages and reads their echoes; with --idle, then waits that long and tries once more. Prints one JSON
object: {"status": 101, "greeting": ..., "echoes": [...], "after_idle": ...} or {"status": <refusal status>, "body": ...}.
"""
import argparse
import json
import time

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("token", nargs="?", default="")
parser.add_argument("--idle", type=float, default=0)
args = parser.parse_args()

url = "ws" + args.url[len("http"):] if args.url.startswith("http") else args.url
headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
try:
    with connect(url + "/chat", additional_headers=headers, open_timeout=10) as ws:
        out = {"status": 101, "greeting": json.loads(ws.recv(timeout=10)), "echoes": []}
        for message in ["one", "two"]:
            ws.send(message)
            out["echoes"].append(ws.recv(timeout=10))
        if args.idle:
            time.sleep(args.idle)
            try:
                ws.send("late")
                out["after_idle"] = ws.recv(timeout=10)
            except ConnectionClosed as e:
                out["after_idle"] = "closed"
except InvalidStatus as e:
    out = {"status": e.response.status_code, "body": e.response.body.decode(errors="replace")}
print(json.dumps(out))
