#!/usr/bin/env bash
# Run a paper preset's grid, then its report beside the published targets.
#   scripts/reproduce.sh PRESET [--cpu-twin] [hydra overrides...]
#   scripts/reproduce.sh ldam_drw                      # the GPU protocol (configs/experiment/ldam_drw.yaml)
#   scripts/reproduce.sh ldam_drw --cpu-twin           # its CPU twin (configs/experiment/ldam_drw_cpu.yaml)
# Each preset writes to its own store, results/reproduce/PRESET.db (STORE=... overrides), and its report to
# results/reproduce/PRESET.md. Targets: src/lossbench/report/targets/PRESET.yaml when one exists (twins have none:
# their report has the paired tests against ERM instead). Re-running skips completed cells.
# Presets whose rows are not accuracy on long-tailed classification name their report in their header, through
# METRIC, ROWS, COLS, SELECT and BASELINE (empty: no paired tests), e.g. for experiment=yang_imbalanced_regression:
#   METRIC=test/mae,test/gm SELECT=best ROWS=loss,weighting,weighting.reweight,weighting.smooth COLS=dataset \
#     BASELINE= scripts/reproduce.sh yang_imbalanced_regression
set -euo pipefail
usage() { echo "usage: scripts/reproduce.sh PRESET [--cpu-twin] [hydra overrides...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
preset=$1; shift
if [ "${1:-}" = "--cpu-twin" ]; then experiment=${preset}_cpu; shift; else experiment=$preset; fi
here=$(cd "$(dirname "$0")/.." && pwd)
LOSSBENCH=${LOSSBENCH:-lossbench}
[ -f "$here/configs/experiment/$experiment.yaml" ] || {
  echo "lossbench: no preset $experiment (configs/experiment/$experiment.yaml); presets: $(cd "$here/configs/experiment" && ls *.yaml | sed 's/\.yaml$//' | tr '\n' ' ')" >&2
  exit 2; }
out=${OUT:-results/reproduce}
mkdir -p "$out"
store=${STORE:-sqlite:///$out/$experiment.db}
$LOSSBENCH run -m "experiment=$experiment" "store.url=$store" "$@"
# the selection rule and targets of the paper (twins: last/, paired tests against ERM = loss ce, no weighting)
targets=$here/src/lossbench/report/targets/$preset.yaml
args=(--store "$store" --experiment "$experiment" --metric "${METRIC:-test/acc}"
      --rows "${ROWS:-loss,weighting,sampler,stage2}" --cols "${COLS:-dataset,dataset.imbalance_ratio}"
      --out "$out/$experiment.md")
if [ "$experiment" = "$preset" ] && [ -f "$targets" ]; then
  select=$(sed -n 's/^selection: *//p' "$targets" | head -1)
  args+=(--targets "$preset" --select "${SELECT:-${select:-last}}")
else
  args+=(--select "${SELECT:-last}")
  baseline=${BASELINE-ce/none/instance/none}
  [ -z "$baseline" ] || args+=(--baseline "$baseline")
fi
$LOSSBENCH report "${args[@]}"
echo "report: $out/$experiment.md"
