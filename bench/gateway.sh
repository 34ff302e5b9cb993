#!/usr/bin/env bash
# knet's Gateway data plane vs nginx as a reverse proxy, same backend, same load, same CPU
# pinning as bench/ingress.sh.
#
#   bench/gateway.sh                 # wrk -t1 -c32 -d10s against each proxy, one after the other
#   DURATION=5s CONNS=64 ROUNDS=2 bench/gateway.sh
#   PIN=0 bench/gateway.sh           # no CPU pinning
#
# Backend: an nginx (one worker) on 127.0.0.1 answering every request with a small echo-like
# JSON body (method, URI, Host, X-Request-ID, X-Forwarded-For as received).
# knet: bench/gateway_serve.py, the GatewayProxy the data-plane pods of `knet up --gateway`
# run: standalone on loopback, tables compiled from a topology (a Gateway with an HTTP
# listener, an HTTPRoute for host bench.local with a RequestHeaderModifier, a selectorless
# Service + EndpointSlice pointing at the backend's 127.0.0.1:PORT).
# nginx: one worker as a reverse proxy with ingress-nginx's proxy settings (upstream keepalive
# 320, HTTP/1.1 upstream, X-Request-ID/X-Real-IP/X-Forwarded-* headers, proxy_buffering off).
# Pinning (2+ CPUs): wrk on CPU 0; the proxy under test and the backend share CPU 1.
# Everything listens on 127.0.0.1 only; all processes are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-1}
for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || { echo "gateway bench: $tool is not installed" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/knet-gateway-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(nproc)" -ge 2 ] && [ "${PIN:-1}" != 0 ]; then
  PIN_WRK=(taskset -c 0); PIN_SRV=(taskset -c 1)
else
  PIN_WRK=(); PIN_SRV=()
fi

read -r BACKEND_PORT NGINX_PORT KNET_PORT < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)

USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"
common() {  # $1 = name
  cat <<EOF
$USER_LINE
worker_processes 1;
pid $TMP/$1.pid;
error_log $TMP/$1.err warn;
events { worker_connections 4096; }
EOF
}
temps() {  # $1 = name, $2 = keepalive_requests (ingress-nginx keep-alive-requests: 1000)
  cat <<EOF
  access_log off;
  server_tokens off;
  keepalive_requests $2;
  keepalive_timeout 75s;
  client_body_temp_path $TMP/$1-body;
  proxy_temp_path $TMP/$1-proxy;
  fastcgi_temp_path $TMP/$1-fcgi;
  uwsgi_temp_path $TMP/$1-uwsgi;
  scgi_temp_path $TMP/$1-scgi;
EOF
}

{ common backend; echo "http {"; temps backend 1000000; cat <<EOF
  server {
    listen 127.0.0.1:$BACKEND_PORT;
    location / {
      default_type application/json;
      return 200 '{"method":"\$request_method","uri":"\$request_uri","host":"\$http_host","request_id":"\$http_x_request_id","xff":"\$http_x_forwarded_for"}\n';
    }
  }
}
EOF
} > "$TMP/backend.conf"

{ common proxy; echo "http {"; temps proxy 1000; cat <<EOF
  upstream default-backend-80 {
    server 127.0.0.1:$BACKEND_PORT;
    keepalive 320;
    keepalive_requests 10000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    server_name bench.local;
    location / {
      proxy_http_version 1.1;
      proxy_buffering off;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Request-ID \$request_id;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Forwarded-Port 80;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Scheme \$scheme;
      proxy_set_header X-Scheme \$scheme;
      proxy_set_header Proxy "";
      proxy_pass http://default-backend-80;
    }
  }
}
EOF
} > "$TMP/proxy.conf"

cat > "$TMP/topology.yaml" <<EOF
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bench, namespace: default}
spec:
  gatewayClassName: knet
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bench, namespace: default}
spec:
  parentRefs: [{name: bench}]
  hostnames: [bench.local]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Forwarded-For, value: 127.0.0.1}]}
    backendRefs: [{name: backend, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: $BACKEND_PORT}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: backend-loopback
  namespace: default
  labels: {kubernetes.io/service-name: backend}
addressType: IPv4
ports: [{name: http, port: $BACKEND_PORT, protocol: TCP}]
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: {ready: true}
EOF

"${PIN_SRV[@]}" nginx -p "$TMP" -c "$TMP/backend.conf" -g 'daemon off;' &
PIDS+=($!)
"${PIN_SRV[@]}" nginx -p "$TMP" -c "$TMP/proxy.conf" -g 'daemon off;' &
PIDS+=($!)
"${PIN_SRV[@]}" "$PY" bench/gateway_serve.py -f "$TMP/topology.yaml" --gateway default/bench \
  --listen "127.0.0.1:$KNET_PORT" > "$TMP/knet.out" 2> "$TMP/knet.err" &
PIDS+=($!)

wait_up() {  # $1 = port
  for _ in $(seq 150); do
    if curl -s -o /dev/null --noproxy '*' -m 1 -H 'Host: bench.local' "http://127.0.0.1:$1/"; then
      return 0
    fi
    sleep 0.1
  done
  echo "gateway bench: nothing answers on 127.0.0.1:$1" >&2
  cat "$TMP"/*.err >&2 || true
  exit 1
}
wait_up "$BACKEND_PORT"; wait_up "$NGINX_PORT"; wait_up "$KNET_PORT"

check() {  # $1 = name, $2 = port
  local out
  out=$(curl -s -i --noproxy '*' -m 2 -H 'Host: bench.local' -H 'X-Forwarded-For: 6.6.6.6' \
        "http://127.0.0.1:$2/check?x=1")
  case "$out" in
    "HTTP/1.1 200"*'"uri":"/check?x=1"'*'"xff":"127.0.0.1"'*) ;;
    *) echo "gateway bench: $1 answered unexpectedly:" >&2; echo "$out" >&2; exit 1 ;;
  esac
}
check knet "$KNET_PORT"; check nginx "$NGINX_PORT"

run_wrk() {  # $1 = port, $2 = duration → requests/s
  local out
  out=$("${PIN_WRK[@]}" wrk -t1 -c"$CONNS" -d"$2" -H 'Host: bench.local' "http://127.0.0.1:$1/bench")
  if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
    echo "gateway bench: errors during the run on port $1:" >&2; echo "$out" >&2
  fi
  awk '/^Requests\/sec:/ {print $2}' <<<"$out"
}

# warm-up (connections, caches, CPU frequency)
run_wrk "$KNET_PORT" 1s >/dev/null
run_wrk "$NGINX_PORT" 1s >/dev/null

best_knet=0; best_nginx=0
for r in $(seq "$ROUNDS"); do
  k=$(run_wrk "$KNET_PORT" "$DURATION")
  n=$(run_wrk "$NGINX_PORT" "$DURATION")
  echo "round $r: knet $k req/s, nginx $n req/s"
  best_knet=$(awk -v a="$best_knet" -v b="$k" 'BEGIN {print (b > a) ? b : a}')
  best_nginx=$(awk -v a="$best_nginx" -v b="$n" 'BEGIN {print (b > a) ? b : a}')
done

printf '\n%-34s %12s\n' "wrk -t1 -c$CONNS -d$DURATION (best of $ROUNDS)" "requests/s"
printf '%-34s %12.0f\n' "knet gateway → nginx backend" "$best_knet"
printf '%-34s %12.0f\n' "nginx proxy  → nginx backend" "$best_nginx"
awk -v k="$best_knet" -v n="$best_nginx" \
  'BEGIN {r = (n > 0) ? k / n : 0; printf "ratio knet/nginx: %.2f (goal >= 0.50)\n", r}'
