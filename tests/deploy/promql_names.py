"""The metric names a PromQL expression reads, and the names a ``/metrics`` exposition offers.

A small tokenizer, not a parser (``promtool`` checks the syntax): strings, label matchers,
ranges and the label lists of ``by``/``without``/``on``/``ignoring``/``group_*`` are removed,
then every identifier that is not a keyword, a function or aggregation (followed by ``(``) or
a number is a metric name. Grafana's variables are replaced by values PromQL accepts.
"""

from __future__ import annotations

import re

GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
}
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
    | {"bool", "offset", "inf", "nan", "atan2"}
)
# series Prometheus makes itself, not a target
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_TOKEN = re.compile(
    r"(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?[smhdwy]*|0x[0-9a-fA-F]+)"
    r"|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)(?P<call>\s*\()?"
)
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<expr>.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$")


def substitute(expr: str) -> str:
    """``expr`` with Grafana's interval variables replaced (template variables sit in label
    values, which are strings)."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def template_expr(query: str) -> str:
    """The PromQL inside a Grafana variable query (``label_values(expr, label)``)."""
    m = _LABEL_VALUES.match(query)
    return m.group("expr") if m else query


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects."""
    text = _STRING.sub('""', substitute(expr))
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    names: set[str] = set()
    for m in _TOKEN.finditer(text):
        ident = m.group("ident")
        if ident is None or m.group("call") or ident.lower() in KEYWORDS:
            continue
        names.add(ident)
    return names


def exposed_names(exposition: str) -> set[str]:
    """Every series name a ``/metrics`` answer offers: its samples' names, and for each
    ``# TYPE`` line (present even for a labelled metric with no series yet) the names its
    type produces (a histogram's ``_bucket``, ``_sum``, ``_count``)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind.strip() in ("histogram", "gaugehistogram"):
                names.update(f"{name}_{s}" for s in ("bucket", "sum", "count", "created"))
            elif kind.strip() == "summary":
                names.update(f"{name}_{s}" for s in ("sum", "count", "created"))
            elif kind.strip() == "counter" and not name.endswith("_total"):
                names.add(f"{name}_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names
