"""Verifies ID tokens with google-auth against the platform's JWKS and PEM certificates.

Usage: verify_token.py AUDIENCE JWKS_URL CERTS_URL TOKEN...
"""
import sys

import google.auth.transport.requests
import google.oauth2.id_token

aud, jwks_url, certs_url, *tokens = sys.argv[1:]
request = google.auth.transport.requests.Request()
for token in tokens:
    for certs in (jwks_url, certs_url):
        claims = google.oauth2.id_token.verify_token(token, request, audience=aud, certs_url=certs)
        assert claims["aud"] == aud, claims
print(f"verified {len(tokens)} tokens")
