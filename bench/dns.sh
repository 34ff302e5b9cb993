#!/usr/bin/env bash
# knet up --dns vs knotd, serving the same 1,000 Service names, measured by dnsperf in one run.
#
#   bench/dns.sh                          # dnsperf -c 4 -l 10 against each server in turn
#   SERVICES=1000 DURATION=10 ROUNDS=1 bench/dns.sh
#
# knet: `knet up -f <generated topology> --dns 127.0.0.1:0` (1,000 ClusterIP Services in
# namespace bench); answers come from the live cluster DNS view (CoreDNS kubernetes-plugin
# semantics, cache on). knot: knotd with a cluster.local zone file holding the same A records,
# built from knet's own Services through its control endpoint (bench/dns_inputs.py zone).
# The query file is every svc-N.bench.svc.cluster.local A, in order, cycled by dnsperf.
# Pinning (2+ CPUs): dnsperf on CPU 0, the server under test on CPU 1 (knotd's workers share it).
# Everything listens on 127.0.0.1 only; everything started is stopped and removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
KNET=${KNET:-.venv/bin/knet}
SERVICES=${SERVICES:-1000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-1}
for tool in dnsperf knotd dig; do
  command -v "$tool" >/dev/null || { echo "dns bench: $tool is not installed" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/knet-dns-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

SERVER_CPU=() CLIENT_CPU=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  SERVER_CPU=(taskset -c 1) CLIENT_CPU=(taskset -c 0)
fi

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$PY" bench/dns_inputs.py topology "$TMP" --services "$SERVICES"

# --- knet up --------------------------------------------------------------------------------
"${SERVER_CPU[@]}" "$KNET" up -f "$TMP/topology.yaml" --dns 127.0.0.1:0 --no-nodeports \
  >"$TMP/knet.out" 2>"$TMP/knet.err" &
PIDS+=($!)
for _ in $(seq 1 240); do
  grep -q '^up;' "$TMP/knet.out" 2>/dev/null && break
  kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$TMP/knet.err" >&2; exit 1; }
  sleep 0.5
done
grep -q '^up;' "$TMP/knet.out" || { echo "dns bench: knet up did not come up" >&2; exit 1; }
KNET_PORT=$(awk '$1 == "DNS" {split($2, a, ":"); print a[2]}' "$TMP/knet.out")
CONTROL=$(awk '$1 == "CONTROL" {print "http://" $2}' "$TMP/knet.out")
head -1 "$TMP/knet.out"

# --- knotd with the same names --------------------------------------------------------------
"$PY" bench/dns_inputs.py zone "$CONTROL" "$TMP/cluster.local.zone"
KNOT_PORT=$(free_port)
mkdir -p "$TMP/knot"
cat >"$TMP/knot.conf" <<EOF
server:
    rundir: "$TMP/knot"
    listen: 127.0.0.1@$KNOT_PORT
database:
    storage: "$TMP/knot"
log:
  - target: stderr
    any: warning
zone:
  - domain: cluster.local
    file: "$TMP/cluster.local.zone"
EOF
"${SERVER_CPU[@]}" knotd -c "$TMP/knot.conf" 2>"$TMP/knot.err" &
PIDS+=($!)
for _ in $(seq 1 50); do
  dig +time=1 +tries=1 @127.0.0.1 -p "$KNOT_PORT" svc-0.bench.svc.cluster.local +short \
    2>/dev/null | grep -q . && break
  sleep 0.2
done

a=$(dig +time=2 @127.0.0.1 -p "$KNET_PORT" svc-7.bench.svc.cluster.local +short)
b=$(dig +time=2 @127.0.0.1 -p "$KNOT_PORT" svc-7.bench.svc.cluster.local +short)
echo "svc-7.bench.svc.cluster.local: knet $a, knot $b"
[ -n "$a" ] && [ "$a" = "$b" ] || { echo "dns bench: the servers disagree" >&2; exit 1; }

qps() {  # port → best queries/s over ROUNDS
  local best=0 q
  for _ in $(seq 1 "$ROUNDS"); do
    q=$("${CLIENT_CPU[@]}" dnsperf -s 127.0.0.1 -p "$1" -d "$TMP/queries.txt" -c 4 -l "$DURATION" \
        2>&1 | awk '/Queries per second/ {print $4}')
    best=$(awk -v a="$best" -v b="${q:-0}" 'BEGIN {print (b > a) ? b : a}')
  done
  echo "$best"
}

knet_qps=$(qps "$KNET_PORT")
knot_qps=$(qps "$KNOT_PORT")
printf '\n%-40s %12s\n' "dnsperf -c 4 -l $DURATION ($SERVICES names)" "queries/s"
printf '%-40s %12.0f\n' "knet up --dns (CoreDNS view, cache)" "$knet_qps"
printf '%-40s %12.0f\n' "knotd (zone file)" "$knot_qps"
awk -v k="$knet_qps" -v n="$knot_qps" \
  'BEGIN {r = (n > 0) ? k / n : 0; printf "ratio knet/knot: %.2f (goal >= 0.50)\n", r}'
