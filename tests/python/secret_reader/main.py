"""A Cloud Run service that reads Secret Manager the way Google's samples do, unmodified but for the endpoint.

GET /?secret=NAME answers JSON: {"value": ...} when the runtime service account may read
projects/PROJECT/secrets/NAME/versions/latest, {"error": "<exception class>", "message": ...} otherwise.
Credentials come from google.auth.default(), i.e. the instance's metadata server; the API endpoint from
SECRET_MANAGER_ENDPOINT (Secret Manager has no emulator variable: PROTOCOL.md §6.5).
"""
import http.server
import json
import os
import urllib.parse

import google.auth
import google_crc32c
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.cloud import secretmanager

credentials, project = google.auth.default()
client = secretmanager.SecretManagerServiceClient(
    credentials=credentials, transport="rest",
    client_options=ClientOptions(api_endpoint=os.environ["SECRET_MANAGER_ENDPOINT"]))


def read(secret_id):
    name = f"projects/{project}/secrets/{secret_id}/versions/latest"
    try:
        response = client.access_secret_version(request={"name": name})
    except exceptions.GoogleAPICallError as e:
        return {"error": type(e).__name__, "message": e.message}
    crc32c = google_crc32c.Checksum()
    crc32c.update(response.payload.data)
    if response.payload.data_crc32c != int(crc32c.hexdigest(), 16):
        return {"error": "DataCorruption", "message": "checksum mismatch"}
    return {"value": response.payload.data.decode("utf-8"), "name": response.name}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        body = json.dumps(read(query["secret"][0])).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
