"""Validates JSON documents against a JSON Schema with the reference `jsonschema` library.

Usage: validate_json.py SCHEMA < documents.jsonl
Prints one line per input line: "ok" or "invalid: <message>".
"""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1], encoding="utf-8"))
validator = jsonschema.Draft202012Validator(schema)
jsonschema.Draft202012Validator.check_schema(schema)
for line in sys.stdin:
    line = line.rstrip("\n")
    try:
        document = json.loads(line)
    except json.JSONDecodeError as error:
        print(f"invalid: not JSON: {error}")
        continue
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    print("ok" if not errors else "invalid: " + errors[0].message.replace("\n", " "))
