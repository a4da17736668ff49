"""Rename the two pickup intervals' figure keys (issue 20); run from the repository's root, idempotent."""
import json
import re
from pathlib import Path

E2S, R2S = "pickup_enqueue_to_start", "pickup_request_to_smtp"
N06 = ["helpers/experiments/scale_out.py", "notebooks/06-scale-out.ipynb", "tests/test_scale_out.py",
       "data/reference/full-run/06-scale-out.run.json"]
N07 = ["helpers/experiments/which_queue.py", "tests/test_which_queue.py", "helpers/runs/report.py",
       "data/reference/full-run/07-which-queue.run.json"]
RULES06 = [(r"(?<=[}a-z])_(tuned_)?pickup_(p50|max)_ms", rf"_\1{E2S}_\2_ms")]
RULES07 = [(r"(?<=})_(tuned_)?pickup_(p50|p99)_ms", rf"_\1{R2S}_\2_ms"),  # f"{b}_pickup_p50_ms"
           (r"((?:listing|cell)\((?:b, )?['\"])(tuned_)?pickup_(p50|p99)_ms", rf"\1\2{R2S}_\3_ms"),
           (r"\"blocking_tuned_pickup_p50_ms\"", f"\"blocking_tuned_{R2S}_p50_ms\""),
           (r"\"enqueue_cost_us\", \"pickup_p50_ms\"", f"\"enqueue_cost_us\", \"{R2S}_p50_ms\""),
           (r"06\.huey_redis_pickup_p50_ms", f"06.huey_redis_{E2S}_p50_ms")]  # report.py quotes notebook 06
JSON07 = [(r'(?<=[a-z])_(tuned_)?pickup_(p50|p99)_ms"(?=:)', rf'_\1{R2S}_\2_ms"')]  # its run.json's keys
for files, rules in ((N06, RULES06), (N07, RULES07)):
    for name in files:
        path = Path(name)
        text = path.read_text()
        for pattern, replacement in rules + (JSON07 if name.endswith(".json") else []):
            text = re.sub(pattern, replacement, text)
        path.write_text(text)
summary_path = Path("data/reference/summary.json")
summary = json.loads(summary_path.read_text())
for notebook, (old, new) in (("06-scale-out", (r"_(tuned_)?pickup_(p50|max)_ms$", rf"_\1{E2S}_\2_ms")),
                             ("07-which-queue", (r"_(tuned_)?pickup_(p50|p99)_ms$", rf"_\1{R2S}_\2_ms"))):
    figures = summary["notebooks"][notebook]["figures"]
    summary["notebooks"][notebook]["figures"] = {re.sub(old, new, k): v for k, v in figures.items()}
summary_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
