#!/usr/bin/env python3
"""Offline structural check of observability/graylog/content-pack.json.

This does not prove Graylog accepts the pack (Graylog cannot run here); it catches
the mistakes we can see without it: bad JSON, missing keys, duplicate or malformed
ids, wrong ports, a missing stream/pipeline/saved search/dashboard.

Usage: python3 check_content_pack.py [path/to/content-pack.json]
Exit status 0 when every check passes, 1 otherwise.
"""
import json
import re
import sys
from pathlib import Path

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SAVED_SEARCH_TITLE = "API events by level, live"
DASHBOARD_TITLE = "Paredão — logs"
STREAM_TITLE = "Paredão services"
RULE_TITLE = "nginx access log JSON"
SERVICES = {"paredao-api", "paredao-consumer", "nginx"}
SAVED_SEARCH_FIELDS = ["timestamp", "level", "service", "request_id", "paredao",
                       "participant", "status", "error_code", "message"]

errors = []


def fail(msg):
    errors.append(msg)


def val(ref):
    """Unwrap a content-pack ValueReference {"@type": ..., "@value": ...}."""
    if isinstance(ref, dict) and "@value" in ref:
        return ref["@value"]
    return ref


def by_type(entities, name):
    return [e for e in entities if isinstance(e.get("type"), dict) and e["type"].get("name") == name]


def widgets_of(view):
    out = []
    for state in (view.get("state") or {}).values():
        out.extend(state.get("widgets") or [])
    return out


def pivot_fields(pivots):
    fields = []
    for p in pivots or []:
        fields.extend(p.get("fields") or ([p["field"]] if "field" in p else []))
    return fields


def check_view_consistency(label, view):
    """Every widget must map to search types that exist in the search."""
    st_ids = {st.get("id") for q in view.get("search", {}).get("queries", [])
              for st in q.get("search_types", [])}
    q_ids = {q.get("id") for q in view.get("search", {}).get("queries", [])}
    for qid, state in (view.get("state") or {}).items():
        if qid not in q_ids:
            fail(f"{label}: state key {qid} is not a query id of its search")
        w_ids = {w.get("id") for w in state.get("widgets", [])}
        mapping = state.get("widget_mapping", {})
        for wid in w_ids:
            if wid not in mapping:
                fail(f"{label}: widget {wid} has no widget_mapping entry")
            elif not set(mapping[wid]) <= st_ids:
                fail(f"{label}: widget {wid} maps to unknown search types {set(mapping[wid]) - st_ids}")
            if wid not in state.get("positions", {}):
                fail(f"{label}: widget {wid} has no position")


def main(path):
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        print(f"FAIL: cannot read {path}: {exc}")
        return 1
    try:
        pack = json.loads(raw)
    except json.JSONDecodeError as exc:
        print(f"FAIL: {path} is not valid JSON: {exc}")
        return 1

    # ---- top level
    for key in ("v", "id", "rev", "name", "summary", "description", "vendor", "url", "parameters", "entities"):
        if key not in pack:
            fail(f"top level: missing key '{key}'")
    if not UUID_RE.match(str(pack.get("id", ""))):
        fail(f"top level: id {pack.get('id')!r} is not a lowercase UUID")
    if not isinstance(pack.get("rev"), int) or pack.get("rev", 0) < 1:
        fail("top level: rev must be a positive integer")
    # provision.sh reads id/rev with grep (no jq in the Graylog image): the first "id" and
    # "rev" in the file must be the top-level ones.
    first_id = re.search(r'"id"\s*:\s*"([^"]*)"', raw)
    first_rev = re.search(r'"rev"\s*:\s*([0-9]+)', raw)
    if not first_id or first_id.group(1) != pack.get("id"):
        fail('top level: the first "id" in the file must be the pack id (provision.sh relies on it)')
    if not first_rev or int(first_rev.group(1)) != pack.get("rev"):
        fail('top level: the first "rev" in the file must be the pack rev (provision.sh relies on it)')

    entities = pack.get("entities")
    if not isinstance(entities, list) or not entities:
        fail("top level: entities must be a non-empty list")
        entities = []

    # ---- every entity
    seen = {}
    for n, e in enumerate(entities):
        label = f"entity #{n}"
        if not isinstance(e, dict):
            fail(f"{label}: not an object")
            continue
        for key in ("v", "type", "id", "data", "constraints"):
            if key not in e:
                fail(f"{label}: missing key '{key}'")
        t = e.get("type")
        if not (isinstance(t, dict) and t.get("name") and t.get("version")):
            fail(f"{label}: type must be {{name, version}}, got {t!r}")
        eid = e.get("id")
        if not UUID_RE.match(str(eid)):
            fail(f"{label}: id {eid!r} is not a lowercase UUID")
        elif eid in seen:
            fail(f"{label}: id {eid} duplicates entity #{seen[eid]}")
        else:
            seen[eid] = n
        if eid == pack.get("id"):
            fail(f"{label}: id equals the pack id")
    # ids used inside views (queries, widgets, search types) must be unique too
    inner = []
    for e in by_type(entities, "search") + by_type(entities, "dashboard"):
        d = e.get("data", {})
        for q in d.get("search", {}).get("queries", []):
            inner.append(q.get("id"))
            inner.extend(st.get("id") for st in q.get("search_types", []))
        inner.extend(w.get("id") for w in widgets_of(d))
    for x in inner:
        if not UUID_RE.match(str(x)):
            fail(f"view internals: id {x!r} is not a lowercase UUID")
    dup = {x for x in inner if inner.count(x) > 1 or x in seen}
    if dup:
        fail(f"view internals: duplicated ids {sorted(map(str, dup))}")

    # ---- inputs
    inputs = {}
    for e in by_type(entities, "input"):
        d = e.get("data", {})
        inputs[val(d.get("type"))] = d
    for itype, port in (("org.graylog2.inputs.gelf.tcp.GELFTCPInput", 12201),
                        ("org.graylog2.inputs.syslog.udp.SyslogUDPInput", 1514)):
        d = inputs.get(itype)
        if d is None:
            fail(f"input: no {itype}")
            continue
        conf = d.get("configuration", {})
        if val(conf.get("port")) != port:
            fail(f"input {itype}: port is {val(conf.get('port'))!r}, expected {port}")
        if val(conf.get("bind_address")) != "0.0.0.0":
            fail(f"input {itype}: bind_address must be 0.0.0.0")
        if val(d.get("global")) is not True:
            fail(f"input {itype}: must be global")
        if not val(d.get("title")):
            fail(f"input {itype}: empty title")
    gelf = inputs.get("org.graylog2.inputs.gelf.tcp.GELFTCPInput")
    if gelf and val(gelf.get("configuration", {}).get("use_null_delimiter")) is not True:
        fail("input GELF TCP: use_null_delimiter must be true (services frame GELF with \\0)")

    # ---- stream
    streams = [e for e in by_type(entities, "stream") if val(e["data"].get("title")) == STREAM_TITLE]
    stream_id = None
    if len(streams) != 1:
        fail(f"stream: expected exactly one stream titled {STREAM_TITLE!r}, found {len(streams)}")
    else:
        stream_id = streams[0]["id"]
        d = streams[0]["data"]
        if val(d.get("remove_matches")) is not True:
            fail("stream: remove_matches (remove from default stream) must be true")
        rules = d.get("stream_rules", [])
        matching = val(d.get("matching_type"))
        exact_values = {val(r.get("value")) for r in rules
                        if val(r.get("field")) == "service" and val(r.get("type")) == "EXACT"
                        and val(r.get("inverted")) is False}
        regex_ok = any(val(r.get("field")) == "service" and val(r.get("type")) == "REGEX"
                       and all(re.fullmatch(val(r.get("value")), s) for s in SERVICES) for r in rules)
        if not (regex_ok or (matching == "OR" and exact_values == SERVICES)):
            fail(f"stream: rules must match service in {sorted(SERVICES)} "
                 f"(got matching_type={matching!r}, EXACT values={sorted(exact_values)})")

    # ---- pipeline rule + pipeline
    prules = [e for e in by_type(entities, "pipeline_rule") if val(e["data"].get("title")) == RULE_TITLE]
    if len(prules) != 1:
        fail(f"pipeline_rule: expected one rule titled {RULE_TITLE!r}, found {len(prules)}")
    else:
        src = val(prules[0]["data"].get("source")) or ""
        code = "\n".join(line.split("//", 1)[0] if not line.lstrip().startswith("//") else ""
                         for line in src.splitlines())
        if f'rule "{RULE_TITLE}"' not in src:
            fail(f'pipeline_rule: source must start with rule "{RULE_TITLE}"')
        if not re.search(r"^\s*when\b.*^\s*then\b.*^\s*end\s*$", code, re.S | re.M):
            fail("pipeline_rule: source must have when ... then ... end in that order")
        for needed in ("parse_json(", "set_fields(", 'set_field("service", "nginx")', 'set_field("level"'):
            if needed not in code:
                fail(f"pipeline_rule: source does not contain {needed}")
        bare = re.sub(r'"(?:\\.|[^"\\])*"', '""', code)  # drop string literals
        if bare.count("(") != bare.count(")") or bare.count("[") != bare.count("]") \
                or bare.count("{") != bare.count("}"):
            fail("pipeline_rule: unbalanced parentheses, brackets or braces outside strings")
    pipes = [e for e in by_type(entities, "pipeline") if val(e["data"].get("title")) == "Paredão"]
    if len(pipes) != 1:
        fail(f"pipeline: expected one pipeline titled 'Paredão', found {len(pipes)}")
    else:
        d = pipes[0]["data"]
        psrc = val(d.get("source")) or ""
        if not re.search(r'^pipeline "Paredão"\s*$.*^stage \d+ match (either|all|pass)\s*$.*'
                         rf'^\s*rule "{re.escape(RULE_TITLE)}"\s*$.*^end\s*$', psrc, re.S | re.M):
            fail("pipeline: source must be 'pipeline \"Paredão\" / stage N match ... / rule ... / end'")
        connected = [val(x) for x in d.get("connected_streams", [])]
        if stream_id and stream_id not in connected:
            fail("pipeline: not connected to the 'Paredão services' stream entity")

    # ---- saved search
    searches = [e for e in by_type(entities, "search") if val(e["data"].get("title")) == SAVED_SEARCH_TITLE]
    if len(searches) != 1:
        fail(f"saved search: expected one 'search' entity titled {SAVED_SEARCH_TITLE!r}, found {len(searches)}")
    else:
        d = searches[0]["data"]
        if d.get("type") != "SEARCH":
            fail(f"saved search: view type must be SEARCH, got {d.get('type')!r}")
        queries = d.get("search", {}).get("queries", [])
        if not queries or any(q.get("query", {}).get("query_string") != "service:paredao-api" for q in queries):
            fail("saved search: query must be service:paredao-api")
        for q in queries:
            tr = q.get("timerange", {})
            if tr.get("type") != "relative" or tr.get("range", tr.get("from")) != 300:
                fail(f"saved search: time range must be relative 300 s, got {tr}")
        ws = widgets_of(d)
        msgs = [w for w in ws if w.get("type") == "messages"]
        if not msgs or msgs[0].get("config", {}).get("fields") != SAVED_SEARCH_FIELDS:
            fail(f"saved search: needs a message table with fields {SAVED_SEARCH_FIELDS}")
        level_breakdown = [w for w in ws if w.get("type") == "aggregation"
                           and "level" in pivot_fields(w["config"].get("row_pivots"))
                           + pivot_fields(w["config"].get("column_pivots"))
                           and "timestamp" in pivot_fields(w["config"].get("row_pivots"))
                           and any(s.get("function") == "count()" for s in w["config"].get("series", []))]
        if not level_breakdown:
            fail("saved search: needs an aggregation counting messages by level over time")
        check_view_consistency("saved search", d)
        if searches[0]["type"].get("version") != "1":
            fail("saved search: entity type must be search version 1")

    # ---- dashboard
    dashes = [e for e in by_type(entities, "dashboard") if val(e["data"].get("title")) == DASHBOARD_TITLE]
    if len(dashes) != 1:
        fail(f"dashboard: expected one 'dashboard' entity titled {DASHBOARD_TITLE!r}, found {len(dashes)}")
    else:
        d = dashes[0]["data"]
        if d.get("type") != "DASHBOARD":
            fail(f"dashboard: view type must be DASHBOARD, got {d.get('type')!r}")
        ws = [w for w in widgets_of(d) if w.get("type") == "aggregation"]
        rows = [pivot_fields(w["config"].get("row_pivots")) + pivot_fields(w["config"].get("column_pivots"))
                for w in ws]
        for want, desc in ((["timestamp", "level"], "message count by level over time"),
                           (["error_code"], "errors by error_code"),
                           (["uri", "status"], "top request paths by nginx status")):
            if not any(all(f in r for f in want) for r in rows):
                fail(f"dashboard: no widget for {desc} (pivot on {want})")
        check_view_consistency("dashboard", d)

    if errors:
        for msg in errors:
            print(f"FAIL: {msg}")
        print(f"content pack check: {len(errors)} problem(s) in {path}")
        return 1
    print(f"content pack check: OK ({len(entities)} entities, pack {pack['id']} rev {pack['rev']})")
    return 0


if __name__ == "__main__":
    default = Path(__file__).resolve().parent / "content-pack.json"
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(default)))
