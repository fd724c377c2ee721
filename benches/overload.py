#!/usr/bin/env python3
"""Overload run: a slow backend, four times more load than it can take, and
a memory limit, for a few minutes. Reports the peak RSS against the limit,
how much was refused (retryably) and whether every accepted span was
delivered.

    cargo build --release --bins --examples
    python3 benches/overload.py --minutes 3 --limit-mib 256

Pipeline: OTLP/gRPC in -> OTLP/gRPC out to a counting sink that answers
each export after --delay-ms; an in-memory queue too large to be the
bound (so the memory limiter is what holds), num_consumers workers. The
backend takes num_consumers * batch / delay spans per second; the load
generator sends --overload times that. Loopback only; bounded by
--minutes plus a drain of at most 5 minutes.
"""
import argparse, json, os, signal, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak import RELEASE, exporter_figure, rss_mib, sink_spans, wait_port  # noqa: E402

CONFIG = """
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:34317 }} }} }}
exporters:
  otlp:
    endpoint: http://127.0.0.1:34417
    sending_queue: {{ queue_size: 1000000, num_consumers: {consumers} }}
    retry_on_failure: {{ initial_interval: 200ms, max_interval: 2s, max_elapsed_time: 0s }}
service:
  memory_limiter: {{ limit_mib: {limit} }}
  telemetry: {{ metrics: {{ address: 127.0.0.1:34888 }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp] }}
"""


def metric(name):
    return exporter_figure(name, port=34888)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=3)
    p.add_argument("--limit-mib", type=int, default=256)
    p.add_argument("--delay-ms", type=int, default=20)
    p.add_argument("--consumers", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--overload", type=float, default=4.0)
    a = p.parse_args()
    capacity = a.consumers * a.batch_size * 1000 / a.delay_ms
    rate = int(capacity * a.overload)
    workdir = tempfile.mkdtemp(prefix="sidewatch-overload-")
    config = os.path.join(workdir, "overload.yaml")
    open(config, "w").write(CONFIG.format(consumers=a.consumers, limit=a.limit_mib))
    sink = subprocess.Popen([os.path.join(RELEASE, "examples", "otlp_sink"), "--grpc", "127.0.0.1:34417",
                             "--http", "127.0.0.1:34418", "--delay-ms", str(a.delay_ms)], stderr=subprocess.DEVNULL)
    wait_port(34418)
    collector = subprocess.Popen([os.path.join(RELEASE, "sidewatch"), "run", "--config", config],
                                 stderr=subprocess.DEVNULL)
    wait_port(34317)
    seconds = int(a.minutes * 60)
    load = subprocess.Popen([os.path.join(RELEASE, "examples", "loadgen"), "--endpoint", "http://127.0.0.1:34317",
                             "--rate", str(rate), "--duration", f"{seconds}s", "--batch-size", str(a.batch_size),
                             "--connections", "4", "--concurrency", "8"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0.0
    while load.poll() is None:
        peak = max(peak, rss_mib(collector.pid))
        time.sleep(0.05)
    result = json.loads(load.stdout.read().strip().splitlines()[-1])
    deadline = time.time() + 300
    while time.time() < deadline and metric("sidewatch_exporter_queued_items") > 0:
        peak = max(peak, rss_mib(collector.pid))
        time.sleep(0.5)
    time.sleep(1)
    delivered = sink_spans(port=34418)
    accepted = result["accepted_items"]
    print(json.dumps({
        "minutes": a.minutes, "limit_mib": a.limit_mib, "backend_spans_per_second": int(capacity),
        "offered_spans_per_second": rate,
        "accepted": accepted, "delivered": delivered, "lost": max(0, accepted - delivered),
        "refused_items": result["refused_items"], "errors": result["errors"],
        "refused_by_memory_limiter_requests": metric("sidewatch_memory_limiter_refused_requests_total"),
        "peak_rss_mib": round(peak, 1),
        "peak_hwm_mib": round(int(open(f"/proc/{collector.pid}/status").read().split("VmHWM:")[1].split()[0]) / 1024, 1),
    }, indent=1))
    collector.send_signal(signal.SIGTERM)
    collector.wait(timeout=30)
    sink.send_signal(signal.SIGKILL)


if __name__ == "__main__":
    main()
