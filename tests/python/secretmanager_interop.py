"""Interop: google-cloud-secret-manager 2.32.0 over REST against the platform, with credentials from google-auth.

Creates a secret, adds a version with a client-side CRC32C, accesses it and checks the checksum as Google's sample
does, walks the version states, manages the secret's IAM policy, and checks the exception classes of PROTOCOL.md §6.4.

Usage: secretmanager_interop.py API_URL OWNER_REFRESH_TOKEN OTHER_REFRESH_TOKEN OTHER_EMAIL PROJECT_ID
"""
import sys

import google.oauth2.credentials
import google_crc32c
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.cloud import secretmanager

api, owner_refresh, other_refresh, other_email, project = sys.argv[1:6]


def client(refresh_token):
    creds = google.oauth2.credentials.Credentials(
        token=None, refresh_token=refresh_token, token_uri=f"{api}/token", client_id="gatehouse-cli",
        client_secret="unused")
    return secretmanager.SecretManagerServiceClient(
        credentials=creds, transport="rest", client_options=ClientOptions(api_endpoint=api))


def expect(exc, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc as e:
        return e
    raise AssertionError(f"expected {exc.__name__}")


owner = client(owner_refresh)
other = client(other_refresh)
parent = f"projects/{project}"

secret = owner.create_secret(request={
    "parent": parent, "secret_id": "py-secret",
    "secret": {"replication": {"automatic": {}}, "labels": {"team": "interop"}}})
number = secret.name.split("/")[1]
assert number.isdigit() and secret.name == f"projects/{number}/secrets/py-secret", secret.name
assert secret.labels["team"] == "interop", secret.labels

# Add a version as Google's sample does: with the client's CRC32C of the payload.
payload = b"hunter2 \x00\xff binary ok"
crc32c = google_crc32c.Checksum()
crc32c.update(payload)
version = owner.add_secret_version(request={
    "parent": secret.name, "payload": {"data": payload, "data_crc32c": int(crc32c.hexdigest(), 16)}})
assert version.name == f"{secret.name}/versions/1", version.name
assert version.state == secretmanager.SecretVersion.State.ENABLED, version.state
assert version.client_specified_payload_checksum

# Access "latest" and verify the checksum the service returns, as the sample does.
response = owner.access_secret_version(request={"name": f"projects/{project}/secrets/py-secret/versions/latest"})
assert response.name == f"{secret.name}/versions/1", response.name
assert response.payload.data == payload, response.payload.data
crc32c = google_crc32c.Checksum()
crc32c.update(response.payload.data)
if response.payload.data_crc32c != int(crc32c.hexdigest(), 16):
    raise AssertionError("Data corruption detected.")

# A version without a client checksum gets one computed by the service.
v2 = owner.add_secret_version(request={"parent": secret.name, "payload": {"data": b"second"}})
assert not v2.client_specified_payload_checksum
got = owner.access_secret_version(request={"name": v2.name})
c = google_crc32c.Checksum()
c.update(b"second")
assert got.payload.data_crc32c == int(c.hexdigest(), 16)

# A wrong client checksum is refused (400).
expect(exceptions.BadRequest, owner.add_secret_version,
       request={"parent": secret.name, "payload": {"data": b"x", "data_crc32c": 1}})

names = [s.name for s in owner.list_secrets(request={"parent": parent})]
assert secret.name in names, names
listed = [v.name for v in owner.list_secret_versions(request={"parent": secret.name})]
assert listed == [v2.name, version.name], listed

# States: DISABLED → 400 (BadRequest over REST, never FailedPrecondition), latest does not fall back.
owner.disable_secret_version(request={"name": v2.name})
e = expect(exceptions.BadRequest, owner.access_secret_version, request={"name": f"{secret.name}/versions/latest"})
assert f"Secret Version [{v2.name}] is in DISABLED state." in str(e), e
owner.enable_secret_version(request={"name": v2.name})
destroyed = owner.destroy_secret_version(request={"name": v2.name})
assert destroyed.state == secretmanager.SecretVersion.State.DESTROYED, destroyed.state
e = expect(exceptions.BadRequest, owner.access_secret_version, request={"name": v2.name})
assert "is in DESTROYED state." in str(e), e

# Errors: 404 for a missing secret the caller could read, 403 for one it may not, 400 for a malformed id, 409 twice.
e = expect(exceptions.NotFound, owner.access_secret_version,
           request={"name": f"projects/{project}/secrets/missing/versions/latest"})
assert f"Secret [projects/{number}/secrets/missing] not found or has no versions." in str(e), e
for name in [f"{secret.name}/versions/1", f"projects/{project}/secrets/missing/versions/latest"]:
    e = expect(exceptions.Forbidden, other.access_secret_version, request={"name": name})
    assert "(or it may not exist)" in str(e), e
expect(exceptions.BadRequest, owner.get_secret, request={"name": f"projects/{project}/secrets/bad.id"})
expect(exceptions.Conflict, owner.create_secret, request={
    "parent": parent, "secret_id": "py-secret", "secret": {"replication": {"automatic": {}}}})

# Per-secret IAM through the client: grant the other user secretAccessor on this secret only.
policy = owner.get_iam_policy(request={"resource": secret.name})
policy.bindings.add(role="roles/secretmanager.secretAccessor", members=[f"user:{other_email}"])
owner.set_iam_policy(request={"resource": secret.name, "policy": policy})
assert other.access_secret_version(request={"name": version.name}).payload.data == payload
held = other.test_iam_permissions(request={
    "resource": secret.name, "permissions": ["secretmanager.versions.access", "secretmanager.secrets.delete"]})
assert list(held.permissions) == ["secretmanager.versions.access"], held.permissions

# Labels through update_secret with a field mask.
owner.update_secret(request={"secret": {"name": secret.name, "labels": {"team": "two"}}, "update_mask": {"paths": ["labels"]}})
assert owner.get_secret(request={"name": secret.name}).labels["team"] == "two"

owner.delete_secret(request={"name": secret.name})
expect(exceptions.NotFound, owner.get_secret, request={"name": secret.name})
print("secretmanager interop ok")
