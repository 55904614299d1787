#!/usr/bin/env bash
# zk.sh: start a throw-away cluster of Ensemble or of Apache ZooKeeper on
# loopback and run ZooKeeper workloads against it with cmd/ensemble-load, one
# result line per workload, so that both can be compared on one machine.
#
# Usage:
#   BIN=/tmp/bench/ensemble LOAD=/tmp/bench/ensemble-load tools/bench/zk.sh
#   ZOOKEEPER=1              LOAD=/tmp/bench/ensemble-load tools/bench/zk.sh
#
# Environment:
#   BIN        the ensemble binary (unless ZOOKEEPER is set)
#   ZOOKEEPER  if set, run Apache ZooKeeper instead (java and
#              /usr/share/java/zookeeper.jar, e.g. Debian's zookeeper package)
#   LOAD       built cmd/ensemble-load (required)
#   MEMBERS    cluster size (default 3)
#   DURATION   length of each workload (default 10s)
#   WORKLOADS  subset of: create1 create64 set64 get64 create256 set256
#              (default: the first four)
#
# Both run with the same durability: ZooKeeper's default forceSync=yes (its
# transaction log is fsynced before a write is acknowledged) and Ensemble's
# WAL fsync. ZooKeeper gets tickTime 2000 and initLimit/syncLimit 10/5, its
# defaults in zoo_sample.cfg; snapshots every 100,000 transactions (its
# default) and Ensemble's default --snapshot-count. Clients connect to every
# member (the session list), as they do in production. Everything started
# here is stopped by PID and its temporary directory removed on exit.
set -euo pipefail

: "${LOAD:?set LOAD to the built ensemble-load}"
MEMBERS=${MEMBERS:-3}
DURATION=${DURATION:-10s}
WORKLOADS=${WORKLOADS:-"create1 create64 set64 get64"}
if [[ -z ${ZOOKEEPER:-} ]]; then
	: "${BIN:?set BIN to the ensemble binary, or ZOOKEEPER=1}"
	[[ -x $BIN ]] || { echo "zk.sh: BIN $BIN is not executable" >&2; exit 2; }
fi
[[ -x $LOAD ]] || { echo "zk.sh: LOAD $LOAD is not executable" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/zkbench.XXXXXX")
PIDS=()
cleanup() {
	local rc=$?
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Three ports per member, from the kernel.
mapfile -t PORTS < <(python3 - "$((3 * MEMBERS))" <<'EOF'
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

servers=""
for ((i = 0; i < MEMBERS; i++)); do
	servers+="${servers:+,}127.0.0.1:${PORTS[3 * i]}"
done

if [[ -n ${ZOOKEEPER:-} ]]; then
	name=zookeeper
	for ((i = 0; i < MEMBERS; i++)); do
		d="$TMP/z$i"
		mkdir -p "$d/data"
		echo $((i + 1)) >"$d/data/myid"
		{
			echo "tickTime=2000"
			echo "initLimit=10"
			echo "syncLimit=5"
			echo "dataDir=$d/data"
			echo "clientPort=${PORTS[3 * i]}"
			echo "clientPortAddress=127.0.0.1"
			echo "maxClientCnxns=0"
			echo "admin.enableServer=false"
			echo "4lw.commands.whitelist=srvr,ruok"
			if ((MEMBERS > 1)); then
				for ((j = 0; j < MEMBERS; j++)); do
					echo "server.$((j + 1))=127.0.0.1:${PORTS[3 * j + 1]}:${PORTS[3 * j + 2]}"
				done
			fi
		} >"$d/zoo.cfg"
		java -Xmx1g -cp "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/*" \
			-Dzookeeper.log.dir="$d" -Dzookeeper.root.logger=WARN,CONSOLE \
			org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" >"$TMP/z$i.log" 2>&1 &
		PIDS+=($!)
	done
else
	name=ensemble
	cluster=""
	for ((i = 0; i < MEMBERS; i++)); do
		cluster+="${cluster:+,}m$i=http://127.0.0.1:${PORTS[3 * i + 2]}"
	done
	for ((i = 0; i < MEMBERS; i++)); do
		"$BIN" --name "m$i" --data-dir "$TMP/m$i" \
			--listen-client-urls "http://127.0.0.1:${PORTS[3 * i + 1]}" \
			--advertise-client-urls "http://127.0.0.1:${PORTS[3 * i + 1]}" \
			--listen-peer-urls "http://127.0.0.1:${PORTS[3 * i + 2]}" \
			--initial-advertise-peer-urls "http://127.0.0.1:${PORTS[3 * i + 2]}" \
			--listen-zk-addr "127.0.0.1:${PORTS[3 * i]}" \
			--initial-cluster "$cluster" --initial-cluster-token "zkbench-$$" \
			--initial-cluster-state new >"$TMP/m$i.log" 2>&1 &
		PIDS+=($!)
	done
fi

# Serving means a write is acknowledged through the ZooKeeper port.
ready=""
for _ in $(seq 60); do
	out=$("$LOAD" --zk-servers "$servers" --op zk-create --clients 1 --conns 1 --duration 500ms 2>/dev/null || true)
	if [[ $out =~ ops=([0-9]+)\ errors=0 ]] && ((BASH_REMATCH[1] > 0)); then
		ready=1
		break
	fi
	sleep 1
done
if [[ -z $ready ]]; then
	echo "zk.sh: cluster did not serve writes; logs:" >&2
	tail -n 20 "$TMP"/*.log >&2
	exit 1
fi

for w in $WORKLOADS; do
	case $w in
	create1) args=(--op zk-create --clients 1 --conns 1) ;;
	create64) args=(--op zk-create --clients 64 --conns 64) ;;
	set64) args=(--op zk-set --clients 64 --conns 64) ;;
	get64) args=(--op zk-get --clients 64 --conns 64) ;;
	create256) args=(--op zk-create --clients 256 --conns 256) ;;
	set256) args=(--op zk-set --clients 256 --conns 256) ;;
	*)
		echo "zk.sh: unknown workload $w" >&2
		exit 2
		;;
	esac
	line=$("$LOAD" --zk-servers "$servers" --duration "$DURATION" "${args[@]}")
	echo "workload=$w members=$MEMBERS server=$name $line"
done
