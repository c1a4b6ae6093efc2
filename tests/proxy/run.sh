#!/usr/bin/env bash
# fp_proxy in front of engine_run serve, on loopback: the answer through the proxy is the server's,
# it comes at least --delay-ms later than straight from the server, and a non-loopback address is
# refused with one line. usage: run.sh BIN_DIR MODEL
set -euo pipefail
bin=$1 model=$2
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
wait_port() {  # port pid: 0 once the port opens with process pid alive; 1 once pid has exited (it
    # could not listen: the port is taken, perhaps by another process that answers on it)
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            sleep 0.2  # a process that could not bind exits at once
            kill -0 "$2" 2>/dev/null && return 0 || return 1
        fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    echo "port $1 never opened" >&2
    exit 1
}
get_info() {  # port -> body of GET /info
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'GET /info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    sed -n '/^\r$/,$p' <&3 | tail -n +2
    exec 3<&-
}
fastest_us() {  # port -> the fastest of 5 GET /info, in microseconds
    local best=999999999
    for _ in 1 2 3 4 5; do
        local t0 t1
        t0=$(date +%s%N)
        get_info "$1" >/dev/null
        t1=$(date +%s%N)
        best=$(((t1 - t0) / 1000 < best ? (t1 - t0) / 1000 : best))
    done
    echo "$best"
}

# Random ports may be taken (the ephemeral range overlaps them): a server or proxy that cannot listen
# exits, and both start again on other ports.
started=
for _ in 1 2 3 4 5; do
    server_port=$((20000 + RANDOM % 20000))
    proxy_port=$((server_port + 1))
    "$bin/engine_run" serve "$model" --listen "127.0.0.1:$server_port" 2>"$work/serve.log" &
    pids+=($!)
    if wait_port "$server_port" "$!"; then
        "$bin/fp_proxy" --listen "127.0.0.1:$proxy_port" --upstream "127.0.0.1:$server_port" --delay-ms 40 \
            --max-seconds 60 2>"$work/proxy.log" &
        pids+=($!)
        if wait_port "$proxy_port" "$!"; then
            started=1
            break
        fi
    fi
    kill "${pids[@]}" 2>/dev/null || true
done
[ -n "$started" ] || { echo "no free pair of ports in 5 tries: $(cat "$work"/*.log)" >&2; exit 1; }

direct=$(get_info "$server_port")
proxied=$(get_info "$proxy_port")
[ -n "$direct" ] && [ "$direct" = "$proxied" ] || { echo "answers differ: '$direct' vs '$proxied'" >&2; exit 1; }
d=$(fastest_us "$server_port")
p=$(fastest_us "$proxy_port")
echo "GET /info, fastest of 5: ${d} us direct, ${p} us through a 40 ms proxy"
# The proxy waits 40 ms after the server's answer: no request through it can take less.
[ "$p" -ge 40000 ] || { echo "a request through the proxy took ${p} us, under its 40 ms delay" >&2; exit 1; }

if "$bin/fp_proxy" --listen "0.0.0.0:$((proxy_port + 1))" --upstream "127.0.0.1:$server_port" 2>"$work/err"; then
    echo "fp_proxy listened on a non-loopback address" >&2
    exit 1
fi
[ "$(wc -l <"$work/err")" -eq 1 ] || { echo "expected one error line, got: $(cat "$work/err")" >&2; exit 1; }
echo "fp_proxy: same answers, delay added, non-loopback refused ($(cat "$work/err"))"
