#!/bin/sh
# vLLM's router (vllm-router) in front of the text model's replicas, configured by environment
# variables as the vLLM image is (docker/vllm-entrypoint.sh):
#   VLLM_REPLICAS           N: the local replicas http://vllm:8000, http://vllm-2:8000, ...
#                           http://vllm-N:8000 (docker-compose.vllm.yml's services)
#   VLLM_WORKER_URLS        more replicas' base URLs (other hosts), spaces or commas between
#   ROUTER_WORKERS          when set, the whole list instead of the two above
#   ROUTER_POLICY           consistent_hash (default; docs/performance.md, "Sessions and
#                           replicas", says why), cache_aware, round_robin, power_of_two, ...
#   ROUTER_PORT             8000: what the adapter's VLLM_URL names
#   ROUTER_METRICS_PORT     29000: the router's Prometheus metrics (vllm_router_*)
#   ROUTER_HEALTH_INTERVAL  5: seconds between health checks of each replica
#   ROUTER_HEALTH_FAILURES  2: failed checks in a row that take a replica out of rotation
#   ROUTER_STARTUP_TIMEOUT  1800: seconds it waits at start for a first healthy replica (a
#                           first start downloads the weights)
#   ROUTER_EXTRA_ARGS       more vllm-router arguments, word-split
set -eu

workers=$(printf '%s' "${ROUTER_WORKERS:-}" | tr ',' ' ')
if [ -z "$(printf '%s' "$workers" | tr -d ' ')" ]; then
  n="${VLLM_REPLICAS:-1}"
  case "$n" in
    [1-8]) ;;
    *) echo "router-entrypoint: VLLM_REPLICAS must be 1 to 8, got '$n'" >&2; exit 2 ;;
  esac
  workers="http://vllm:8000"
  k=2
  while [ "$k" -le "$n" ]; do
    workers="$workers http://vllm-$k:8000"
    k=$((k + 1))
  done
  workers="$workers $(printf '%s' "${VLLM_WORKER_URLS:-}" | tr ',' ' ')"
fi

# shellcheck disable=SC2086  # the lists are meant to be word-split
set -- --worker-urls $workers \
  --host 0.0.0.0 --port "${ROUTER_PORT:-8000}" \
  --policy "${ROUTER_POLICY:-consistent_hash}" \
  --prometheus-host 0.0.0.0 --prometheus-port "${ROUTER_METRICS_PORT:-29000}" \
  --health-check-interval-secs "${ROUTER_HEALTH_INTERVAL:-5}" \
  --health-failure-threshold "${ROUTER_HEALTH_FAILURES:-2}" \
  --health-success-threshold 1 \
  --worker-startup-timeout-secs "${ROUTER_STARTUP_TIMEOUT:-1800}" \
  --worker-startup-check-interval 5 \
  --log-level "${ROUTER_LOG_LEVEL:-info}" \
  ${ROUTER_EXTRA_ARGS:-} "$@"
echo "vllm-router: policy ${ROUTER_POLICY:-consistent_hash}, replicas: $workers"
exec vllm-router "$@"
