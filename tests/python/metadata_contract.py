"""The metadata server's negative cases, checked with plain requests inside `gatehouse exec`."""
import os

import requests

base = "http://" + os.environ["GCE_METADATA_HOST"]
ident = base + "/computeMetadata/v1/instance/service-accounts/default/identity"
flavor = {"Metadata-Flavor": "Google"}

r = requests.get(base + "/")
assert r.status_code == 200 and r.headers["Metadata-Flavor"] == "Google", r

r = requests.get(ident + "?audience=https://x.example")
assert r.status_code == 403 and "Missing Metadata-Flavor:Google header." in r.text, (r.status_code, r.text)
assert r.headers["Metadata-Flavor"] == "Google"

r = requests.get(ident + "?audience=https://x.example", headers={**flavor, "X-Forwarded-For": "203.0.113.7"})
assert r.status_code == 403, (r.status_code, r.text)

r = requests.get(ident, headers=flavor)
assert r.status_code == 400, (r.status_code, r.text)

r = requests.get(ident + "?audience=https://x.example&format=full", headers=flavor)
assert r.status_code == 200, (r.status_code, r.text)
assert not r.headers["Content-Type"].startswith("application/json"), r.headers["Content-Type"]

r = requests.get(base + "/computeMetadata/v1/instance/service-accounts/default/token", headers=flavor)
assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json"), r.headers
assert r.json()["token_type"] == "Bearer" and r.json()["expires_in"] > 3000, r.text

r = requests.get(base + "/computeMetadata/v1/universe/universe-domain", headers=flavor)
assert r.status_code == 404, r.status_code
print("metadata ok")
