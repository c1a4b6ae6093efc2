#!/usr/bin/env bash
# fp_check over a realistic network: the suspect is `engine_run serve` behind fp_proxy, which adds
# a delay and uniform (or exponential) jitter to every answer. Per jitter level, prints the verdict,
# the match count, the repetitions and queries fp_check needed, the smallest exit step the
# suspect has against the smallest step the final noise resolves (fp_check resolves a step once it
# exceeds 12 widths of a latency's noise where it groups inputs at gaps, 6 where it places them on the
# owner's profile: verify.h), the quantile latencies were read at and where the levels came from
# (gaps or profile). Level 0 is plain loopback, no proxy.
# Everything listens on 127.0.0.1 only; the proxy stops itself after a bounded time and number of requests.
# usage: bench/fp_jitter.sh FINGERPRINT SUSPECT_MODEL [OUT]
#   env: LEVELS (ms, default "0 0.1 0.5 1 5"), JITTER (uniform|exponential), DELAY_MS (default 1),
#        REPS (default 15), MAX_REPS (default 120), PORT (default 18750; uses PORT and PORT+1),
#        CHECK_ARGS (more fp_check arguments, e.g. "--quantile 0.5")
set -euo pipefail
cd "$(dirname "$0")/.."
fp=$1
model=$2
out=${3:-/tmp/fp_jitter}
LEVELS=${LEVELS:-0 0.1 0.5 1 5}
JITTER=${JITTER:-uniform}
DELAY_MS=${DELAY_MS:-1}
REPS=${REPS:-15}
MAX_REPS=${MAX_REPS:-120}
PORT=${PORT:-18750}
bin=build/bin
mkdir -p "$out"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Another run's server on these ports would answer for the suspect: refuse rather than check it.
for p in "$PORT" $((PORT + 1)); do
  if listening "$p"; then echo "fp_jitter: 127.0.0.1:$p is in use (another run?); set PORT=" >&2; exit 2; fi
done
wait_port() {  # $1: port, $2: the process that should listen there
  for _ in $(seq 100); do
    kill -0 "$2" 2>/dev/null || { echo "fp_jitter: the process for 127.0.0.1:$1 exited (see $out/*.log)" >&2; exit 2; }
    listening "$1" && return 0
    sleep 0.1
  done
  echo "fp_jitter: nothing listens on 127.0.0.1:$1 (see $out/*.log)" >&2
  exit 2
}
$bin/engine_run serve "$model" --listen "127.0.0.1:$PORT" 2> "$out/serve.log" &
pids+=($!)
wait_port "$PORT" $!
printf '%-9s %-11s %-12s %8s %6s %6s %5s %8s %6s %10s %12s %5s %-7s %7s\n' jitter_ms kind verdict matches undet merged reps queries \
  copies step_ms resolvable_ms q levels wall_s
for level in $LEVELS; do
  url=http://127.0.0.1:$PORT
  proxy=
  if [ "$level" != 0 ]; then
    $bin/fp_proxy --listen "127.0.0.1:$((PORT + 1))" --upstream "127.0.0.1:$PORT" --delay-ms "$DELAY_MS" \
      --jitter-ms "$level" --jitter "$JITTER" --max-seconds 900 --max-requests 1000000 2> "$out/proxy_$level.log" &
    proxy=$!
    pids+=($proxy)
    wait_port $((PORT + 1)) "$proxy"
    url=http://127.0.0.1:$((PORT + 1))
  fi
  rc=0
  # shellcheck disable=SC2086
  $bin/fp_check "$fp" --suspect-url "$url" --reps "$REPS" --max-reps "$MAX_REPS" ${CHECK_ARGS:-} --json > "$out/check_$level.json" \
    2> "$out/check_$level.err" || rc=$?
  if [ "$rc" = 2 ]; then
    printf '%-9s %-11s error (%s)\n' "$level" "$JITTER" "$(tail -1 "$out/check_$level.err")"
  else
    python3 - "$out/check_$level.json" "$level" "$JITTER" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print('%-9s %-11s %-12s %4d/%-3d %6d %6d %5d %8d %6d %10.4f %12.4f %5.2f %-7s %7.1f' % (sys.argv[2], sys.argv[3],
      j['verdict'], j['matches'], j['inputs'], j['undetermined'], j['merged'], j['reps'], j['queries'], j['copies'],
      j['smallest_step_ms'], j['resolvable_step_ms'], j['quantile'], j['levels_from'], j['wall_s']))
PY
  fi
  if [ -n "$proxy" ]; then
    kill "$proxy" 2>/dev/null || true
    wait "$proxy" 2>/dev/null || true
  fi
done
