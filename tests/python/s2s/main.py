"""A Cloud Run service that calls another one, with the code from Google's service-to-service docs.

GET /call?url=TARGET  -> fetches an ID token for TARGET from the metadata server and POSTs to it;
                         answers with the target's status code and body.
"""
import http.server
import json
import os
import urllib.parse

import google.auth.transport.requests
import google.oauth2.id_token
import requests


def call(target_url):
    # https://cloud.google.com/run/docs/authenticating/service-to-service (Python), unchanged.
    auth_req = google.auth.transport.requests.Request()
    id_token = google.oauth2.id_token.fetch_id_token(auth_req, target_url)
    return requests.post(target_url, headers={"Authorization": f"Bearer {id_token}"}, timeout=30)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        parsed = urllib.parse.urlparse(self.path)
        if parsed.path != "/call":
            self.send_response(404)
            self.end_headers()
            return
        target = urllib.parse.parse_qs(parsed.query)["url"][0]
        try:
            resp = call(target)
            body = json.dumps({"status": resp.status_code, "body": resp.text[:500]}).encode()
        except Exception as e:  # report, never hang
            body = json.dumps({"status": 0, "error": repr(e)}).encode()
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
