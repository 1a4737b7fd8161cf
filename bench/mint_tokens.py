#!/usr/bin/env python3
"""mint_tokens.py KEYS_DIR COUNT AUDIENCE > tokens.txt: COUNT distinct valid RS256 ID tokens signed with the peers
harness's key (KEYS_DIR/key.pem, kid from KEYS_DIR/kid), shaped like gen_tokens.py's (same iss and email), each made
distinct by its `sub`/`azp` and `iat`. Needs PyJWT + cryptography (the harness venv)."""
import sys, time
import jwt
from cryptography.hazmat.primitives import serialization

keys, count, aud = sys.argv[1], int(sys.argv[2]), sys.argv[3]
key = serialization.load_pem_private_key(open(f"{keys}/key.pem", "rb").read(), password=None)
kid = open(f"{keys}/kid").read().strip()
now = int(time.time())
out = sys.stdout
for n in range(count):
    sub = str(108000000000000000000 + n)
    claims = {"aud": aud, "azp": sub, "email": "invoker@peers-bench.iam.gserviceaccount.com",
              "email_verified": True, "exp": now + 3600, "iat": now - (n % 60), "iss": "https://accounts.google.com",
              "sub": sub}
    out.write(jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, "typ": "JWT"}) + "\n")
