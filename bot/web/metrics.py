"""GET /metrics (Prometheus text format), and for every HTTP request: a request ID in the logs
(``X-Request-Id`` in, or a fresh one; echoed in the response) and a count by route and status."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST

from bot.observability.logs import bind_request_id, request_id_from, request_id_var
from bot.web.alerts import authorized, refusal
from bot.web.app import ROUTE_INSTALLERS

if TYPE_CHECKING:
    from bot.runtime import Runtime

def install(runtime: Runtime, web: Flask) -> None:
    metrics = runtime.metrics

    @web.before_request
    def start_request() -> None:
        g.request_started = time.perf_counter()
        g.request_id = request_id_from(request.headers.get("X-Request-Id"))
        g.request_id_token = bind_request_id(g.request_id)

    @web.after_request
    def finish_request(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers["X-Request-Id"] = request_id
        if "request_started" in g:
            route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
            metrics.http_response(
                route=route,
                method=request.method,
                status=response.status_code,
                seconds=time.perf_counter() - g.request_started,
            )
        return response

    @web.teardown_request
    def forget_request(_error: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            try:
                request_id_var.reset(token)
            except ValueError:  # set in another context: just clear it
                request_id_var.set(None)

    @web.get("/metrics", endpoint="prometheus_metrics")
    def prometheus_metrics() -> Response | tuple[Response, int]:
        token = runtime.settings.metrics_token
        if token and not authorized(token, request.headers.get("Authorization")):
            return refusal(401, "missing or wrong bearer token (Authorization: Bearer <METRICS_TOKEN>)", "metrics")
        return Response(
            metrics.exposition(), status=200, headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


ROUTE_INSTALLERS.append(install)
