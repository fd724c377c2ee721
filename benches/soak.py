#!/usr/bin/env python3
"""Soak run: sidewatch under a steady load for a long time, with the backend
down for a while every few minutes. Reports the RSS slope and whether every
accepted span was delivered.

    cargo build --release --bins --examples
    python3 benches/soak.py --minutes 30 --rate 50000 --outage-every 180 --outage 30

Pipeline: OTLP/gRPC in -> OTLP/gRPC out to a counting sink, with a
persistent queue (write-ahead log in a temporary directory) and a memory
limiter. The load generator sends at a fixed rate for the whole run; every
--outage-every seconds the sink is stopped for --outage seconds. At the end
the queue is drained and accepted is compared with delivered. Loopback
only; bounded by --minutes.
"""
import argparse, json, os, signal, socket, subprocess, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")

CONFIG = """
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:24317 }} }} }}
exporters:
  otlp:
    endpoint: http://127.0.0.1:24417
    sending_queue: {{ storage: {storage}, fsync: never, queue_size: 20000 }}
    retry_on_failure: {{ initial_interval: 200ms, max_interval: 2s, max_elapsed_time: 0s }}
service:
  memory_limiter: {{ limit_mib: 512 }}
  telemetry: {{ metrics: {{ address: 127.0.0.1:24888 }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp] }}
"""


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_port(port, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def sink_spans(port=24418):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/counts", timeout=2) as r:
        return json.load(r)["spans"]


def final_sink_spans():
    """Counts of a sink about to be killed: paused first, so nothing is
    delivered (and acknowledged) after the count is read."""
    urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:24418/pause", method="POST"), timeout=2)
    time.sleep(0.5)
    return sink_spans()


def start_sink():
    sink = subprocess.Popen([os.path.join(RELEASE, "examples", "otlp_sink"),
                             "--grpc", "127.0.0.1:24417", "--http", "127.0.0.1:24418"],
                            stderr=subprocess.DEVNULL)
    wait_port(24418)
    return sink


def exporter_figure(name, port=24888):
    """The sum of a metric's series on sidewatch's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith((name + "{", name + " ")))


def queued_items():
    return exporter_figure("sidewatch_exporter_queued_items")


def slope_per_hour(samples):
    if len(samples) < 3:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    cov = sum((t - mt) * (v - mv) for t, v in samples)
    var = sum((t - mt) ** 2 for t, _ in samples)
    return cov / var * 3600 if var else 0.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--rate", type=int, default=50000)
    p.add_argument("--outage-every", type=float, default=180)
    p.add_argument("--outage", type=float, default=30)
    a = p.parse_args()
    storage = tempfile.mkdtemp(prefix="sidewatch-soak-")
    config = os.path.join(storage, "soak.yaml")
    open(config, "w").write(CONFIG.format(storage=os.path.join(storage, "queue")))
    sink = start_sink()
    delivered = 0
    collector = subprocess.Popen([os.path.join(RELEASE, "sidewatch"), "run", "--config", config],
                                 stderr=subprocess.DEVNULL)
    wait_port(24317)
    seconds = int(a.minutes * 60)
    load = subprocess.Popen([os.path.join(RELEASE, "examples", "loadgen"),
                             "--endpoint", "http://127.0.0.1:24317", "--rate", str(a.rate),
                             "--duration", f"{seconds}s", "--batch-size", "500"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    started = time.time()
    samples, outages, next_outage = [], 0, started + a.outage_every
    while load.poll() is None:
        now = time.time()
        samples.append((now - started, rss_mib(collector.pid)))
        if sink and now >= next_outage:
            delivered += final_sink_spans()
            sink.send_signal(signal.SIGKILL)
            sink.wait()
            sink, outages, back_at = None, outages + 1, now + a.outage
        if sink is None and now >= back_at:
            sink = start_sink()
            next_outage = now + a.outage_every
        time.sleep(5)
    result = json.loads(load.stdout.read())
    if sink is None:
        sink = start_sink()
    deadline = time.time() + 300
    while time.time() < deadline and queued_items() > 0:
        time.sleep(1)
    time.sleep(2)
    delivered += sink_spans()
    accepted = result["accepted_items"]
    steady = [s for s in samples if s[0] > 60]
    print(json.dumps({
        "minutes": a.minutes, "rate": a.rate, "outages": outages,
        "accepted": accepted, "delivered": delivered,
        "lost": max(0, accepted - delivered), "duplicates": max(0, delivered - accepted),
        "refused_items": result["refused_items"],
        "exporter_failed_items": exporter_figure("sidewatch_exporter_failed_items_total"),
        "rss_start_mib": round(steady[0][1], 1) if steady else None,
        "rss_end_mib": round(samples[-1][1], 1) if samples else None,
        "rss_max_mib": round(max(v for _, v in samples), 1) if samples else None,
        "rss_slope_mib_per_hour": round(slope_per_hour(steady), 2),
    }, indent=1))
    collector.send_signal(signal.SIGTERM)
    collector.wait(timeout=30)
    sink.send_signal(signal.SIGKILL)


if __name__ == "__main__":
    main()
