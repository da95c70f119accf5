#!/usr/bin/env bash
# A bounded soak of the distributed pipeline on 127.0.0.1: live RTSP cameras
# (sequence ids, 5 frames/s) through one ingest, one detector and one
# aggregator pod for MINUTES (default 10), sampling every stage's resident
# memory and the detectors' consumer lag every 5 s. Fails if a stage's memory
# grows more than 5 % after warm-up (a third of the run; its Theil-Sen trend over
# the rest against its median), the lag grows without
# bound, a camera stops being counted, or anything reaches the dead-letter
# topic; prints the figures either way. CI runs the same test for 90 s.
#
#   scripts/soak.sh [MINUTES] [CAMERAS]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
cameras=${2:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/streetscope/target}
export STREETSCOPE_SOAK_S=$((minutes * 60)) STREETSCOPE_SOAK_CAMERAS=$cameras
exec cargo nextest run --release -p streetscope --test distributed --no-capture \
  -E 'test(a_soak_keeps_every_stage_s_memory_flat)'
