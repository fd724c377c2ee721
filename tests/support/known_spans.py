#!/usr/bin/env python3
"""Sends spans of known names, kinds, statuses and durations with the
OpenTelemetry Python SDK over OTLP/gRPC, as an instrumented app would.

    python known_spans.py --endpoint http://127.0.0.1:N

Service `shop`, all spans with explicit start and end times:
- 3 SERVER spans `GET /orders` (http.request.method GET) of 3, 30 and
  300 ms, status unset;
- 1 SERVER span `GET /orders` of 3000 ms with status ERROR;
- 2 CLIENT spans `SELECT` of 1 ms, without http.request.method.
Prints DONE once they are exported and the SDK is shut down.
"""
import argparse
import time

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    args = parser.parse_args()

    provider = TracerProvider(
        resource=Resource.create({"service.name": "shop", "service.instance.id": "shop-1"})
    )
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=args.endpoint, insecure=True))
    )
    tracer = provider.get_tracer("known-spans")
    start = time.time_ns() - 10_000_000_000
    ms = 1_000_000

    def span(name, kind, millis, error=False, attributes=None):
        s = tracer.start_span(name, kind=kind, start_time=start, attributes=attributes or {})
        if error:
            s.set_status(Status(StatusCode.ERROR, "failed"))
        s.end(end_time=start + millis * ms)

    for millis in (3, 30, 300):
        span("GET /orders", SpanKind.SERVER, millis, attributes={"http.request.method": "GET"})
    span("GET /orders", SpanKind.SERVER, 3000, error=True, attributes={"http.request.method": "GET"})
    for _ in range(2):
        span("SELECT", SpanKind.CLIENT, 1)
    if not provider.force_flush(timeout_millis=10_000):
        raise SystemExit("export did not finish")
    provider.shutdown()
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
