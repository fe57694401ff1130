#!/usr/bin/env bash
# Checks the edgefw monitoring files.
#
#   check.sh                 check the rules (promtool check + unit tests), the
#                            dashboard, the runbook links and the fleet's agent
#                            configuration (deploy/prometheus-agent)
#   check.sh SCRAPE          also check that every edgefw_* metric the rules and
#                            the dashboard use appears in SCRAPE, a Prometheus
#                            text exposition (e.g. `curl -s HOST:PORT/metrics`)
#   check.sh --list-names    print the metric families the rules and the
#                            dashboard use, one a line, and do nothing else
#
# Needs promtool (Debian package "prometheus") and python3. Exits non-zero with
# a message on the first kind of failure it finds.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rules=$here/edgefw-rules.yml
tests=$here/edgefw-rules.test.yml
dashboard=$here/edgefw-dashboard.json
runbook=$here/../../docs/runbook.md

die() { echo "check.sh: $*" >&2; exit 1; }

usage() {
	sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

list_names=false
scrape=
while (($#)); do
	case $1 in
	--list-names) list_names=true ;;
	-h | --help) usage ;;
	-*) echo "check.sh: unknown option $1" >&2; usage ;;
	*)
		[[ -z $scrape ]] || usage
		scrape=$1
		;;
	esac
	shift
done

command -v python3 >/dev/null || die "python3 is required"
[[ -z $scrape || -r $scrape ]] || die "cannot read scrape file $scrape"
for f in "$rules" "$tests" "$dashboard"; do
	[[ -f $f ]] || die "missing $f"
done

# Metric families referenced by the rules and the dashboard. Histogram series
# (_bucket, and _sum/_count next to a _bucket, the bare name or each other) are
# folded into their family name, which is what a registry and `# TYPE` lines
# call them.
referenced_names() {
	python3 - "$rules" "$dashboard" <<'PY'
import re, sys
names = set()
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        names.update(re.findall(r"edgefw_[a-z0-9_]+", f.read()))
families = set()
for n in names:
    for suffix in ("_bucket", "_sum", "_count"):
        base = n[: -len(suffix)]
        if n.endswith(suffix) and (suffix == "_bucket" or base + "_bucket" in names or base in names
                                   or {base + "_sum", base + "_count"} <= names):
            n = base
            break
    families.add(n)
bad = sorted(n for n in families if n.endswith("_"))
if bad:
    sys.exit("check.sh: truncated metric names in the monitoring files: " + ", ".join(bad))
print("\n".join(sorted(families)))
PY
}

if $list_names; then
	referenced_names
	exit 0
fi

command -v promtool >/dev/null ||
	die "promtool not found: apt-get install -y prometheus (it ships promtool)"

echo "== promtool check rules"
promtool check rules "$rules" || die "promtool check rules failed"

agent=$here/../../deploy/prometheus-agent/prometheus.yml
if [[ -f $agent ]]; then
	echo "== promtool check config --agent (the fleet's Prometheus agent example)"
	promtool check config --agent "$agent" || die "promtool check config --agent $agent failed"
fi

echo "== promtool test rules"
(cd "$here" && promtool test rules "$(basename "$tests")") || die "promtool test rules failed"

echo "== dashboard JSON"
python3 -m json.tool "$dashboard" >/dev/null || die "$dashboard is not valid JSON"

# Structure of the dashboard and of the alerts, test coverage of every alert,
# runbook anchors. Dashboard queries are written into a throwaway rules file
# (Grafana variables replaced) so that promtool parses their PromQL.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== dashboard structure and alert metadata"
python3 - "$dashboard" "$rules" "$tests" "$runbook" "$work/dashboard-queries.yml" <<'PY'
import json, os, re, sys

dashboard_path, rules_path, tests_path, runbook_path, queries_path = sys.argv[1:]
errors = []

with open(dashboard_path, encoding="utf-8") as f:
    dash = json.load(f)
if dash.get("title") != "Edge Network Security":
    errors.append(f"dashboard title is {dash.get('title')!r}, want 'Edge Network Security'")
if dash.get("uid") != "edgefw-network-security":
    errors.append(f"dashboard uid is {dash.get('uid')!r}, want 'edgefw-network-security'")
if not isinstance(dash.get("schemaVersion"), int):
    errors.append("dashboard has no schemaVersion")
variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
ds = variables.get("datasource")
if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
    errors.append("dashboard needs a variable 'datasource' of type datasource, query prometheus")
# Site (the agents' external label) and host narrow every panel: fleet-wide
# with All, one site, or one host.
for name, what in (("site", "Site"), ("instance", "Host")):
    v = variables.get(name)
    if not v or not v.get("multi") or not v.get("includeAll") or v.get("allValue") != ".*":
        errors.append(f"dashboard needs a multi-value variable {name!r} ({what}) with All as .*")

def uses_variable(d):
    return isinstance(d, dict) and d.get("uid") == "${datasource}"

def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))

exprs = []
ids = set()
for p in panels(dash.get("panels", [])):
    where = f"panel {p.get('id')} {p.get('title')!r}"
    if p.get("id") in ids:
        errors.append(f"{where}: duplicate panel id")
    ids.add(p.get("id"))
    if "gridPos" not in p:
        errors.append(f"{where}: no gridPos")
    targets = p.get("targets", [])
    if p.get("type") in ("row", "text") and not targets:
        continue
    if not targets:
        errors.append(f"{where}: no queries")
    if not uses_variable(p.get("datasource")):
        errors.append(f"{where}: datasource is not ${{datasource}}")
    for t in targets:
        if not uses_variable(t.get("datasource")):
            errors.append(f"{where}: query {t.get('refId')} datasource is not ${{datasource}}")
        if not t.get("expr"):
            errors.append(f"{where}: query {t.get('refId')} has no expr")
        else:
            exprs.append((where, t["expr"]))
for a in dash.get("annotations", {}).get("list", []):
    if "expr" in a:
        if not uses_variable(a.get("datasource")):
            errors.append(f"annotation {a.get('name')!r}: datasource is not ${{datasource}}")
        exprs.append((f"annotation {a.get('name')!r}", a["expr"]))

# Every selector of every query is narrowed by both variables.
for where, expr in exprs:
    for selector in re.findall(r"\b[a-z_:][a-z0-9_:]*\{[^}]*\}", expr):
        if 'site=~"$site"' not in selector or 'instance=~"$instance"' not in selector:
            errors.append(f'{where}: selector {selector} lacks site=~"$site" or instance=~"$instance"')
for v in variables.values():
    if v.get("type") == "query" and not uses_variable(v.get("datasource")):
        errors.append(f"variable {v.get('name')!r}: datasource is not ${{datasource}}")

# Grafana's variables, replaced by values that make the PromQL parseable.
substitutions = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1d",
                 "$site": ".*", "$instance": ".*", "$job": ".*"}
with open(queries_path, "w", encoding="utf-8") as out:
    out.write("groups:\n  - name: dashboard-queries\n    rules:\n")
    for i, (where, expr) in enumerate(exprs):
        for k, v in substitutions.items():
            expr = expr.replace(k, v)
        if "$" in expr:
            errors.append(f"{where}: unknown Grafana variable in {expr!r}")
        out.write(f"      # {where}\n      - record: dashboard_query_{i}\n        expr: {json.dumps(expr)}\n")

try:
    import yaml
except ImportError:
    if os.environ.get("CI") == "true":
        sys.exit("check.sh: python3-yaml not installed (CI=true: nothing is skipped; make test installs it)")
    yaml = None
    print("check.sh: python3-yaml not installed: skipping alert metadata and test coverage checks", file=sys.stderr)

if yaml:
    with open(rules_path, encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    with open(tests_path, encoding="utf-8") as f:
        tests = yaml.safe_load(f)
    anchors = None
    try:
        with open(runbook_path, encoding="utf-8") as f:
            anchors = set()
            for line in f:
                m = re.match(r"#+\s+(.*?)\s*$", line)
                if m:
                    anchors.add(re.sub(r"[^a-z0-9 _-]", "", m.group(1).lower()).replace(" ", "-"))
                anchors.update(re.findall(r'<a (?:id|name)="([^"]+)"', line))
    except FileNotFoundError:
        print(f"check.sh: {runbook_path} not found: skipping runbook anchor check", file=sys.stderr)

    fires, quiet = set(), set()
    for case in tests.get("tests", []):
        for t in case.get("alert_rule_test", []):
            (fires if t.get("exp_alerts") else quiet).add(t.get("alertname"))

    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    if not alerts:
        errors.append("no alerts in the rules file")
    for r in alerts:
        name = r["alert"]
        if r.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
            errors.append(f"alert {name}: severity label must be critical, warning or info")
        ann = r.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                errors.append(f"alert {name}: no {key} annotation")
        url = ann.get("runbook_url", "")
        if "docs/runbook.md#" not in url:
            errors.append(f"alert {name}: runbook_url {url!r} does not point into docs/runbook.md")
        elif anchors is not None and url.split("#", 1)[1] not in anchors:
            errors.append(f"alert {name}: docs/runbook.md has no section #{url.split('#', 1)[1]}")
        if name not in fires:
            errors.append(f"alert {name}: no test case where it fires")
        if name not in quiet:
            errors.append(f"alert {name}: no test case where it must not fire (exp_alerts: [])")

if errors:
    sys.exit("check.sh: " + "\n check.sh: ".join(errors))
print(f"{len(exprs)} dashboard queries collected")
PY

echo "== dashboard PromQL"
if ! promtool check rules "$work/dashboard-queries.yml" >/dev/null; then
	cat -n "$work/dashboard-queries.yml" >&2
	die "a dashboard query does not parse (promtool's message above names the dashboard_query_N; the list shows its panel)"
fi

if [[ -n $scrape ]]; then
	echo "== metric names against $scrape"
	names=$(referenced_names)
	python3 - "$scrape" "$names" <<'PY'
import re, sys
scrape_path, wanted = sys.argv[1], sys.argv[2].split()
samples, families = set(), set()
with open(scrape_path, encoding="utf-8") as f:
    for line in f:
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = re.match(r"#\s+(?:TYPE|HELP)\s+(\S+)", line)
            if m:
                families.add(m.group(1))
            continue
        m = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
        if m:
            samples.add(m.group(0))
missing = [n for n in wanted
           if n not in samples and n not in families
           and not any(n + s in samples for s in ("_bucket", "_sum", "_count"))]
if missing:
    sys.exit(f"check.sh: metrics used by the rules or the dashboard but absent from {scrape_path}:\n  "
             + "\n  ".join(missing))
print(f"all {len(wanted)} referenced edgefw metrics present")
PY
fi

echo "OK"
