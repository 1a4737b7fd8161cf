"""Interop: Google's own Python client libraries against a running Gatehouse platform.

Usage: iam_interop.py API_URL REFRESH_TOKEN PROJECT_ID
Exits non-zero (with an assertion message) when a library call does not behave as against Google.
"""
import sys

import google.auth.transport.requests
import google.oauth2.credentials
import requests

api, refresh_token, project = sys.argv[1], sys.argv[2], sys.argv[3]

# google-auth's own refresh flow (grant_type=refresh_token, form-encoded) against the platform's token endpoint.
creds = google.oauth2.credentials.Credentials(
    token=None,
    refresh_token=refresh_token,
    token_uri=f"{api}/token",
    client_id="gatehouse-cli",
    client_secret="unused",
)
creds.refresh(google.auth.transport.requests.Request())
assert creds.token and creds.token.startswith("ya29."), "refresh did not yield an access token"
assert creds.expiry is not None, "the token endpoint gave no expiry"

session = google.auth.transport.requests.AuthorizedSession(creds)
resp = session.post(f"{api}/v1/projects/{project}:getIamPolicy", json={"options": {"requestedPolicyVersion": 3}})
assert resp.status_code == 200, (resp.status_code, resp.text)
policy = resp.json()
roles = {b["role"]: b["members"] for b in policy["bindings"]}
assert "user:owner@localhost" in roles["roles/owner"], policy
assert policy["etag"], policy

resp = session.post(f"{api}/v1/projects/{project}:testIamPermissions",
                    json={"permissions": ["resourcemanager.projects.setIamPolicy", "secretmanager.versions.access"]})
assert resp.status_code == 200, resp.text
assert resp.json()["permissions"] == ["resourcemanager.projects.setIamPolicy", "secretmanager.versions.access"], resp.text

# Without a token: 401 in Google's envelope.
resp = requests.post(f"{api}/v1/projects/{project}:getIamPolicy", json={})
assert resp.status_code == 401, resp.status_code
assert resp.json()["error"]["status"] == "UNAUTHENTICATED", resp.text

# A revoked refresh credential fails to refresh the way Google's does (RefreshError from invalid_grant).
bad = google.oauth2.credentials.Credentials(
    token=None, refresh_token="1//not-a-real-token", token_uri=f"{api}/token", client_id="x", client_secret="y")
try:
    bad.refresh(google.auth.transport.requests.Request())
except google.auth.exceptions.RefreshError as e:
    assert "invalid_grant" in str(e), str(e)
else:
    raise AssertionError("a bogus refresh token was accepted")

print("interop ok")
