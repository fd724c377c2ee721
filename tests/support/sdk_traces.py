#!/usr/bin/env python3
"""Sends traces with the OpenTelemetry Python SDK over OTLP/gRPC, as an
instrumented app would, to one or more collectors (each endpoint gets its
own exporter, so every collector sees the same traces).

    python sdk_traces.py --endpoint http://127.0.0.1:N [--endpoint ...]
        --traces 2000 [--errors 5] [--slow 5] [--spans 2]

Each trace is a root span `GET /checkout` with `--spans - 1` children.
The first `--errors` traces have a child with status ERROR; the next
`--slow` traces last 2 s (explicit start and end times: nothing sleeps);
every other trace lasts 10 ms. Prints `TRACE <32 hex> <ok|error|slow>`
per trace, then DONE once every exporter has flushed and shut down.
"""
import argparse

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode, set_span_in_context

MS = 1_000_000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", action="append", required=True)
    parser.add_argument("--traces", type=int, required=True)
    parser.add_argument("--errors", type=int, default=0)
    parser.add_argument("--slow", type=int, default=0)
    parser.add_argument("--spans", type=int, default=2)
    args = parser.parse_args()

    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    for endpoint in args.endpoint:
        provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=endpoint, insecure=True),
                max_queue_size=args.traces * args.spans + 16,
                max_export_batch_size=512,
                schedule_delay_millis=100,
            )
        )
    tracer = provider.get_tracer("sdk-traces")
    start = 1_700_000_000_000 * MS
    for i in range(args.traces):
        kind = "error" if i < args.errors else "slow" if i < args.errors + args.slow else "ok"
        duration = 2_000 * MS if kind == "slow" else 10 * MS
        begin = start + i * MS
        root = tracer.start_span(
            "GET /checkout", start_time=begin, attributes={"http.route": "/checkout", "index": i}
        )
        context = set_span_in_context(root)
        for child in range(args.spans - 1):
            span = tracer.start_span(
                f"db-{child}", context=context, start_time=begin + MS, attributes={"index": i}
            )
            if kind == "error" and child == 0:
                span.set_status(Status(StatusCode.ERROR, "boom"))
            span.end(end_time=begin + 2 * MS)
        root.end(end_time=begin + duration)
        print(f"TRACE {root.get_span_context().trace_id:032x} {kind}")
    provider.force_flush()
    provider.shutdown()
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
