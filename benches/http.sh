#!/usr/bin/env bash
# The HTTP benchmark on loopback: a bare axum handler against the same app
# with the full taskhook stack (payload + dedup + fast-ack), then the ack
# latency at half of the bare maximum rate, open-loop. One command:
#
#   bash benches/http.sh            # 5 rounds of 10 s (about 4 minutes after the build)
#   RUNS=3 SECS=5 bash benches/http.sh
#   LAT_RATE=2000 bash benches/http.sh   # the latency run at 2,000 req/s
#   STALL_SECS=10 bash benches/http.sh   # a longer measure of the cores' own stalls
#
# The server (taskhook-tools/src/bin/bench_server.rs, release, one thread) is pinned to
# core 0 and the load generator to core 1. Throughput: wrk, 1 thread, 32
# connections, benches/http.lua (the 1 KB body with a unique task id per
# request, or the same id every time for 100 % duplicates). Each round
# runs bare, stack with unique ids and stack with duplicates, each against
# a fresh server; the medians over the rounds and the ratios stack/bare are
# printed at the end. Throughput counts 2xx answers only (a 503 from a full
# queue is not a request served). Each line also shows the server's CPU
# time per request and how busy wrk kept its own core: near 100 %, wrk is
# the bottleneck, and the server's CPU per request is the fairer measure.
# Latency: taskhook-tools/src/bin/openloop.rs at half the median bare rate, against bare
# and against stack (unique ids), after a measure of how often the cores
# themselves stall (openloop --stalls). `uptime` is printed
# before and after each run: other work on the machine skews the figures.
# Needs Linux, taskset, curl, python3; installs wrk with apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
SECS=${SECS:-10}
LAT_SECS=${LAT_SECS:-10}
STALL_SECS=${STALL_SECS:-5}
CONNS=32
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi

cargo build -q --release -p taskhook-tools --bin bench_server --bin openloop
bin="${CARGO_TARGET_DIR:-target}/release"
tmp=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
"$bin/bench_server" body >"$tmp/body.json"

# Starts a server of `mode` (bare or stack) on core SERVER_CPU; sets $addr.
start() {
    rm -f "$tmp/server.out"
    taskset -c "$SERVER_CPU" "$bin/bench_server" "$1" 127.0.0.1:0 >"$tmp/server.out" 2>"$tmp/server.err" &
    server_pid=$!
    for _ in $(seq 100); do
        addr=$(sed -n 's/^listening on //p' "$tmp/server.out" 2>/dev/null || true)
        [ -n "$addr" ] && return
        sleep 0.05
    done
    echo "server did not start" >&2
    exit 1
}

stop() {
    kill "$server_pid"
    wait "$server_pid" || true
    server_pid=
}

# CPU time (user + system) of the server so far, in clock ticks.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$server_pid/stat"
}

# One wrk run against a fresh server: sets $rps (2xx answers per second:
# a 503 is not a request served), $non2xx, $cpu_us (the server's CPU time
# per request, in microseconds) and $client_busy (wrk's share of its core).
run() {
    local mode=$1 dup=$2
    start "$mode"
    if [ "$dup" = 1 ]; then
        # The first push of the id is new (202); every push of the run is a duplicate.
        curl -sf -o /dev/null -X POST -H 'content-type: application/json' \
            --data-binary @"$tmp/body.json" "http://$addr/callback"
    fi
    local t0 t1 requests
    t0=$(cpu_ticks)
    TASKHOOK_BODY="$tmp/body.json" TASKHOOK_DUP=$dup taskset -c "$CLIENT_CPU" \
        /usr/bin/time -f '%U %S' -o "$tmp/wrk.time" \
        wrk -t1 -c"$CONNS" -d"${SECS}s" -s benches/http.lua "http://$addr/callback" >"$tmp/wrk.out"
    t1=$(cpu_ticks)
    stop
    requests=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$tmp/wrk.out")
    cpu_us=$(python3 -c "print(f'{($t1 - $t0) * 1e6 / $(getconf CLK_TCK) / $requests:.2f}')")
    non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *//p' "$tmp/wrk.out")
    non2xx=${non2xx:-0}
    local all
    all=$(sed -n 's/^Requests\/sec: *//p' "$tmp/wrk.out")
    rps=$(python3 -c "print(f'{$all * ($requests - $non2xx) / $requests:.0f}')")
    client_busy=$(python3 -c "u, s = open('$tmp/wrk.time').read().split()[-2:]; print(f'{(float(u) + float(s)) * 100 / $SECS:.0f}')")
}

echo "machine: nproc=$(nproc), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(rustc --version)"
: >"$tmp/results"
for round in $(seq "$RUNS"); do
    for case in "bare 0" "stack 0" "stack 1"; do
        set -- $case
        name=$1; [ "$1" = stack ] && { [ "$2" = 1 ] && name=stack_dup || name=stack_unique; }
        before=$(uptime | sed 's/.*load average: //')
        run "$1" "$2"
        after=$(uptime | sed 's/.*load average: //')
        printf 'round %d %-13s %8.0f 2xx/s  server CPU %6s us/req  wrk core %3s %%  non-2xx %s  load %s -> %s\n' \
            "$round" "$name" "$rps" "$cpu_us" "$client_busy" "$non2xx" "$before" "$after"
        echo "$round $name $rps $non2xx $cpu_us" >>"$tmp/results"
    done
done

python3 - "$tmp/results" >"$tmp/summary" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for rnd, name, rps, bad, cpu in rows:
    by.setdefault(name, {})[int(rnd)] = (float(rps), int(bad), float(cpu))
med = {n: statistics.median(v[0] for v in r.values()) for n, r in by.items()}
bare = by["bare"]
for name, target in (("stack_unique", 0.80), ("stack_dup", 0.90)):
    per_round = [by[name][r][0] / bare[r][0] for r in sorted(by[name])]
    ratio = statistics.median(per_round)
    print(f"{name}: median {med[name]:.0f} req/s, ratio to bare {med[name] / med['bare']:.3f} "
          f"(median of per-round ratios {ratio:.3f}, range {min(per_round):.3f}-{max(per_round):.3f}); "
          f"target {target:.2f}: {'met' if ratio >= target else 'MISSED'}")
print(f"bare: median {med['bare']:.0f} req/s")
cpu = {n: statistics.median(v[2] for v in r.values()) for n, r in by.items()}
busy = {n: statistics.median(v[0] * v[2] / 1e6 for v in r.values()) for n, r in by.items()}
print()
print("server CPU per request (the server's user + system time / requests; the rate one core")
print("could serve when the server, not the load generator, is the bottleneck):")
for name in ("bare", "stack_unique", "stack_dup"):
    per_round = [by["bare"][r][2] / by[name][r][2] for r in sorted(by[name])]
    print(f"{name}: median {cpu[name]:.2f} us/req (server core {busy[name] * 100:.0f} % busy), "
          f"capacity ratio bare/{name} {statistics.median(per_round):.3f} "
          f"(range {min(per_round):.3f}-{max(per_round):.3f})")
bad = sum(v[1] for r in by.values() for v in r.values())
print(f"non-2xx answers in all runs: {bad}")
print(f"HALF={med['bare'] / 2:.0f}")
EOF
echo
echo "== throughput (medians of $RUNS runs of ${SECS} s, wrk -t1 -c$CONNS)"
grep -v '^HALF=' "$tmp/summary"
half=$(sed -n 's/^HALF=//p' "$tmp/summary")
rate=${LAT_RATE:-$half}

echo
echo "== the machine's own stalls: each core reads the clock in a loop for ${STALL_SECS} s (openloop --stalls);"
echo "   a gap over 100 us is a time the core was taken away; no server answers through one"
taskset -c "$SERVER_CPU" "$bin/openloop" --stalls "$STALL_SECS" >"$tmp/stalls.server" &
taskset -c "$CLIENT_CPU" "$bin/openloop" --stalls "$STALL_SECS" >"$tmp/stalls.client"
wait $!
echo "server core $SERVER_CPU: $(cat "$tmp/stalls.server")"
echo "client core $CLIENT_CPU: $(cat "$tmp/stalls.client")"

echo
echo "== ack latency, open-loop at $rate req/s (half the median bare rate: $half), ${LAT_SECS} s, $CONNS connections"
for mode in bare stack; do
    start "$mode"
    before=$(uptime | sed 's/.*load average: //')
    t0=$(cpu_ticks)
    line=$(taskset -c "$CLIENT_CPU" "$bin/openloop" "http://$addr/callback" "$rate" "$LAT_SECS" "$tmp/body.json" "$CONNS")
    t1=$(cpu_ticks)
    after=$(uptime | sed 's/.*load average: //')
    stop
    echo "$mode: $line  load $before -> $after"
    ok=$(echo "$line" | sed -n 's/.* ok=\([0-9]*\) .*/\1/p')
    cpu=$(python3 -c "print(f'{($t1 - $t0) * 1e6 / $(getconf CLK_TCK) / max($ok, 1):.2f}')")
    echo "$mode $cpu" >>"$tmp/equal"
    echo "  server CPU $cpu us/req ($(python3 -c "print(f'{$cpu * $rate / 1e4:.0f}')") % of its core)"
    achieved=$(echo "$line" | sed -n 's/.* rate=\([0-9]*\) .*/\1/p')
    if [ "$achieved" -lt $((rate * 99 / 100)) ]; then
        echo "  behind schedule: $achieved of $rate req/s were sent (the generator or the server lacks CPU); the latencies include the backlog"
    fi
done

# At the same offered rate, neither side waits on the other, so the kernel
# does about the same work per request for both servers; under wrk the
# slower server also pays for waking an idle client on every answer.
python3 - "$tmp/equal" <<'EOF'
import sys
cpu = dict(l.split() for l in open(sys.argv[1]))
bare, stack = float(cpu["bare"]), float(cpu["stack"])
print(f"CPU per request at the same offered rate: bare {bare:.2f} us, stack {stack:.2f} us "
      f"(+{stack - bare:.2f} us); capacity ratio bare/stack {bare / stack:.3f}")
EOF
