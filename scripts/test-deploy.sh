#!/usr/bin/env bash
# The deployment tests (tests/deploy): the Helm chart rendered by Helm's Go SDK
# and checked against Kubernetes' and KEDA's schemas, the CPU image built
# from docker/Dockerfile without a Docker engine and run, the demo broker's
# image (docker/Dockerfile.broker) run with the topics Job and helm test pod as
# the chart renders them, and KEDA's scaling played in the loop. The checkers live in
# a cached venv (scripts/deploy-env.sh). Exits with pytest's status; "no tests
# ran" (pytest's 5) is a failure too.
#
#   scripts/test-deploy.sh                 # everything
#   STREETSCOPE_SKIP_IMAGE=1 scripts/test-deploy.sh   # the chart only
#   scripts/test-deploy.sh -k keda         # pytest arguments pass through
set -uo pipefail
cd "$(dirname "$0")/.."
PY=$(bash scripts/deploy-env.sh images) || exit 1
# The images need the release binary; scripts/setup.sh builds it.
timeout "${STREETSCOPE_DEPLOY_TIMEOUT:-1500}" "$PY" -m pytest tests/deploy -q -p no:cacheprovider -rfEs "$@"
rc=$?
case $rc in
  0) ;;
  5) echo "test-deploy: pytest collected no tests" >&2; rc=1 ;;
  124) echo "test-deploy: timed out" >&2 ;;
esac
exit $rc
