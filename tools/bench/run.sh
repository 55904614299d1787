#!/usr/bin/env bash
# run.sh: start a throw-away cluster of any server with etcd-style flags
# (Ensemble or etcd itself) on loopback and run the workloads of
# /work/shared/ANCHORS.md against it with cmd/ensemble-load, one result line
# per workload.
#
# Usage:
#   BIN=/tmp/bench/ensemble LOAD=/tmp/bench/ensemble-load tools/bench/run.sh
#   BIN=/tmp/bench/etcd     LOAD=/tmp/bench/ensemble-load MEMBERS=1 tools/bench/run.sh
#
# Environment:
#   BIN        server binary taking etcd's flag names (required)
#   LOAD       built cmd/ensemble-load (required)
#   MEMBERS    cluster size (default 3)
#   DURATION   length of each workload (default 10s)
#   HEARTBEAT  --heartbeat-interval in ms (default 100, etcd's default)
#   ELECTION   --election-timeout in ms (default 1000, etcd's default)
#   WORKLOADS  space-separated subset of: put1 put16 put256 get256 sget256
#              (default: all five, in that order)
#   KEEP_LOGS  if set, member logs are copied to this directory at exit
#   BENCH_HOLD if set, run nothing and keep the cluster up until killed
#              (prints the endpoints and PIDs; for profiling by hand)
#
# Every server runs with the same durability (fsync on, no unsafe flags),
# the same timing flags and the same snapshot count, each member in a fresh
# temporary data directory. Ports are picked by the kernel (bind to port 0,
# all sockets held open until every port is chosen, so none repeats); there
# is a small window in which another process could take one, which on a
# benchmark machine is acceptable. Everything started here is stopped by
# PID, and the temporary directory removed, on exit.
#
# Output lines look like
#   workload=put256 members=3 bin=ensemble op=put clients=256 conns=16 ops=... throughput=.../s p50=... p99=...
# Reads (get256, sget256) first fill 10,000 keys with one client (that is
# ensemble-load's behaviour); the fill is not timed.
set -euo pipefail

: "${BIN:?set BIN to the server binary}"
: "${LOAD:?set LOAD to the built ensemble-load}"
MEMBERS=${MEMBERS:-3}
DURATION=${DURATION:-10s}
HEARTBEAT=${HEARTBEAT:-100}
ELECTION=${ELECTION:-1000}
WORKLOADS=${WORKLOADS:-"put1 put16 put256 get256 sget256"}

[[ -x $BIN ]] || { echo "run.sh: BIN $BIN is not executable" >&2; exit 2; }
[[ -x $LOAD ]] || { echo "run.sh: LOAD $LOAD is not executable" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")
PIDS=()

cleanup() {
	local rc=$?
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	# Give graceful shutdown a moment, then make sure.
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n ${KEEP_LOGS:-} ]]; then
		mkdir -p "$KEEP_LOGS"
		cp "$TMP"/*.log "$KEEP_LOGS"/ 2>/dev/null || true
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Two ports per member, from the kernel.
mapfile -t PORTS < <(python3 - "$((2 * MEMBERS))" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
EOF
)

cluster=""
for ((i = 0; i < MEMBERS; i++)); do
	cluster+="${cluster:+,}m$i=http://127.0.0.1:${PORTS[2 * i + 1]}"
done
endpoints=""
for ((i = 0; i < MEMBERS; i++)); do
	endpoints+="${endpoints:+,}127.0.0.1:${PORTS[2 * i]}"
done

# Ensemble would also serve ZooKeeper on its default port; these workloads
# do not use it, and several members could not all have it.
extra=()
if "$BIN" --help 2>&1 | grep -q -- --listen-zk-addr; then
	extra=(--listen-zk-addr "")
fi

for ((i = 0; i < MEMBERS; i++)); do
	cport=${PORTS[2 * i]}
	pport=${PORTS[2 * i + 1]}
	"$BIN" \
		--name "m$i" \
		--data-dir "$TMP/m$i" \
		--listen-client-urls "http://127.0.0.1:$cport" \
		--advertise-client-urls "http://127.0.0.1:$cport" \
		--listen-peer-urls "http://127.0.0.1:$pport" \
		--initial-advertise-peer-urls "http://127.0.0.1:$pport" \
		--initial-cluster "$cluster" \
		--initial-cluster-token "bench-$$" \
		--initial-cluster-state new \
		--heartbeat-interval "$HEARTBEAT" \
		--election-timeout "$ELECTION" \
		--snapshot-count 10000 \
		"${extra[@]}" \
		>"$TMP/m$i.log" 2>&1 &
	PIDS+=($!)
done

# Serving means a write is acknowledged: that needs a leader and a quorum.
ready=""
for _ in $(seq 60); do
	for pid in "${PIDS[@]}"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "run.sh: member $pid exited early; its log:" >&2
			tail -n 20 "$TMP"/*.log >&2
			exit 1
		fi
	done
	out=$("$LOAD" --endpoints "$endpoints" --op put --clients 1 --conns 1 --duration 500ms 2>/dev/null || true)
	if [[ $out =~ ops=([0-9]+)\ errors=0 ]] && ((BASH_REMATCH[1] > 0)); then
		ready=1
		break
	fi
	sleep 0.5
done
if [[ -z $ready ]]; then
	echo "run.sh: cluster did not serve writes within 60 tries; logs:" >&2
	tail -n 20 "$TMP"/*.log >&2
	exit 1
fi

name=$(basename "$BIN")
if [[ -n ${BENCH_HOLD:-} ]]; then
	echo "endpoints=$endpoints pids=${PIDS[*]} logs=$TMP"
	# wait, unlike a foreground sleep, returns at once on a signal, so the
	# EXIT trap runs as soon as we are told to stop.
	while :; do
		sleep 3600 &
		PIDS+=($!)
		wait "$!"
	done
fi

for w in $WORKLOADS; do
	case $w in
	put1) args=(--op put --clients 1 --conns 1) ;;
	put16) args=(--op put --clients 16 --conns 1) ;;
	put256) args=(--op put --clients 256 --conns 16) ;;
	get256) args=(--op get --clients 256 --conns 16) ;;
	sget256) args=(--op sget --clients 256 --conns 16) ;;
	*)
		echo "run.sh: unknown workload $w" >&2
		exit 2
		;;
	esac
	line=$("$LOAD" --endpoints "$endpoints" --duration "$DURATION" "${args[@]}")
	echo "workload=$w members=$MEMBERS bin=$name $line"
done
