"""Parses TOML documents with Python's tomllib (the reference) and prints them as JSON.

Usage: toml_reference.py FILE...  → one line per file: canonical JSON, "error", or "date" for a
valid document holding dates or times (which mulan's parser refuses on purpose).
Non-finite floats print as the strings "inf", "-inf", "nan", as mulan's TOMLValue.json does.
"""
import datetime
import json
import math
import sys
import tomllib

class HasDate(Exception):
    pass

def fix(v):
    if isinstance(v, (datetime.date, datetime.time)):
        raise HasDate()
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: fix(x) for k, x in v.items()}
    if isinstance(v, list):
        return [fix(x) for x in v]
    return v

for path in sys.argv[1:]:
    try:
        with open(path, "rb") as f:
            print(json.dumps(fix(tomllib.load(f)), sort_keys=True))
    except tomllib.TOMLDecodeError:
        print("error")
    except HasDate:
        print("date")
