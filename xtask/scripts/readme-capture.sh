#!/usr/bin/env bash
# Captures the README's example outputs from this build, as root. Everything runs in two private
# network namespaces joined by a veth pair (pst-demo 10.232.0.1/24 with the servers and an
# nftables firewall, pst-peer 10.232.0.2/24 as a client), removed at the end; nothing touches the
# root namespace's interfaces or firewall.
#   xtask/scripts/readme-capture.sh [target/release/portstat] > /tmp/readme-outputs.txt
set -euo pipefail
bin=$(realpath "${1:-target/release/portstat}")
demo=pst-demo peer=pst-peer
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    ip netns del "$demo" 2>/dev/null || true
    ip netns del "$peer" 2>/dev/null || true
    rm -rf /tmp/portstat-demo
}
trap cleanup EXIT
ip netns add "$demo"
ip netns add "$peer"
ip link add name pd0 netns "$demo" type veth peer name pd1 netns "$peer"
ip -n "$demo" addr add 10.232.0.1/24 dev pd0
ip -n "$peer" addr add 10.232.0.2/24 dev pd1
for ns in "$demo" "$peer"; do ip -n "$ns" link set lo up; done
ip -n "$demo" link set pd0 up
ip -n "$peer" link set pd1 up
ip netns exec "$demo" nft -f - <<'NFT'
table inet filter {
  chain input {
    type filter hook input priority filter; policy accept;
    ct state established,related accept
    iif lo accept
    tcp dport 6379 drop
    tcp dport 5432 ip saddr 10.232.0.0/24 accept
    tcp dport 5432 drop
  }
}
NFT
in_demo() { ip netns exec "$demo" "$@"; }
work=/tmp/portstat-demo
rm -rf "$work"; mkdir -p "$work"
echo hello > "$work/index.html"
(cd "$work" && exec ip netns exec "$demo" python3 -m http.server 8080 --bind 0.0.0.0 >/dev/null 2>&1) &
# The demo servers: one small script each, so their command lines read as what they stand for.
cat > "$work/listen.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(128)
held = []
while True:
    c, _ = s.accept(); held.append(c)
PY
listen() { # NAME HOST PORT: a server that accepts and holds connections
    (cd "$work" && exec ip netns exec "$demo" python3 listen.py "$2" "$3") &
}
listen redis 0.0.0.0 6379
listen postgres 0.0.0.0 5432
in_demo python3 -c "
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(('::', 5353)); time.sleep(3600)" &
sleep 1
# A client from the peer and one from loopback, held open.
ip netns exec "$peer" python3 -c "
import socket, time
c = socket.create_connection(('10.232.0.1', 5432)); time.sleep(3600)" &
in_demo python3 -c "
import socket, time
c = socket.create_connection(('127.0.0.1', 5432)); time.sleep(3600)" &
sleep 1
in_demo curl -s -o /dev/null http://127.0.0.1:8080/ 2>/dev/null || in_demo python3 -c "
import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/').read()"
show() { echo "\$ portstat $*"; in_demo "$bin" "$@" 2>&1 || echo "(exit status $?)"; echo; }
show
show -a 8080
show -l --firewall
show -t -i 5432
show who 8080
show who 6379
show audit
show audit --listeners
show summary
show metrics --leave-out unit,container,netns
