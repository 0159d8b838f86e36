"""Bounded Prometheus label values for HTTP requests, shared by the edge and the cloud request metrics.

A label value taken from the request itself is a cardinality bomb: any client can invent HTTP methods
(`FOO1`, `FOO2`, ...) and each would become a new time series that `/metrics` carries forever. Only values
from fixed sets are used: route templates (the apps' own), the standard methods and the standard status codes;
anything else is folded into `other`.
"""

from __future__ import annotations

from http import HTTPStatus

OTHER = "other"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
KNOWN_STATUSES = frozenset(s.value for s in HTTPStatus)


def method_label(method: object) -> str:
    """The method if it is a standard one, else `other` (methods are case-sensitive: `get` is not `GET`)."""
    return method if isinstance(method, str) and method in KNOWN_METHODS else OTHER


def status_label(status: object) -> str:
    """The status code if it is a registered one (about 60 values), else `other`."""
    return str(status) if isinstance(status, int) and status in KNOWN_STATUSES else OTHER
