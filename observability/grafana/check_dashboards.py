#!/usr/bin/env python3
"""Check the provisioned Paredão Grafana dashboards.

    python3 check_dashboards.py                                  # structural, offline
    python3 check_dashboards.py --prometheus http://127.0.0.1:9090  # also run every query

Structural mode: every dashboards/*.json parses, has uid/title/schemaVersion/panels, uids are
unique, every panel has type/title/gridPos/targets, every target has expr and refId, every
datasource reference is the provisioned {"type": "prometheus", "uid": "prometheus"}, and every
metric name used in an expression is one the Paredão stack exports (KNOWN_METRICS below).

Live mode adds, for every target: the expression (with Grafana's $__rate_interval -> 1m,
$__interval -> 15s, $__range -> 5m) must run on Prometheus with status "success" and a
non-empty result, and every metric name it uses must be one Prometheus has stored
(/api/v1/label/__name__/values).

Prints one line per panel target (ok / FAIL: reason), then `targets: X passed, Y failed` and,
last, `dashboards: N passed, M failed` (a dashboard passes when all its checks pass).
Exits 1 if anything failed. Python 3 standard library only.
"""

import argparse
import glob
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
DASHBOARD_DIR = os.path.join(HERE, "dashboards")
DATASOURCE_FILE = os.path.join(HERE, "provisioning", "datasources", "prometheus.yml")
EXPECTED_DS = {"type": "prometheus", "uid": "prometheus"}
PANEL_TYPES = {"timeseries", "stat", "bargauge"}

# Histograms: NAME_bucket, NAME_sum and NAME_count are known.
KNOWN_HISTOGRAMS = {
    "axum_http_requests_duration_seconds",
    "paredao_batch_size_votes",
    "paredao_publish_confirm_seconds",
    "paredao_captcha_max_number",
    "paredao_consumer_lag_seconds",
    "paredao_consumer_write_seconds",
}
KNOWN_METRICS = {
    # API (axum-prometheus layer and the API's own metrics)
    "axum_http_requests_total",
    "axum_http_requests_pending",
    "paredao_votes_accepted_total",
    "paredao_votes_rejected_total",
    "paredao_batches_published_total",
    "paredao_results_snapshot_age_seconds",
    "paredao_broker_connected",
    "paredao_store_reachable",
    "paredao_fault_vote_error_ratio",
    # consumer
    "paredao_consumer_votes_persisted_total",
    "paredao_consumer_messages_total",
    "paredao_consumer_redeliveries_total",
    "paredao_consumer_votes_discarded_total",
    "paredao_consumer_broker_connected",
    "paredao_consumer_store_reachable",
    # rabbitmq_prometheus (per-object metrics)
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    # prometheus-nginx-exporter
    "nginx_http_requests_total",
    "nginx_connections_active",
    # Prometheus itself
    "up",
} | {h + s for h in KNOWN_HISTOGRAMS for s in ("_bucket", "_sum", "_count")}

PROMQL_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "exp", "floor", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_sum", "holt_winters", "hour", "idelta", "increase",
    "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
    "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi",
    "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets",
    "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_desc", "sqrt", "stddev_over_time",
    "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
    "start", "end",
}
PROMQL_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
}
PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "atan2", "inf", "nan",
}
# Counters that only appear after something went wrong (a redelivery, a replayed captcha), so
# Prometheus may not know their names after a healthy run. An expression may use them only with
# a `or vector(0)` fallback; then a name Prometheus lacks is a note, not a failure.
MAY_BE_ABSENT = {
    "paredao_consumer_redeliveries_total",
    "paredao_consumer_votes_discarded_total",
}
_FALLBACK = re.compile(r"\bor\s+(?:on\s*\(\s*\)\s*)?vector\s*\(\s*0\s*\)")

NOT_METRICS = PROMQL_FUNCTIONS | PROMQL_AGGREGATIONS | PROMQL_KEYWORDS

GRAFANA_VARS = [("$__rate_interval", "1m"), ("$__interval", "15s"), ("$__range", "5m")]

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_BRACES = re.compile(r"\{[^}]*\}")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENT = re.compile(r"(?<![\w.:])[A-Za-z_:][\w:]*")


def metric_names(expr):
    """Metric names used in a PromQL expression.

    Removes, in order: string literals (label values, label_replace arguments), label lists of
    by/without/on/ignoring/group_left/group_right, label matchers in braces, range/subquery
    brackets (durations), Grafana variables; what is left that is an identifier and not a
    function, aggregation or keyword is a metric name. Numbers (1e3, 0.99) are not identifiers.
    """
    s = _STRING.sub('""', expr)
    s = _LABEL_LIST.sub(" ", s)
    s = _BRACES.sub(" ", s)
    s = _BRACKETS.sub(" ", s)
    s = _VARIABLE.sub(" ", s)
    names = []
    for m in _IDENT.finditer(s):
        tok = m.group(0)
        if tok.lower() in NOT_METRICS:
            continue
        if tok not in names:
            names.append(tok)
    return names


def substitute(expr):
    for var, value in GRAFANA_VARS:
        expr = expr.replace("${%s}" % var[1:], value).replace(var, value)
    return expr


def provisioned_uid():
    """uid of the provisioned datasource, read without a YAML parser (one datasource)."""
    try:
        with open(DATASOURCE_FILE, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        return None, "cannot read %s: %s" % (DATASOURCE_FILE, e)
    uids = re.findall(r"^\s*uid:\s*[\"']?([\w.-]+)[\"']?\s*(?:#.*)?$", text, re.M)
    types = re.findall(r"^\s*(?:-\s*)?type:\s*[\"']?([\w.-]+)[\"']?\s*(?:#.*)?$", text, re.M)
    if len(uids) != 1:
        return None, "%s: expected exactly one uid, found %r" % (DATASOURCE_FILE, uids)
    if types != ["prometheus"]:
        return None, "%s: expected one datasource of type prometheus, found %r" % (DATASOURCE_FILE, types)
    return uids[0], None


def datasource_refs(node, path="$"):
    """Every value under a "datasource" key, anywhere in the dashboard."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasource":
                yield path + "." + k, v
            yield from datasource_refs(v, path + "." + k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from datasource_refs(v, "%s[%d]" % (path, i))


def all_panels(panels):
    for p in panels:
        yield p
        # Collapsed rows keep their panels inside.
        yield from all_panels(p.get("panels") or [])


class Prometheus:
    def __init__(self, base, timeout=10):
        self.base = base.rstrip("/")
        self.timeout = timeout

    def get(self, path, params=None):
        url = self.base + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            # Prometheus answers bad queries with 400 and a JSON error body.
            try:
                return json.load(e)
            except ValueError:
                return {"status": "error", "error": "HTTP %d" % e.code}
        except (urllib.error.URLError, OSError, ValueError) as e:
            return {"status": "error", "error": "request failed: %s" % e}

    def names(self):
        body = self.get("/api/v1/label/__name__/values")
        if body.get("status") != "success":
            raise RuntimeError("cannot list metric names from %s: %s" % (self.base, body.get("error")))
        return set(body.get("data") or [])

    def query(self, expr):
        """None if the query ran and returned data, else the reason."""
        body = self.get("/api/v1/query", {"query": expr})
        if body.get("status") != "success":
            return "query error: %s: %s" % (body.get("errorType", "?"), body.get("error", body))
        data = body.get("data") or {}
        result = data.get("result")
        if data.get("resultType") in ("scalar", "string"):
            return None if result else "empty result"
        if not result:
            return "empty result"
        return None


def check_dashboard(path, ds_uid, seen_uids, prom, prom_names):
    """Returns (dashboard_errors, target_results); target_results is [(label, error or None)]."""
    name = os.path.basename(path)
    errors, results = [], []
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        return ["invalid JSON: %s" % e], results
    if not isinstance(dash, dict):
        return ["top level is not an object"], results

    for key in ("uid", "title", "schemaVersion", "panels"):
        if key not in dash:
            errors.append("missing %r" % key)
    uid = dash.get("uid")
    if uid:
        if uid in seen_uids:
            errors.append("uid %r also used by %s" % (uid, seen_uids[uid]))
        seen_uids[uid] = name
    if "__inputs" in dash:
        errors.append("has __inputs (export-for-sharing); provisioned dashboards must not")
    if "${DS_" in json.dumps(dash):
        errors.append("uses a ${DS_...} input variable")
    expected = dict(EXPECTED_DS)
    if ds_uid is not None and ds_uid != EXPECTED_DS["uid"]:
        errors.append("provisioned datasource uid is %r, dashboards expect %r" % (ds_uid, EXPECTED_DS["uid"]))
    for where, ref in datasource_refs(dash):
        if ref != expected:
            errors.append("%s: datasource %r is not %r" % (where, ref, expected))

    panels = dash.get("panels")
    if not isinstance(panels, list) or not panels:
        errors.append("panels is not a non-empty list")
        panels = []
    panel_ids = set()
    for idx, p in enumerate(all_panels(panels)):
        title = p.get("title") or "panel #%d" % idx
        if p.get("type") == "row":
            continue
        perr = []
        if not p.get("title"):
            perr.append("no title")
        if p.get("type") not in PANEL_TYPES:
            perr.append("type %r not one of %s" % (p.get("type"), sorted(PANEL_TYPES)))
        gp = p.get("gridPos")
        if not isinstance(gp, dict) or not all(isinstance(gp.get(k), int) for k in ("h", "w", "x", "y")):
            perr.append("gridPos missing or not integer h/w/x/y")
        elif gp["x"] + gp["w"] > 24 or gp["w"] <= 0 or gp["h"] <= 0:
            perr.append("gridPos %r outside the 24-column grid" % gp)
        if p.get("id") in panel_ids:
            perr.append("duplicate panel id %r" % p.get("id"))
        panel_ids.add(p.get("id"))
        targets = p.get("targets")
        if not isinstance(targets, list) or not targets:
            perr.append("no targets")
            targets = []
        for e in perr:
            errors.append("panel %r: %s" % (title, e))
        refids = set()
        for t in targets:
            ref = t.get("refId") if isinstance(t, dict) else None
            label = "%s / %s / %s" % (name, title, ref or "?")
            terr = []
            if not isinstance(t, dict):
                results.append((label, "target is not an object"))
                continue
            expr = t.get("expr")
            if not ref:
                terr.append("no refId")
            elif ref in refids:
                terr.append("duplicate refId %r" % ref)
            refids.add(ref)
            if not isinstance(expr, str) or not expr.strip():
                terr.append("no expr")
                results.append((label, "; ".join(terr)))
                continue
            names = metric_names(expr)
            if not names:
                terr.append("no metric name found in %r" % expr)
            tolerated = []
            unknown = [n for n in names if n not in KNOWN_METRICS]
            if unknown:
                terr.append("unknown metric(s) %s" % ", ".join(unknown))
            if prom is not None:
                missing = [n for n in names if n not in prom_names]
                tolerated = [n for n in missing if n in MAY_BE_ABSENT and _FALLBACK.search(expr)]
                missing = [n for n in missing if n not in tolerated]
                if missing:
                    terr.append("not in Prometheus: %s" % ", ".join(missing))
                reason = prom.query(substitute(expr))
                if reason:
                    terr.append(reason)
            if terr:
                terr.append("expr: %s" % substitute(expr) if prom is not None else "expr: %s" % expr)
            if not terr and tolerated:
                label += " (note: %s not in Prometheus yet; the vector(0) fallback answered)" % ", ".join(tolerated)
            results.append((label, "; ".join(terr) if terr else None))
    return errors, results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus", metavar="URL",
                    help="base URL of a Prometheus that scrapes the stack, e.g. http://127.0.0.1:9090")
    ap.add_argument("--dashboards", default=DASHBOARD_DIR, help="directory of dashboard JSON (default: %(default)s)")
    args = ap.parse_args()

    ds_uid, ds_err = provisioned_uid()
    prom, prom_names = None, set()
    if args.prometheus:
        prom = Prometheus(args.prometheus)
        try:
            prom_names = prom.names()
        except RuntimeError as e:
            print("FAIL %s" % e)
            print("dashboards: 0 passed, 1 failed")
            return 1

    files = sorted(glob.glob(os.path.join(args.dashboards, "*.json")))
    dash_pass = dash_fail = t_pass = t_fail = 0
    if ds_err:
        print("FAIL %s" % ds_err)
        dash_fail += 1
    if not files:
        print("FAIL no dashboards in %s" % args.dashboards)
        dash_fail += 1
    seen = {}
    for path in files:
        errors, results = check_dashboard(path, ds_uid, seen, prom, prom_names)
        name = os.path.basename(path)
        for e in errors:
            print("FAIL %s: %s" % (name, e))
        for label, err in results:
            if err:
                t_fail += 1
                print("FAIL %s: %s" % (label, err))
            else:
                t_pass += 1
                print("ok   %s" % label)
        if errors or any(err for _, err in results):
            dash_fail += 1
        else:
            dash_pass += 1
    mode = "live against %s" % args.prometheus if prom else "structural"
    print("targets (%s): %d passed, %d failed" % (mode, t_pass, t_fail))
    print("dashboards: %d passed, %d failed" % (dash_pass, dash_fail))
    return 1 if dash_fail or t_fail else 0


if __name__ == "__main__":
    sys.exit(main())
