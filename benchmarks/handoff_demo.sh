#!/bin/bash
# The hand-off measured on demo data (docs/handoff.md, "Measured"): train as of 2026-06-01,
# score weekly for ten weeks with the demo agreement, judge as of 2026-11-01, when the
# hand-offs' 90-day windows have passed. Run from the repository: bash benchmarks/handoff_demo.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
leadscore="$repo/.venv/bin/leadscore"
work=${1:-$(mktemp -d -t leadscore-handoff-XXXX)}
mkdir -p "$work/configs" && cd "$work"
cp "$repo/configs/demo.yaml" configs/
"$leadscore" demo-data --out demo_data --leads 20000 --seed 0
"$leadscore" train --as-of 2026-06-01
for day in 01 08 15 22 29; do "$leadscore" score --as-of "2026-06-$day"; done
for day in 06 13 20 27; do "$leadscore" score --as-of "2026-07-$day"; done
"$leadscore" score --as-of 2026-08-03
"$leadscore" agreement --as-of 2026-11-01 --json agreement.json --report agreement_report.html
echo "Wrote $work/agreement_report.html and $work/agreement.json"
