#!/usr/bin/env python3
"""Records latencies into an exponential histogram with the OpenTelemetry
Python SDK and exports them over OTLP/gRPC, as an instrumented app would.

    python exponential_latencies.py --endpoint http://127.0.0.1:N

Two batches of 1000 values, each exported (cumulative) before the next:
0.001..1 s, then 1.001..2 s. The SDK picks the finest scale that holds what
it has seen in 160 buckets, so the wider second batch makes it rescale
(4 -> 3) between the two exports, and the buckets below 1 s have negative
indices. Prints DONE once both are exported and the SDK is shut down.
"""
import argparse

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    args = parser.parse_args()

    exporter = OTLPMetricExporter(
        endpoint=args.endpoint,
        insecure=True,
        preferred_temporality={Histogram: AggregationTemporality.CUMULATIVE},
    )
    # A long interval: exports happen only when this script flushes.
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": "checkout"}),
        views=[
            View(
                instrument_name="http.server.request.duration",
                aggregation=ExponentialBucketHistogramAggregation(),
            )
        ],
    )
    latency = provider.get_meter("exponential-latencies").create_histogram(
        "http.server.request.duration", unit="s"
    )
    route = {"http.route": "/checkout"}
    for batch in range(2):
        for i in range(1, 1001):
            # Scrambled order, so nothing depends on arrival order.
            n = batch * 1000 + (i * 7919) % 1000 + 1
            latency.record(n / 1000.0, route)
        if not provider.force_flush(timeout_millis=10_000):
            raise SystemExit("export did not finish")
    provider.shutdown()
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
