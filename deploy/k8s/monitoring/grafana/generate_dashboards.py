"""Writes the Grafana dashboards of Cadenza (dashboards/*.json beside this file).

Run it after editing a panel: ``python deploy/k8s/monitoring/grafana/generate_dashboards.py``.
tests/deploy/test_monitoring.py checks that the committed JSON is what this script writes,
that every query parses, and that every metric a query names is exposed by a running server.
The datasource is the provisioned Prometheus of uid ``prometheus``.
"""

import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}
S = '{job=~"$job", instance=~"$instance"}'


RI = "$__rate_interval"
S5XX = '{job=~"$job", instance=~"$instance", status=~"5.."}'
S4XX = '{job=~"$job", instance=~"$instance", status=~"4.."}'


def variables():
    return {
        "list": [
            {
                "name": "job",
                "label": "job",
                "type": "query",
                "datasource": DS,
                "query": {"query": 'label_values(up{job=~"cadenza-.*"}, job)', "refId": "job"},
                "definition": 'label_values(up{job=~"cadenza-.*"}, job)',
                "refresh": 2,
                "multi": True,
                "includeAll": True,
                "allValue": "cadenza-.*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "sort": 1,
            },
            {
                "name": "instance",
                "label": "instance",
                "type": "query",
                "datasource": DS,
                "query": {"query": 'label_values(up{job=~"$job"}, instance)', "refId": "instance"},
                "definition": 'label_values(up{job=~"$job"}, instance)',
                "refresh": 2,
                "multi": True,
                "includeAll": True,
                "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "sort": 1,
            },
        ]
    }


BOARDS = {}


class Board:
    def __init__(self, uid, title, desc):
        self.uid, self.title, self.desc = uid, title, desc
        self.panels, self.y, self.x, self.rowh, self.id = [], 0, 0, 0, 0

    def row(self, title):
        self.newline()
        self.id += 1
        self.panels.append(
            {
                "id": self.id,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def newline(self):
        if self.x:
            self.y += self.rowh
        self.x, self.rowh = 0, 0

    def panel(self, kind, title, desc, targets, w=12, h=8, unit=None, **extra):
        if self.x + w > 24:
            self.newline()
        self.id += 1
        fc = {"defaults": {}, "overrides": []}
        if unit:
            fc["defaults"]["unit"] = unit
        fc["defaults"].update(extra.pop("defaults", {}))
        p = {
            "id": self.id,
            "type": kind,
            "title": title,
            "description": desc,
            "datasource": DS,
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "fieldConfig": fc,
            "targets": [
                {
                    "datasource": DS,
                    "refId": chr(65 + i),
                    "expr": e,
                    "legendFormat": legend,
                    "range": True,
                }
                for i, (e, legend) in enumerate(targets)
            ],
        }
        if kind == "timeseries":
            p["options"] = {
                "legend": {
                    "displayMode": "table",
                    "placement": "bottom",
                    "calcs": ["lastNotNull", "max"],
                },
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        if kind == "stat":
            p["options"] = {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value",
                "graphMode": "area",
                "textMode": "auto",
            }
        p.update(extra)
        self.panels.append(p)
        self.x += w
        self.rowh = max(self.rowh, h)

    def dump(self, name):
        BOARDS[name] = {
            "uid": self.uid,
            "title": self.title,
            "description": self.desc,
            "tags": ["cadenza"],
            "timezone": "utc",
            "schemaVersion": 39,
            "version": 1,
            "editable": True,
            "graphTooltip": 1,
            "refresh": "30s",
            "time": {"from": "now-3h", "to": "now"},
            "timepicker": {},
            "templating": variables(),
            "annotations": {"list": []},
            "links": [
                {
                    "type": "dashboards",
                    "tags": ["cadenza"],
                    "asDropdown": True,
                    "title": "Cadenza dashboards",
                }
            ],
            "panels": self.panels,
        }


STATES = {
    "color": {"mode": "thresholds"},
    "mappings": [
        {
            "type": "value",
            "options": {
                "0": {"text": "closed", "color": "green"},
                "1": {"text": "half-open", "color": "yellow"},
                "2": {"text": "open", "color": "red"},
            },
        }
    ],
    "thresholds": {
        "mode": "absolute",
        "steps": [
            {"color": "green", "value": None},
            {"color": "yellow", "value": 1},
            {"color": "red", "value": 2},
        ],
    },
}
UPDOWN = {
    "color": {"mode": "thresholds"},
    "mappings": [
        {
            "type": "value",
            "options": {
                "0": {"text": "down", "color": "red"},
                "1": {"text": "up", "color": "green"},
            },
        }
    ],
    "thresholds": {
        "mode": "absolute",
        "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}],
    },
}


def build():
    """{file name: dashboard} of every dashboard."""
    BOARDS.clear()
    b = Board(
        "cadenza-overview",
        "Cadenza / Overview",
        "Is Cadenza up, is it doing work, is anything failing? Gauges counted in the store "
        "read the same on every process (max); counters are summed over processes.",
    )
    b.row("Now")
    b.panel(
        "stat",
        "Instances active",
        "Process instances running now (counted in the store).",
        [(f"max(process_instances_active{S})", "instances")],
        w=4,
        h=5,
    )
    b.panel(
        "stat",
        "Queue depth",
        "Tasks scheduled and waiting for a worker (counted in the store).",
        [(f"max(cadenza_task_queue_depth{S})", "queued")],
        w=4,
        h=5,
    )
    b.panel(
        "stat",
        "Agents healthy",
        "Registered agents whose last health check passed.",
        [(f"max(cadenza_agents_healthy{S})", "healthy")],
        w=4,
        h=5,
    )
    b.panel(
        "stat",
        "Tasks finished / s",
        "Task attempts finished per second, all statuses.",
        [(f"sum(rate(task_executions_total{S}[{RI}]))", "tasks/s")],
        w=4,
        h=5,
        unit="ops",
    )
    b.panel(
        "stat",
        "Task failure ratio (10m)",
        "Failed among completed + failed attempts, last 10 minutes (recording rule).",
        [("cadenza:task_failures:ratio_rate10m", "failed")],
        w=4,
        h=5,
        unit="percentunit",
    )
    b.panel(
        "stat",
        "HTTP 5xx ratio",
        "Share of HTTP requests answered 5xx.",
        [
            (
                f"sum(rate(http_requests_total{S5XX}[{RI}])) / sum(rate(http_requests_total{S}[{RI}]))",
                "5xx",
            )
        ],
        w=4,
        h=5,
        unit="percentunit",
    )
    b.row("Processes")
    b.panel(
        "state-timeline",
        "Scrape target up",
        "1 when Prometheus scraped the process (up), per job and instance.",
        [(f"up{S}", "{{job}} {{instance}}")],
        w=12,
        h=8,
        defaults=UPDOWN,
    )
    b.panel(
        "state-timeline",
        "Dependencies reachable",
        "The readiness checks of each process as metrics: database and event bus (1 reachable, 0 not).",
        [
            (
                f"min by (job, instance, dependency) (cadenza_dependency_up{S})",
                "{{instance}} {{dependency}}",
            )
        ],
        w=12,
        h=8,
        defaults=UPDOWN,
    )
    b.row("Work")
    b.panel(
        "timeseries",
        "Task executions by status",
        "Finished task attempts per second by status (completed, failed, retried).",
        [(f"sum by (status) (rate(task_executions_total{S}[{RI}]))", "{{status}}")],
        unit="ops",
    )
    b.panel(
        "timeseries",
        "Instances active and queue depth",
        "Instances running and tasks waiting for a worker.",
        [
            (f"max(process_instances_active{S})", "instances active"),
            (f"max(cadenza_task_queue_depth{S})", "queue depth"),
        ],
    )
    b.panel(
        "timeseries",
        "HTTP requests by status class",
        "Requests per second answered 2xx/3xx/4xx/5xx.",
        [
            (
                f'sum by (class) (label_replace(rate(http_requests_total{S}[{RI}]), "class", "${{1}}xx", "status", "(.).."))',
                "{{class}}",
            )
        ],
        unit="reqps",
    )
    b.panel(
        "timeseries",
        "Engine paused / store errors",
        "1 while a process's engine is paused because the database is unavailable; store errors per second.",
        [
            (f"max by (instance) (cadenza_engine_paused{S})", "paused {{instance}}"),
            (f"sum(rate(cadenza_store_errors_total{S}[{RI}]))", "store errors/s"),
        ],
    )
    b.dump("cadenza-overview.json")

    # ---------------------------------------------------------------- engine & agents
    b = Board(
        "cadenza-engine",
        "Cadenza / Engine & agents",
        "The durable engine (tasks, queue, leases, outbox) and the agents.",
    )
    b.row("Tasks")
    b.panel(
        "timeseries",
        "Task executions by status",
        "Finished task attempts per second by status.",
        [(f"sum by (status) (rate(task_executions_total{S}[{RI}]))", "{{status}}")],
        unit="ops",
    )
    b.panel(
        "timeseries",
        "Task executions by node type",
        "Finished task attempts per second by node type and status.",
        [
            (
                f"sum by (node_type, status) (rate(task_executions_total{S}[{RI}]))",
                "{{node_type}} {{status}}",
            )
        ],
        unit="ops",
    )
    b.panel(
        "timeseries",
        "Task latency (all types)",
        "From the start of an attempt (lease or schedule) to its end: percentiles interpolated from the histogram buckets.",
        [
            (
                f"histogram_quantile(0.5, sum by (le) (rate(cadenza_task_duration_seconds_bucket{S}[{RI}])))",
                "p50",
            ),
            (
                f"histogram_quantile(0.95, sum by (le) (rate(cadenza_task_duration_seconds_bucket{S}[{RI}])))",
                "p95",
            ),
            (
                f"histogram_quantile(0.99, sum by (le) (rate(cadenza_task_duration_seconds_bucket{S}[{RI}])))",
                "p99",
            ),
        ],
        unit="s",
    )
    b.panel(
        "timeseries",
        "Task latency p95 by node type",
        "95th percentile of task duration per node type.",
        [
            (
                f"histogram_quantile(0.95, sum by (le, node_type) (rate(cadenza_task_duration_seconds_bucket{S}[{RI}])))",
                "{{node_type}}",
            )
        ],
        unit="s",
    )
    b.panel(
        "timeseries",
        "Mean task duration by node type",
        "Total task time divided by task count.",
        [
            (
                f"sum by (node_type) (rate(cadenza_task_duration_seconds_sum{S}[{RI}])) / sum by (node_type) (rate(cadenza_task_duration_seconds_count{S}[{RI}]))",
                "{{node_type}}",
            )
        ],
        unit="s",
    )
    b.panel(
        "timeseries",
        "Queue depth and instances active",
        "Tasks waiting for a worker; instances running (both counted in the store).",
        [
            (f"max(cadenza_task_queue_depth{S})", "queue depth"),
            (f"max(process_instances_active{S})", "instances active"),
        ],
    )
    b.row("Leases, store and outbox")
    b.panel(
        "timeseries",
        "Lease expiries",
        "Task leases that expired and were re-queued (lost or stalled workers), per 5 minutes.",
        [(f"sum by (instance) (increase(cadenza_lease_expiries_total{S}[5m]))", "{{instance}}")],
        w=8,
    )
    b.panel(
        "timeseries",
        "Store errors and engine paused",
        "Engine operations that found the database unavailable (per second) and the paused flag.",
        [
            (
                f"sum by (instance) (rate(cadenza_store_errors_total{S}[{RI}]))",
                "errors/s {{instance}}",
            ),
            (f"max by (instance) (cadenza_engine_paused{S})", "paused {{instance}}"),
        ],
        w=8,
    )
    b.panel(
        "timeseries",
        "Outbox backlog and relay rate",
        "Committed events not yet on the bus, and events published per second.",
        [
            (f"max(cadenza_outbox_backlog{S})", "backlog"),
            (f"sum(rate(cadenza_outbox_published_total{S}[{RI}]))", "published/s"),
        ],
        w=8,
    )
    b.row("Agents")
    b.panel(
        "timeseries",
        "Agents healthy",
        "Registered agents whose last health check passed, in all and by capability.",
        [
            (f"max(cadenza_agents_healthy{S})", "all"),
            (f"max by (capability) (cadenza_agents_healthy_by_capability{S})", "{{capability}}"),
        ],
        w=8,
    )
    b.panel(
        "stat",
        "Agent health leader",
        "Processes holding the agent-health lease (should be 1 when the agents service runs).",
        [(f"sum(cadenza_agent_health_leader{S})", "leaders")],
        w=4,
    )
    b.panel(
        "stat",
        "Capabilities with no healthy agent",
        "Capabilities of registered agents of which no agent is healthy (CadenzaNoHealthyAgent).",
        [
            (
                f"count(max by (capability) (cadenza_agents_healthy_by_capability{S}) == 0) or vector(0)",
                "capabilities",
            )
        ],
        w=4,
        defaults={
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
            }
        },
    )
    b.panel(
        "timeseries",
        "Agent response time (model calls)",
        "Latency of model calls per provider (agent label), p50 and p95.",
        [
            (
                f"histogram_quantile(0.5, sum by (le, agent) (rate(agent_response_time_seconds_bucket{S}[{RI}])))",
                "p50 {{agent}}",
            ),
            (
                f"histogram_quantile(0.95, sum by (le, agent) (rate(agent_response_time_seconds_bucket{S}[{RI}])))",
                "p95 {{agent}}",
            ),
        ],
        w=8,
        unit="s",
    )
    b.dump("cadenza-engine.json")

    # ---------------------------------------------------------------- HTTP & AI
    b = Board(
        "cadenza-http-ai",
        "Cadenza / HTTP, models & MCP",
        "The API's HTTP traffic, model tokens and cost, circuit breakers and MCP tool calls.",
    )
    b.row("HTTP")
    b.panel(
        "timeseries",
        "Request rate by job",
        "HTTP requests per second.",
        [(f"sum by (job) (rate(http_requests_total{S}[{RI}]))", "{{job}}")],
        w=8,
        unit="reqps",
    )
    b.panel(
        "timeseries",
        "Error rate (5xx and 4xx share)",
        "Share of requests answered 5xx and 4xx.",
        [
            (
                f"sum(rate(http_requests_total{S5XX}[{RI}])) / sum(rate(http_requests_total{S}[{RI}]))",
                "5xx",
            ),
            (
                f"sum(rate(http_requests_total{S4XX}[{RI}])) / sum(rate(http_requests_total{S}[{RI}]))",
                "4xx",
            ),
        ],
        w=8,
        unit="percentunit",
    )
    b.panel(
        "timeseries",
        "Latency",
        "HTTP request duration (to the last byte; SSE streams count their whole life).",
        [
            (
                f"histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{S}[{RI}])))",
                "p50",
            ),
            (
                f"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{S}[{RI}])))",
                "p95",
            ),
            (
                f"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{S}[{RI}])))",
                "p99",
            ),
        ],
        w=8,
        unit="s",
    )
    b.panel(
        "timeseries",
        "Top routes by rate",
        "The 10 busiest route templates.",
        [
            (
                f"topk(10, sum by (method, route) (rate(http_requests_total{S}[{RI}])))",
                "{{method}} {{route}}",
            )
        ],
        unit="reqps",
    )
    b.panel(
        "timeseries",
        "p95 latency by route",
        "95th percentile per route template (top 10).",
        [
            (
                f"topk(10, histogram_quantile(0.95, sum by (le, method, route) (rate(http_request_duration_seconds_bucket{S}[{RI}]))))",
                "{{method}} {{route}}",
            )
        ],
        unit="s",
    )
    b.row("Models")
    b.panel(
        "timeseries",
        "Model tokens per minute",
        "Prompt and completion tokens per provider and model.",
        [
            (
                f"sum by (provider, model, kind) (rate(cadenza_llm_tokens_total{S}[{RI}])) * 60",
                "{{provider}} {{model}} {{kind}}",
            )
        ],
        w=8,
    )
    b.panel(
        "timeseries",
        "Model cost per hour",
        "Cost from the price table, per provider and model (currency of the price table).",
        [
            (
                f"sum by (provider, model) (rate(cadenza_llm_cost_total{S}[{RI}])) * 3600",
                "{{provider}} {{model}}",
            )
        ],
        w=8,
    )
    b.panel(
        "stat",
        "Model cost in the time range",
        "Total cost over the dashboard's time range.",
        [(f"sum(increase(cadenza_llm_cost_total{S}[$__range]))", "cost")],
        w=4,
    )
    b.panel(
        "stat",
        "Tokens in the time range",
        "Total tokens over the dashboard's time range.",
        [(f"sum(increase(cadenza_llm_tokens_total{S}[$__range]))", "tokens")],
        w=4,
    )
    b.panel(
        "timeseries",
        "Model call latency",
        "Model call latency per provider, p95.",
        [
            (
                f"histogram_quantile(0.95, sum by (le, agent) (rate(agent_response_time_seconds_bucket{S}[{RI}])))",
                "p95 {{agent}}",
            )
        ],
        w=8,
        unit="s",
    )
    b.panel(
        "state-timeline",
        "Model circuit breakers",
        "Circuit state per breaker: closed, half-open, open.",
        [(f"max by (name) (cadenza_breaker_state{S})", "{{name}}")],
        w=8,
        defaults=STATES,
    )
    b.panel(
        "timeseries",
        "Breaker transitions",
        "Circuit state changes (models and MCP servers) per 5 minutes.",
        [
            (
                f"sum by (name, to) (increase(cadenza_breaker_transitions_total{S}[5m]))",
                "{{name}} -> {{to}}",
            ),
            (
                f"sum by (server, to) (increase(cadenza_mcp_breaker_transitions_total{S}[5m]))",
                "mcp {{server}} -> {{to}}",
            ),
        ],
        w=8,
    )
    b.row("MCP tools")
    b.panel(
        "state-timeline",
        "MCP circuit breakers",
        "Circuit state per MCP server: closed, half-open, open.",
        [(f"max by (server) (cadenza_mcp_breaker_state{S})", "{{server}}")],
        w=8,
        defaults=STATES,
    )
    b.panel(
        "timeseries",
        "MCP calls by outcome",
        "Tool calls per second by server, tool and outcome (ok, tool_error, failed, unavailable, circuit_open).",
        [
            (
                f"sum by (server, tool, outcome) (rate(cadenza_mcp_calls_total{S}[{RI}]))",
                "{{server}}/{{tool}} {{outcome}}",
            )
        ],
        w=8,
        unit="ops",
    )
    b.panel(
        "timeseries",
        "MCP errors by reason",
        "Failed call attempts per second (retries included) by server, tool and reason.",
        [
            (
                f"sum by (server, tool, reason) (rate(cadenza_mcp_errors_total{S}[{RI}]))",
                "{{server}}/{{tool}} {{reason}}",
            )
        ],
        w=8,
        unit="ops",
    )
    b.panel(
        "timeseries",
        "MCP call latency p95",
        "Tool call latency (retries and backoff included) per server and tool.",
        [
            (
                f"histogram_quantile(0.95, sum by (le, server, tool) (rate(cadenza_mcp_call_duration_seconds_bucket{S}[{RI}])))",
                "{{server}}/{{tool}}",
            )
        ],
        w=24,
        unit="s",
    )
    b.dump("cadenza-http-ai.json")
    return dict(BOARDS)


def render(board):
    return json.dumps(board, indent=2) + "\n"


if __name__ == "__main__":
    for name, board in build().items():
        (OUT / name).write_text(render(board))
        print(OUT / name, file=sys.stderr)
