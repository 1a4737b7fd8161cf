"""A Cloud Run service that reports what it can see and reach from inside its instance (the sandbox test's probe).

GET /probe?home=DIR&url=URL&echo=URL&private=IP&resolve=NAME...
                             -> JSON: uid/gid, hostname, visible PIDs, whether DIR (the platform's home) can be
                                listed or read, whether the host filesystem is writable, /tmp, a connection off
                                the machine and one to a private address, a GET of URL (a platform URL: API or
                                service), what the internet echo host says our address is, and an ID token fetched
                                by google-auth in a child process with an empty environment; each NAME resolved.
GET /call?url=URL&token=T    -> JSON {"status": N, "body": ...}: a GET of URL with `Authorization: Bearer T`
                                (status 0 when unreachable) — a caller for the network matrix.
GET /gcloud?bin=PATH&arg=A… -> the CLI at PATH run with ARGs and only HOME set: {"code", "stdout", "stderr"}.
GET /wrk?url=URL&d=S&c=N     -> wrk's output for S seconds (at most 30) of load on URL from inside the instance.
GET /hog                     -> allocates memory until the instance is stopped (its --memory limit).
"""
import errno
import http.server
import json
import os
import socket
import subprocess
import sys
import urllib.parse
import urllib.request

TOKEN_CHILD = """
import json, google.auth.transport.requests, google.oauth2.id_token
token = google.oauth2.id_token.fetch_id_token(google.auth.transport.requests.Request(), "https://example.test")
print(json.dumps({"token": token}))
"""


def attempt(fn):
    try:
        return {"ok": True, "value": fn()}
    except OSError as e:
        return {"ok": False, "errno": errno.errorcode.get(e.errno, str(e.errno)), "error": str(e)}
    except Exception as e:  # report, never hang
        return {"ok": False, "error": repr(e)}


def connect(host, port):
    with socket.create_connection((host, port), timeout=3):
        return "connected"


def write(path):
    with open(path, "w") as f:
        f.write("x")
    return path


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return {"status": r.status, "body": r.read(300).decode(errors="replace")}


def fetch_status(url):
    try:
        return fetch(url)
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read(300).decode(errors="replace")}


def call(url, token):
    """GET url with `Authorization: Bearer token` (none when empty): the status, or 0 when unreachable."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return {"status": r.status, "body": r.read(2000).decode(errors="replace")}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read(2000).decode(errors="replace")}
    except OSError as e:
        return {"status": 0, "error": str(e)}


def id_token_with_empty_env():
    out = subprocess.run([sys.executable, "-c", TOKEN_CHILD], env={}, capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-500:])
    return json.loads(out.stdout)["token"].count(".")


def probe(query):
    home = query.get("home", [""])[0]
    url = query.get("url", [""])[0]
    report = {
        # What earlier writers left in /tmp (before this probe writes its own file there).
        "tmp_before": sorted(os.listdir("/tmp")),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "hostname": socket.gethostname(),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "env": sorted(os.environ),
        "list_home": attempt(lambda: os.listdir(home)),
        "read_key": attempt(lambda: open(os.path.join(home, "operator.key")).read()[:4]),
        "read_db": attempt(lambda: open(os.path.join(home, "state.db"), "rb").read(4).hex()),
        "write_etc": attempt(lambda: write("/etc/gatehouse-probe")),
        "write_cwd": attempt(lambda: write("probe-wrote-here")),
        "write_tmp": attempt(lambda: write("/tmp/probe")),
        "var_tmp_before": attempt(lambda: sorted(os.listdir("/var/tmp"))),
        "write_var_tmp": attempt(lambda: write("/var/tmp/probe")),
        # A real public address: nothing is routed off the machine.
        "connect_out": attempt(lambda: connect("8.8.8.8", 53)),
        # A private address, reachable only through a VPC.
        "connect_private": attempt(lambda: connect(query.get("private", ["10.255.255.1"])[0], 5432)),
        "metadata_host": attempt(lambda: socket.gethostbyname("metadata.google.internal")),
        "id_token_empty_env": attempt(id_token_with_empty_env),
    }
    if url:
        report["fetch"] = attempt(lambda: fetch_status(url))
    for name in query.get("resolve", []):
        report.setdefault("resolved", {})[name] = attempt(lambda: socket.gethostbyname(name))
    echo = query.get("echo", [""])[0]
    if echo:
        report["echo"] = attempt(lambda: fetch(echo)["body"].strip())
    return report


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        parsed = urllib.parse.urlparse(self.path)
        if parsed.path == "/hog":
            hog = []
            while True:
                hog.append(bytearray(16 << 20))
        query = urllib.parse.parse_qs(parsed.query)
        if parsed.path == "/call":
            report = call(query["url"][0], query.get("token", [""])[0])
        elif parsed.path == "/gcloud":
            # The platform's CLI (as gcloud) inside the instance, with nothing but HOME in its environment.
            out = subprocess.run(
                [query["bin"][0]] + query.get("arg", []),
                env={"HOME": os.environ["HOME"]},
                capture_output=True,
                text=True,
                timeout=60,
            )
            report = {"code": out.returncode, "stdout": out.stdout, "stderr": out.stderr[-2000:]}
        elif parsed.path == "/wrk":
            # For bench/sandbox.sh: load from inside the instance, bounded by -d and a timeout.
            secs = min(int(query.get("d", ["5"])[0]), 30)
            args = ["wrk", "-t1", f"-c{int(query.get('c', ['8'])[0])}", f"-d{secs}s", query["url"][0]]
            out = subprocess.run(args, capture_output=True, text=True, timeout=secs + 20)
            report = {"stdout": out.stdout, "stderr": out.stderr[-500:]}
        elif parsed.path == "/probe":
            report = probe(query)
        else:
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps(report).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print(fmt % args, flush=True)


if __name__ == "__main__":
    port = int(os.environ["PORT"])
    print(f"listening on {port}", flush=True)
    http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
