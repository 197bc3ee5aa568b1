#!/usr/bin/env bash
# Events per second through `taskhook relay` to a trivial upstream, against
# nginx `proxy_pass` to the same upstream, in the same run, on loopback:
#
#   bash benches/relay.sh              # 3 rounds of 10 s (about 3 minutes after the build)
#   RUNS=5 SECS=20 bash benches/relay.sh
#   JOURNALS=redb RUNS=1 bash benches/relay.sh   # one journal only
#
# The upstream is an nginx server block answering `200` (`return 200`). The
# baseline is a second server block of the same nginx proxying to it
# (HTTP/1.1, keep-alive pool of 128). The relay runs with the in-memory
# journal, then with the redb journal (group commit) in a fresh directory,
# `--upstream-concurrency 64`. Load: wrk, 1 thread, 32 connections,
# benches/http.lua (the 1 KB body of the HTTP benchmark, a unique task id
# per request). For nginx an answered request is a forwarded one; the relay
# answers first and forwards after, so its figure is the events forwarded
# (fast-ack's `processed`, read from the admin listener) divided by the time
# from the start of the load until nothing is pending (a `503` from a full
# queue is not counted). Each round runs the three cases in turn; medians
# and the ratios relay/nginx per round are printed at the end. Everything
# shares the machine's cores (wrk, nginx's workers, the relay), as a
# deployment on one host would. Needs Linux, curl, python3; installs wrk and
# nginx with apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SECS=${SECS:-10}
CONNS=32
JOURNALS=${JOURNALS:-memory redb}

need() {
    command -v "$1" >/dev/null && return
    echo "installing $2" >&2
    apt-get install -y "$2" >/dev/null || { apt-get update >/dev/null && apt-get install -y "$2" >/dev/null; }
}
need wrk wrk
need nginx nginx
NGINX=$(command -v nginx)

cargo build -q --release -p taskhook-cli -p taskhook-tools --bin taskhook --bin bench_server
bin="${CARGO_TARGET_DIR:-target}/release"
tmp=$(mktemp -d)
relay_pid=
cleanup() {
    if [ -n "$relay_pid" ]; then kill "$relay_pid" 2>/dev/null || true; fi
    if [ -f "$tmp/nginx.pid" ]; then kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true; fi
    sleep 0.2
    rm -rf "$tmp"
}
trap cleanup EXIT
"$bin/bench_server" body >"$tmp/body.json"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up_port=$(free_port)
proxy_port=$(free_port)
user_line=
[ "$(id -u)" = 0 ] && user_line="user root;"
cat >"$tmp/nginx.conf" <<EOF
$user_line
worker_processes auto;
daemon on;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    keepalive_requests 1000000;
    upstream app { server 127.0.0.1:$up_port; keepalive 128; }
    # The trivial upstream, for both.
    server { listen 127.0.0.1:$up_port; location / { return 200; } }
    # The baseline: nginx in front of it.
    server {
        listen 127.0.0.1:$proxy_port;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
"$NGINX" -c "$tmp/nginx.conf" -p "$tmp"
for _ in $(seq 100); do curl -sf -o /dev/null -X POST "http://127.0.0.1:$up_port/" && break; sleep 0.05; done

# One wrk run against $1; sets $requests, $non2xx, $rps (2xx per second).
load() {
    TASKHOOK_BODY="$tmp/body.json" TASKHOOK_DUP=0 \
        wrk -t1 -c"$CONNS" -d"${SECS}s" -s benches/http.lua "$1" >"$tmp/wrk.out"
    requests=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$tmp/wrk.out")
    non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *//p' "$tmp/wrk.out")
    non2xx=${non2xx:-0}
    rps=$(python3 -c "print(f'{($requests - $non2xx) / $SECS:.0f}')")
}

# Reads a field of the relay's /stats.
stat() {
    curl -sf "http://$admin/stats" | python3 -c "import json,sys; s=json.load(sys.stdin); print(eval(sys.argv[1], {}, s))" "$1"
}

# A relay with journal $1 (memory or redb): sets $rps to the events
# forwarded per second and $acked to the 2xx answers per second.
relay() {
    rm -rf "$tmp/data" "$tmp/relay.out"
    "$bin/taskhook" relay --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --upstream "http://127.0.0.1:$up_port/callback" --journal "$1" --data-dir "$tmp/data" \
        --upstream-concurrency 64 --log-format text >"$tmp/relay.out" 2>"$tmp/relay.err" &
    relay_pid=$!
    addr= admin=
    for _ in $(seq 200); do
        addr=$(sed -n 's/^listening on //p' "$tmp/relay.out" 2>/dev/null || true)
        admin=$(sed -n 's/^admin listening on //p' "$tmp/relay.out" 2>/dev/null || true)
        [ -n "$admin" ] && curl -sf -o /dev/null "http://$admin/readyz" && break
        sleep 0.05
    done
    addr=$(sed -n 's/^listening on //p' "$tmp/relay.out")
    [ -n "$admin" ] && [ -n "$addr" ] || { echo "the relay did not start" >&2; cat "$tmp/relay.err" >&2; exit 1; }
    local t0 t1
    t0=$(date +%s.%N)
    load "http://$addr/callback"
    acked=$rps
    while [ "$(stat pending)" != 0 ]; do sleep 0.01; done
    t1=$(date +%s.%N)
    local processed
    processed=$(stat 'fast_ack["processed"]')
    rps=$(python3 -c "print(f'{$processed / ($t1 - $t0):.0f}')")
    kill "$relay_pid"
    wait "$relay_pid" || true
    relay_pid=
}

echo "machine: nproc=$(nproc), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(rustc --version), $("$NGINX" -v 2>&1)"
: >"$tmp/results"
for round in $(seq "$RUNS"); do
    load "http://127.0.0.1:$proxy_port/callback"
    printf 'round %d %-14s %8s events/s forwarded (non-2xx %s)\n' "$round" nginx "$rps" "$non2xx"
    echo "$round nginx $rps" >>"$tmp/results"
    for journal in $JOURNALS; do
        relay "$journal"
        printf 'round %d %-14s %8s events/s forwarded (acks %s/s, non-2xx %s)\n' \
            "$round" "relay_$journal" "$rps" "$acked" "$non2xx"
        echo "$round relay_$journal $rps" >>"$tmp/results"
    done
done

echo
echo "== events per second forwarded (medians of $RUNS rounds of ${SECS} s, wrk -t1 -c$CONNS)"
python3 - "$tmp/results" <<'EOF'
import statistics, sys
by = {}
for rnd, name, rps in (l.split() for l in open(sys.argv[1])):
    by.setdefault(name, {})[int(rnd)] = float(rps)
print(f"nginx proxy_pass: median {statistics.median(by['nginx'].values()):.0f} events/s")
for name, target in (("relay_memory", 0.7), ("relay_redb", 0.5)):
    if name not in by:
        continue
    ratios = [by[name][r] / by["nginx"][r] for r in sorted(by[name])]
    ratio = statistics.median(ratios)
    print(f"{name}: median {statistics.median(by[name].values()):.0f} events/s, ratio to nginx "
          f"{ratio:.3f} (range {min(ratios):.3f}-{max(ratios):.3f}); target {target}: "
          f"{'met' if ratio >= target else 'MISSED'}")
EOF
