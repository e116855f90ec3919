#!/usr/bin/env bash
# The channel180 paper preset on one GPU, in resumable pieces: run it again in the next session
# and it continues from the last restart file (written every 5 delta/u_tau). Prints the spin-up's
# turbulence statistics against Moser, Kim & Mansour (centreline and bulk U+, Re_tau, the linear
# total shear stress) once the spin-up is done, and the DNS time per step at the paper grid.
#
#   scripts/gpu/channel180.sh [minutes]     # stop cleanly after about this long (default 25)
#
# Spin-up 150 delta/u_tau plus 21 trajectories x (20 + 80) delta/u_tau: roughly 2-4 GPU hours in all
# (validation.md section 7), so expect several sessions. Data: $CFDBENCH_DATA/channel180 (default data/).
set -uo pipefail
cd "$(dirname "$0")/../.."
MINUTES="${1:-25}"
python benchmarks/bench_channel.py --device cuda --paper --quick
timeout --signal=INT "$((MINUTES * 60))" cfdbench data generate channel180 --device cuda
status=$?
DATA="${CFDBENCH_DATA:-data}/channel180"
if [ -f "$DATA/spinup.json" ]; then
  python - "$DATA/spinup.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print(f"spin-up statistics at t = {report['time']:.1f} delta/u_tau over {report['samples']} samples:")
for name, gate in report["mkm_gates"].items():
    print(f"  {name}: {json.dumps(gate)}")
PY
fi
if [ "$status" -eq 124 ] || [ "$status" -eq 130 ]; then
  echo "stopped after ${MINUTES} min; run this script again to continue from $DATA/restart"
  exit 0
fi
exit "$status"
