"""`GET /metrics`: the Prometheus scrape (emulator/server/metrics.py counts; docs/metrics.md).

With `--metrics guarded` (the default) it is guarded as the control API is: open on loopback, the control token
required when one is set (`Authorization: Bearer TOKEN`, which a Prometheus scrape config sends as
`authorization: {credentials: TOKEN}`), refused beyond loopback without one; and, like the control API, it
refuses what a web page could make a browser send. `--metrics open` serves it to whoever reaches the port (a
scraper inside a cluster network); `--metrics off` does not serve it and counts nothing.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.control.endpoint import ControlError, check_access, check_browser, runtime_of
from emulator.server.metrics import CONTENT_TYPE, METRICS_PATH

WHAT = "GET /metrics"


async def metrics(request: Request) -> Response:
    runtime = runtime_of(request)
    if runtime.metrics is None:  # not routed when off; an app whose runtime was swapped
        return ControlError(404, "Metrics are off (--metrics off).", code="not_found").response()
    if runtime.settings.metrics == "guarded":
        try:
            check_access(request, WHAT, instead=", or start it with --metrics open")
            check_browser(request, WHAT)
        except ControlError as error:
            return error.response()
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)


def routes() -> list[Route]:
    return [Route(METRICS_PATH, metrics, methods=["GET"])]
