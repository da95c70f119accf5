#!/usr/bin/env bash
# Runs the hostile-input property tests of every decoder of outside input at
# volume: by default ten million inputs per decoder, seeded, one decoder after
# the other, and prints the figures (docs/fuzzing.md keeps the last run's).
#
#   scripts/fuzz.sh [--cases N] [--chunk M] [--jobs J] [--seed S] [--log FILE] [DECODER...]
#
# DECODER is a name of the list below (default: all). Each decoder's N inputs
# run in chunks of M (default 1,000,000), chunk k with seed S+k, each chunk
# printing its own FUZZ line, so a run cut short still reports what it did;
# J decoders run at once (default 1). The same tests run in CI
# with a few thousand inputs each (`cargo test`); here STREETSCOPE_FUZZ_CASES
# and STREETSCOPE_FUZZ_SEED raise the count and choose the seed. A failure
# prints the smallest input found and the seed that reproduces it: rerun with
# that seed, then keep the input as a plain regression test.
#
# Long: run it in the background at low priority, e.g.
#   nice -n 19 scripts/fuzz.sh --cases 10000000 > /tmp/fuzz.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."

cases=10000000
chunk=1000000
jobs=1
seed=${STREETSCOPE_FUZZ_SEED:-0x5747524545545343}
log=""
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cases) cases=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --chunk) chunk=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) only+=("$1"); shift ;;
  esac
done

# name | package | test target | test function
decoders=(
  "frame_envelope|streetscope-contracts|hostile|frame_envelopes"
  "source_url|streetscope-contracts|hostile|source_urls"
  "cluster_config_toml|streetscope-contracts|hostile|cluster_configs"
  "pipeline_config_toml|streetscope-contracts|hostile|pipeline_configs"
  "zone_polygons|streetscope-contracts|hostile|polygon_geometry"
  "detections_json|streetscope-contracts|hostile|detections"
  "registry_request_body|streetscope-registry|hostile_bodies|request_bodies"
  "result_records_json|streetscope-contracts|hostile|result_records"
  "intersection_spec_json|streetscope-contracts|hostile|intersection_specs"
  "camera_spec_json|streetscope-contracts|hostile|camera_specs"
  "aggregate_snapshot_json|streetscope-aggregate|hostile_snapshot|snapshots_at_restore"
  "pipeline_template|streetscope-ingest|hostile_template|pipeline_templates"
  "camera_snapshot|streetscope-contracts|hostile|camera_snapshot_messages"
  "frame_jpeg_payload|streetscope-detect|hostile_jpeg|frame_jpeg_payloads"
)

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streetscope/target}
if [ -n "${FUZZ_NO_BUILD:-}" ]; then
  # Reuse the newest test binaries already built (e.g. while another build holds cargo's lock).
  bins=$(for t in hostile hostile_bodies hostile_snapshot hostile_template hostile_jpeg; do
    echo "$t $(ls -t "$CARGO_TARGET_DIR"/release/deps/"$t"-* | grep -v '\.d$' | head -1)"; done)
else
echo "building the test binaries (release)" >&2
bins=$(cargo test --release --no-run --message-format=json \
    -p streetscope-contracts --test hostile \
    -p streetscope-registry --test hostile_bodies \
    -p streetscope-aggregate --test hostile_snapshot \
    -p streetscope-ingest --test hostile_template \
    -p streetscope-detect --test hostile_jpeg 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
')
fi

bin_of() { awk -v t="$1" '$1 == t { print $2 }' <<<"$bins"; }

printf '# scripts/fuzz.sh --cases %s --chunk %s --jobs %s --seed %s on %s, %s (%s cores)\n' \
  "$cases" "$chunk" "$jobs" "$seed" "$(git rev-parse --short HEAD)" "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" |
  tee ${log:+-a "$log"}

# A Markdown table of a log's FUZZ lines, one row per decoder (its chunks summed).
summarize() {
  python3 - "$1" <<'PY'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"FUZZ (\S+) (.*)", line.strip())
    if not m:
        continue
    f = dict(kv.split("=", 1) for kv in m.group(2).split())
    r = rows.setdefault(m.group(1), dict(inputs=0, secs=0.0, accepted=0, refused=0, largest=0, chunks=0, slowest=0))
    r["inputs"] += int(f["inputs"]); r["secs"] += float(f["secs"]); r["chunks"] += 1
    r["accepted"] += int(f["accepted"]); r["refused"] += int(f["refused"])
    r["largest"] = max(r["largest"], int(f["largest_alloc"]))
    r["slowest"] = max(r["slowest"], int(f.get("slowest_us", 0)))
print("| decoder | inputs | chunks (seeds) | seconds | inputs/s | accepted | refused | largest allocation | slowest input |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for k, r in rows.items():
    print(f"| {k} | {r['inputs']:,} | {r['chunks']} | {r['secs']:.0f} | {r['inputs'] / max(r['secs'], 1e-9):,.0f} "
          f"| {r['accepted']:,} | {r['refused']:,} | {r['largest']:,} B | {r['slowest'] / 1000:,.1f} ms |")
PY
}

# Runs one decoder, chunk after chunk; prints one FUZZ line per chunk.
run_decoder() {
  local name=$1 pkg=$2 target=$3 fn=$4 bin done=0 k=0 n out
  bin=$(bin_of "$target")
  [ -n "$bin" ] || { echo "no test binary for $target" >&2; return 1; }
  while [ "$done" -lt "$cases" ]; do
    n=$(( cases - done < chunk ? cases - done : chunk ))
    if out=$(cd "crates/${pkg#streetscope-}" && STREETSCOPE_FUZZ_CASES=$n \
          STREETSCOPE_FUZZ_SEED=$(printf '%#x' $(( seed + k ))) \
          "$bin" --exact "$fn" --nocapture --test-threads 1 2>&1); then
      grep -o 'FUZZ .*' <<<"$out" | tee ${log:+-a "$log"}
    else
      { echo "FAILED $name chunk $k (seed $(printf '%#x' $(( seed + k ))))"
        grep -m1 -A1 'Test failed' <<<"$out" | cut -c1-2000; tail -n 20 <<<"$out"; } | tee ${log:+-a "$log"}
      return 1
    fi
    done=$(( done + n )); k=$(( k + 1 ))
  done
}

selected=()
for d in "${decoders[@]}"; do
  IFS='|' read -r name _ <<<"$d"
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " == *" $name "* ]]; then continue; fi
  selected+=("$d")
done
failed=0
pids=()
for lane in $(seq 0 $(( jobs - 1 ))); do
  (
    rc=0
    for i in "${!selected[@]}"; do
      [ $(( i % jobs )) -eq "$lane" ] || continue
      IFS='|' read -r name pkg target fn <<<"${selected[$i]}"
      echo "== $name: $cases inputs" >&2
      run_decoder "$name" "$pkg" "$target" "$fn" || rc=1
    done
    exit $rc
  ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ -z "$log" ] || summarize "$log"
exit $failed
