#!/usr/bin/env python3
"""Side-by-side benchmark of sidewatch and rotel on this machine.

Each collector runs the same pipeline: OTLP/gRPC in on 127.0.0.1:4317 ->
batch (8192 items, 200 ms) -> OTLP/gRPC out to a counting sink on
127.0.0.1:14317. The collector is pinned to CPU 0 with taskset; the load
generator and the sink share CPU 1. The collectors alternate, one run each
per round, for --rounds rounds, once as fast as each accepts and once at the
same fixed rate (--fixed-rate, below both maxima: the same load). Printed
per figure: the median, the spread (lowest-highest) and the
sidewatch / rotel ratio of the medians; refused items (RESOURCE_EXHAUSTED
or UNAVAILABLE answers) are printed for every run and in total.

    python3 benches/compare_rotel.py --rounds 5 --duration 8
    python3 benches/compare_rotel.py --compression gzip      # what users run
    python3 benches/compare_rotel.py --compression zstd      # rotel: gzip (it has no zstd)
    python3 benches/compare_rotel.py --input-compression gzip
    python3 benches/compare_rotel.py --signal logs
    python3 benches/compare_rotel.py --pipeline compute      # sidewatch only
    python3 benches/compare_rotel.py --connections 1 --concurrency 16

CPU cost: the collector's instructions from `perf stat -e instructions`
when the machine has the hardware counter (noise from other processes does
not move it); otherwise, as in VMs without a PMU, user + system CPU seconds
from /proc/PID/stat over the load window. The script says which it used.
"Per CPU-second" figures divide accepted items by that CPU time.

--pipeline compute runs OTLP in -> red connector (RED + 1m/5m percentiles)
-> Prometheus exporter and OTLP out, with an anomaly connector and one alert
rule on the RED metrics (rotel has no such pipeline, so sidewatch only).
Refusals: sidewatch's exporter queue here holds 8 batches and, full (the
sink, sharing CPU 1 with the load generator, is slower than the load),
refuses with RESOURCE_EXHAUSTED and RetryInfo; rotel holds the request
until there is room. --block-on-overflow makes sidewatch hold it too
(`block_on_overflow: true`). --persistent-queue gives sidewatch's exporter a persistent queue
(`sending_queue.storage` in a fresh directory under target/, fsync
`always`); --only sidewatch skips rotel; --sidewatch-binary runs another
build (an older one, for before/after figures).

Needs: cargo, taskset, python3 -m venv (rotel is installed from PyPI into
target/bench-venv). Loopback only; every run is bounded by --duration.
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "target", "release")
VENV = os.path.join(ROOT, "target", "bench-venv")
TICKS = os.sysconf("SC_CLK_TCK")

SIDEWATCH_CONFIG = """
receivers:
  otlp: { protocols: { grpc: { endpoint: 127.0.0.1:4317, max_recv_msg_size_mib: 16 } } }
processors:
  batch: { send_batch_size: 8192, send_batch_max_size: 8192, timeout: 200ms }
exporters:
  otlp:
    endpoint: http://127.0.0.1:14317
    compression: COMPRESSION
    sending_queue: { queue_size: 8, num_consumers: 4 }
    retry_on_failure: { initial_interval: 100ms, max_interval: 1s }
service:
  telemetry: { metrics: { level: none } }
  pipelines:
    SIGNAL: { receivers: [otlp], processors: [batch], exporters: [otlp] }
"""

# Spans -> RED metrics (1m and 5m windows, four percentiles) -> Prometheus
# and OTLP out; anomaly scoring and one alert rule read the RED metrics and
# their events leave as OTLP log records.
SIDEWATCH_COMPUTE_CONFIG = """
receivers:
  otlp: { protocols: { grpc: { endpoint: 127.0.0.1:4317, max_recv_msg_size_mib: 16 } } }
connectors:
  red:
    dimensions: [service.name, http.route, http.response.status_code]
    windows: [1m, 5m]
    percentiles: [0.5, 0.9, 0.95, 0.99]
    emit_interval: 10s
  anomaly: { metrics: [red.request.rate], method: ewma, threshold: 0.4 }
  alert:
    evaluation_interval: 15s
    rules:
      - { name: HighRequestRate, metric: red.request.rate, op: ">", warning: 1.0e12, for: 1m }
processors:
  batch: { send_batch_size: 8192, send_batch_max_size: 8192, timeout: 200ms }
exporters:
  prometheus: { endpoint: 127.0.0.1:19464 }
  otlp:
    endpoint: http://127.0.0.1:14317
    compression: COMPRESSION
    sending_queue: { queue_size: 8, num_consumers: 4 }
service:
  telemetry: { metrics: { level: none } }
  pipelines:
    traces: { receivers: [otlp], exporters: [red] }
    metrics: { receivers: [red], processors: [batch], exporters: [prometheus, otlp, anomaly, alert] }
    logs/events: { receivers: [anomaly, alert], exporters: [otlp] }
"""

# What the sink's /counts calls each signal's items.
SINK_KEY = {"traces": "spans", "logs": "log_records"}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def rotel_binary():
    if not os.path.exists(os.path.join(VENV, "bin", "python")):
        run([sys.executable, "-m", "venv", VENV])
    python = os.path.join(VENV, "bin", "python")
    found = subprocess.run([python, "-c", "import rotel, os; print(os.path.dirname(rotel.__file__))"], capture_output=True, text=True)
    if found.returncode != 0:
        run([os.path.join(VENV, "bin", "pip"), "install", "-q", "rotel"])
        found = subprocess.run([python, "-c", "import rotel, os; print(os.path.dirname(rotel.__file__))"], capture_output=True, text=True, check=True)
    return os.path.join(found.stdout.strip(), "rotel-agent")


def collector_command(name, rotel, args):
    if name == "sidewatch":
        path = os.path.join(ROOT, "target", "bench-sidewatch.yaml")
        config = SIDEWATCH_COMPUTE_CONFIG if args.pipeline == "compute" else SIDEWATCH_CONFIG
        config = config.replace("COMPRESSION", args.compression).replace("SIGNAL", args.signal)
        if args.block_on_overflow:
            config = config.replace("sending_queue: { queue_size: 8,", "sending_queue: { queue_size: 8, block_on_overflow: true,")
        if args.persistent_queue:
            storage = os.path.join(ROOT, "target", "bench-queue")
            subprocess.run(["rm", "-rf", storage], check=True)
            config = config.replace("sending_queue: { queue_size: 8,",
                                    f"sending_queue: {{ storage: {storage}, queue_size: 1000,")
        with open(path, "w") as f:
            f.write(config)
        binary = args.sidewatch_binary or os.path.join(TARGET, "sidewatch")
        return [binary, "run", "--config", path]
    receivers_off = [f"--otlp-receiver-{s}-disabled" for s in ("traces", "metrics", "logs") if s != args.signal]
    return [rotel, "start", "--otlp-grpc-endpoint", "127.0.0.1:4317", "--otlp-http-endpoint", "127.0.0.1:4319",
            *receivers_off,
            "--batch-max-size", "8192", "--batch-timeout", "200ms", "--exporter", "otlp",
            "--otlp-exporter-endpoint", "http://127.0.0.1:14317", "--otlp-exporter-protocol", "grpc",
            # rotel offers gzip and none; with zstd it runs gzip, the nearest it has.
            "--otlp-exporter-compression", "none" if args.compression == "none" else "gzip",
            "--pid-file", os.path.join(ROOT, "target", "rotel.pid")]


def wait_port(port, limit=10.0):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
            return time.monotonic() - start
        except OSError:
            time.sleep(0.001)
    raise RuntimeError(f"nothing listening on {port} after {limit}s")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def sink_items(key):
    with urllib.request.urlopen("http://127.0.0.1:14318/counts", timeout=2) as r:
        return json.load(r)[key]


def perf_counts_instructions():
    """Whether `perf stat -e instructions` counts here (VMs often lack a PMU)."""
    try:
        out = subprocess.run(["perf", "stat", "-x,", "-e", "instructions", "true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    first = (out.stderr.strip().splitlines() or [""])[-1].split(",")[0]
    return out.returncode == 0 and first.isdigit()


def start_perf(pid):
    return subprocess.Popen(["perf", "stat", "-x,", "-e", "instructions", "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_perf(perf):
    perf.send_signal(signal.SIGINT)
    _, err = perf.communicate(timeout=10)
    for line in err.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2].startswith("instructions") and fields[0].isdigit():
            return int(fields[0])
    return 0


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def one_run(name, rotel, args, rate=0):
    sink = subprocess.Popen(["taskset", "-c", "1", os.path.join(TARGET, "examples", "otlp_sink")], stderr=subprocess.DEVNULL)
    wait_port(14318)
    started = time.monotonic()
    collector = subprocess.Popen(["taskset", "-c", "0"] + collector_command(name, rotel, args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The compute pipeline sends metrics on, not the spans it was given.
    key = SINK_KEY[args.signal] if args.pipeline == "forward" else None
    loadgen = [os.path.join(TARGET, "examples", "loadgen"), "--endpoint", "http://127.0.0.1:4317",
               "--signal", args.signal, "--batch-size", str(args.batch_size),
               "--connections", str(args.connections), "--concurrency", str(args.concurrency),
               "--duration", f"{args.duration}s", "--rate", str(rate)]
    if args.input_compression == "gzip":
        loadgen.append("--gzip")
    try:
        wait_port(4317)
        ready_ms = (time.monotonic() - started) * 1000
        time.sleep(1.0)
        idle_rss = status_kib(collector.pid, "VmRSS")
        load_before = os.getloadavg()[0]
        perf = start_perf(collector.pid) if args.perf else None
        cpu_before = cpu_seconds(collector.pid)
        out = subprocess.run(["taskset", "-c", "1"] + loadgen, capture_output=True, text=True, check=True)
        load = json.loads(out.stdout.strip().splitlines()[-1])
        # Wait for the pipeline to deliver what it accepted (bounded).
        deadline = time.monotonic() + 15
        delivered = sink_items(key) if key else 0
        while key and delivered < load["accepted_items"] and time.monotonic() < deadline:
            time.sleep(0.1)
            delivered = sink_items(key)
        cpu = cpu_seconds(collector.pid) - cpu_before
        instructions = stop_perf(perf) if perf else 0
        peak_rss = status_kib(collector.pid, "VmHWM")
    finally:
        stop(collector)
        stop(sink)
    accepted = load["accepted_items"]
    return {
        "items_per_second": load["accepted_items_per_second"],
        "items_per_cpu_second": accepted / cpu if cpu > 0 else 0.0,
        "cpu_share_percent": 100 * cpu / load["seconds"],
        "instructions_per_item": instructions / accepted if instructions and accepted else 0.0,
        "latency_p50_ms": load["latency_p50_micros"] / 1000,
        "latency_p99_ms": load["latency_p99_micros"] / 1000,
        "peak_rss_mib": peak_rss / 1024,
        "idle_rss_mib": idle_rss / 1024,
        "ready_ms": ready_ms,
        "accepted": accepted,
        "delivered": delivered if key else accepted,
        "refused": load["refused_items"],
        "errors": load["errors"],
        "load_average": load_before,
    }


def spread(values):
    return f"{min(values):,.1f}-{max(values):,.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=8, help="seconds of load per run")
    parser.add_argument("--batch-size", type=int, default=512, help="items per client request")
    parser.add_argument("--connections", type=int, default=2, help="client connections")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight per connection")
    parser.add_argument("--fixed-rate", type=int, default=100000,
                        help="items/s of the same-load runs (below both collectors' maximum); 0 skips them")
    parser.add_argument("--no-max", action="store_true", help="skip the as-fast-as-accepted runs")
    parser.add_argument("--compression", choices=["none", "gzip", "zstd"], default="none",
                        help="the exporters' compression (rotel: gzip for zstd, it has no zstd)")
    parser.add_argument("--input-compression", choices=["none", "gzip"], default="none",
                        help="the load generator's request compression")
    parser.add_argument("--signal", choices=["traces", "logs"], default="traces")
    parser.add_argument("--pipeline", choices=["forward", "compute"], default="forward")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--persistent-queue", action="store_true",
                        help="give sidewatch's exporter sending_queue.storage (fsync always)")
    parser.add_argument("--block-on-overflow", action="store_true",
                        help="sidewatch holds a request while its queue is full, as rotel does, instead of refusing it")
    parser.add_argument("--only", choices=["sidewatch", "rotel"], help="run one collector")
    parser.add_argument("--sidewatch-binary", help="the sidewatch to run (default target/release/sidewatch)")
    parser.add_argument("--build-dir", help="where loadgen, otlp_sink and sidewatch are (default target/release)")
    args = parser.parse_args()
    if args.build_dir:
        global TARGET
        TARGET = os.path.abspath(args.build_dir)
    if not args.skip_build:
        run(["cargo", "build", "--release", "--bin", "sidewatch", "--example", "loadgen", "--example", "otlp_sink"], cwd=ROOT)
    names = [args.only] if args.only else ["sidewatch", "rotel"]
    if args.pipeline == "compute":
        names = ["sidewatch"]
    rotel = rotel_binary() if "rotel" in names else None
    args.perf = perf_counts_instructions()
    print("CPU cost: " + ("instructions from perf stat, and CPU seconds from /proc" if args.perf else
                          "user + system CPU seconds from /proc/PID/stat (perf has no instructions counter here)"))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the first run")
    # Two loads: as fast as each collector accepts (its maximum), and the
    # same fixed rate for both (what each costs for the same work).
    loads = ([] if args.no_max else [("max", 0)]) + ([("fixed", args.fixed_rate)] if args.fixed_rate else [])
    results = {(load, name): [] for load, _ in loads for name in names}
    for round_number in range(args.rounds):
        for load, rate in loads:
            # Alternate which collector goes first, so a drift in the
            # machine's load does not always favour the same one.
            for name in (names if round_number % 2 == 0 else names[::-1]):
                result = one_run(name, rotel, args, rate)
                results[(load, name)].append(result)
                print(f"round {round_number + 1} {load} {name}: " + json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}), flush=True)
    keys = ["items_per_second", "items_per_cpu_second", "cpu_share_percent", "latency_p50_ms", "latency_p99_ms",
            "peak_rss_mib", "idle_rss_mib", "ready_ms", "refused", "load_average"]
    if args.perf:
        keys.insert(2, "instructions_per_item")
    item = "spans" if args.signal == "traces" else "log records"
    print(f"\n{args.pipeline} {args.signal} ({item}), export compression {args.compression}, "
          f"input compression {args.input_compression}, {args.connections} connection(s) x {args.concurrency} in flight, "
          f"{args.batch_size} per request")
    for load, rate in loads:
        title = "as fast as accepted" if rate == 0 else f"fixed rate {rate} {item}/s"
        print(f"\n{title}, median (lowest-highest) of {args.rounds}")
        header = f"{'':<22}" + "".join(f"{n:>34}" for n in names) + (f"{'sidewatch/rotel':>18}" if len(names) == 2 else "")
        print(header)
        for key in keys:
            medians = [statistics.median(r[key] for r in results[(load, n)]) for n in names]
            cells = "".join(f"{f'{m:,.1f} ({spread([r[key] for r in results[(load, n)]])})':>34}" for m, n in zip(medians, names))
            ratio = f"{(medians[0] / medians[1] if medians[1] else float('nan')):>18.2f}" if len(names) == 2 else ""
            print(f"{key:<22}{cells}{ratio}")
    for (load, name), runs in results.items():
        lost = sum(x["accepted"] - x["delivered"] for x in runs)
        refused = sum(x["refused"] for x in runs)
        errors = sum(x["errors"] for x in runs)
        print(f"{load} {name}: accepted - delivered over all runs = {lost}, refused = {refused}, errors = {errors}")

if __name__ == "__main__":
    main()
