"""Interop: google-cloud-run 0.16.2 over REST against the platform, with credentials from google-auth.

Usage: run_interop.py API_URL REFRESH_TOKEN PROJECT_ID REGION
"""
import sys

import google.auth.transport.requests
import google.oauth2.credentials
from google.api_core.client_options import ClientOptions
from google.api_core import exceptions
from google.cloud import run_v2

api, refresh_token, project, region = sys.argv[1:5]
creds = google.oauth2.credentials.Credentials(
    token=None, refresh_token=refresh_token, token_uri=f"{api}/token", client_id="gatehouse-cli", client_secret="unused")
client = run_v2.ServicesClient(credentials=creds, transport="rest", client_options=ClientOptions(api_endpoint=api))
parent = f"projects/{project}/locations/{region}"

service = run_v2.Service(
    ingress=run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER,
    template=run_v2.RevisionTemplate(
        containers=[run_v2.Container(image="us-docker.pkg.dev/cloudrun/container/hello",
                                     env=[run_v2.EnvVar(name="MODE", value="interop")])],
        max_instance_request_concurrency=5,
    ),
)
created = client.create_service(parent=parent, service=service, service_id="from-python").result()
assert created.name == f"{parent}/services/from-python", created.name
assert created.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER, created.ingress
assert created.latest_ready_revision.startswith("from-python-00001-"), created.latest_ready_revision
assert created.uri.startswith("http://127.0.0.1:"), created.uri

got = client.get_service(name=created.name)
assert got.template.containers[0].env[0].value == "interop", got.template
names = [s.name for s in client.list_services(parent=parent)]
assert created.name in names, names

policy = client.get_iam_policy(request={"resource": created.name})
assert policy.etag, policy

try:
    client.get_service(name=f"{parent}/services/missing")
except exceptions.NotFound:
    pass
else:
    raise AssertionError("a missing service was found")

client.delete_service(name=created.name).result()
print("run interop ok")
