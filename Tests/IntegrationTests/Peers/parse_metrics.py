#!/usr/bin/python3
"""Parses Prometheus text exposition from stdin with prometheus_client's own
parser (Debian's python3-prometheus-client) and prints it as JSON:
{"families": {NAME: TYPE}, "samples": [{"name", "labels", "value"}]}.
Exits 1, with the parser's error on stderr, when the text does not parse."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
try:
    families = {}
    samples = []
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for sample in family.samples:
            samples.append({"name": sample.name, "labels": dict(sample.labels), "value": sample.value})
except Exception as error:  # the parser raises ValueError and friends
    print(f"parse error: {error!r}", file=sys.stderr)
    sys.exit(1)
if not families:
    print("parse error: no metric families", file=sys.stderr)
    sys.exit(1)
json.dump({"families": families, "samples": samples}, sys.stdout)
