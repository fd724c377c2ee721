#!/usr/bin/env python3
"""CPU and memory cost of an idle sidewatch: the embedded default pipeline,
and hostmetrics alone at 10 s and 1 s collection intervals.

    cargo build --release && python3 benches/idle_cost.py --seconds 60

For each setup: CPU used over the run as a share of one core, RSS at the
end and its peak, start-to-ready time. Loopback only; bounded by --seconds.
"""
import argparse, os, socket, subprocess, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "sidewatch")
TICKS = os.sysconf("SC_CLK_TCK")

HOSTMETRICS = """
receivers:
  hostmetrics: {{ collection_interval: {interval} }}
exporters:
  prometheus: {{ endpoint: 127.0.0.1:19464 }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:18888 }} }}
  pipelines:
    metrics: {{ receivers: [hostmetrics], exporters: [prometheus] }}
"""


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status_mib(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_port(port, limit=10.0):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
            return time.monotonic() - start
        except OSError:
            time.sleep(0.001)
    raise RuntimeError(f"nothing on port {port}")


def measure(name, args, port, seconds):
    started = time.monotonic()
    child = subprocess.Popen([BINARY] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        ready_ms = (time.monotonic() - started) * 1000
        time.sleep(2)
        cpu0, t0 = cpu_seconds(child.pid), time.monotonic()
        time.sleep(seconds)
        cpu = cpu_seconds(child.pid) - cpu0
        elapsed = time.monotonic() - t0
        print(f"{name:<28} cpu {100 * cpu / elapsed:6.3f} % of a core   rss {status_mib(child.pid, 'VmRSS'):5.1f} MiB   "
              f"peak {status_mib(child.pid, 'VmHWM'):5.1f} MiB   ready {ready_ms:5.1f} ms", flush=True)
    finally:
        child.terminate()
        child.wait(timeout=15)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    measure("default pipeline (idle)", ["run"], 4317, args.seconds)
    with tempfile.TemporaryDirectory() as d:
        for interval in ("10s", "1s"):
            path = os.path.join(d, f"host-{interval}.yaml")
            open(path, "w").write(HOSTMETRICS.format(interval=interval))
            measure(f"hostmetrics every {interval}", ["run", "--config", path], 19464, args.seconds)


if __name__ == "__main__":
    main()
