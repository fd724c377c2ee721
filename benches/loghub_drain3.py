#!/usr/bin/env python3
"""drain3 (PyPI `drain3`, its default configuration) on the loghub 2k samples,
side by side with examples/loghub.rs: writes the scorer's input, one
<System>.csv of LineId,PatternId per system, and prints lines per second.

  python3 -m venv target/loghub-venv && target/loghub-venv/bin/pip install drain3
  target/loghub-venv/bin/python benches/loghub_drain3.py ../shared/loghub /tmp/drain3-out
  python3 ../shared/loghub/score.py ../shared/loghub /tmp/drain3-out
"""
import csv, os, sys, time
from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig
data, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
total = 0; secs = 0.0
for s in sorted(d for d in os.listdir(data) if os.path.isdir(os.path.join(data, d))):
    with open(os.path.join(data, s, "%s_2k.log_structured.csv" % s), newline="") as f:
        rows = list(csv.DictReader(f))
    cfg = TemplateMinerConfig()  # defaults, no ini file
    tm = TemplateMiner(config=cfg)
    t = time.perf_counter()
    ids = [tm.add_log_message(r["Content"])["cluster_id"] for r in rows]
    secs += time.perf_counter() - t; total += len(rows)
    with open(os.path.join(out, s + ".csv"), "w", newline="") as f:
        w = csv.writer(f); w.writerow(["LineId", "PatternId"])
        for r, i in zip(rows, ids): w.writerow([r["LineId"], i])
print("drain3 lines/s: %.0f" % (total / secs), file=sys.stderr)
