"""Interop: unmodified google-auth code inside `gatehouse exec --impersonate-service-account=SA -- python3 identity_interop.py ...`.

Usage: identity_interop.py AUDIENCE JWKS_URL CERTS_URL API_URL SA_EMAIL PROJECT_ID allowed|denied
"""
import sys

import google.auth
import google.auth.transport.requests
import google.oauth2.id_token
import jwt
from google.auth import compute_engine
from google.auth.compute_engine import _metadata

aud, jwks_url, certs_url, api, sa, project, expect = sys.argv[1:8]
request = google.auth.transport.requests.Request()

# The code from Google's docs: fetch an ID token from the metadata server.
token = google.oauth2.id_token.fetch_id_token(request, aud)

# Verify it the ways Google's docs show, against the platform's JWKS (PyJWT path) and PEM certificates.
for certs in (jwks_url, certs_url):
    claims = google.oauth2.id_token.verify_token(token, request, audience=aud, certs_url=certs)
    assert claims["aud"] == aud, claims
    assert claims["iss"] == "https://accounts.google.com", claims
    assert claims["email"] == sa, claims
    assert claims["email_verified"] is True, claims
    assert claims["sub"] == claims["azp"] and len(claims["sub"]) == 21 and claims["sub"].isdigit(), claims
    assert claims["exp"] - claims["iat"] == 3600, claims
    try:
        google.oauth2.id_token.verify_token(token, request, audience="https://someone-else.example", certs_url=certs)
    except (ValueError, jwt.exceptions.InvalidAudienceError):
        pass  # google-auth's own check (PEM certs) or PyJWT's (JWKS)
    else:
        raise AssertionError(f"a token for {aud} verified for another audience ({certs})")

header = jwt.get_unverified_header(token)
assert header["alg"] == "RS256" and header["typ"] == "JWT" and len(header["kid"]) == 40, header
signing_key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=aud, issuer="https://accounts.google.com")

# Application Default Credentials come from the metadata server.
credentials, adc_project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
assert isinstance(credentials, compute_engine.Credentials), type(credentials)
assert adc_project == project, adc_project
assert _metadata.get_project_id(request) == project
credentials.refresh(request)
assert credentials.service_account_email == sa, credentials.service_account_email
assert credentials.token.startswith("ya29."), "not an access token"

session = google.auth.transport.requests.AuthorizedSession(credentials)
resp = session.get(f"{api}/v1/projects/{project}/serviceAccounts")
if expect == "allowed":
    assert resp.status_code == 200, (resp.status_code, resp.text)
    emails = [a["email"] for a in resp.json().get("accounts", [])]
    assert sa in emails, emails
else:
    assert resp.status_code == 403, (resp.status_code, resp.text)
    assert "iam.serviceAccounts.list" in resp.json()["error"]["message"], resp.text

print("identity ok")
