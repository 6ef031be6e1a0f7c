#!/usr/bin/env bash
# A private certificate authority for a small site, and the broker's certificate signed by it.
#   deploy/tls/make-ca.sh OUT_DIR BROKER_NAME [BROKER_IP]
# Agents and the controller trust OUT_DIR/ca.crt (agent: tls_ca; controller: CLASSFLEET_MQTT_CA_FILE);
# Mosquitto uses broker.crt and broker.key. Keep ca.key offline once the broker certificate is made.
set -euo pipefail
out=${1:?usage: make-ca.sh OUT_DIR BROKER_NAME [BROKER_IP]}
name=${2:?usage: make-ca.sh OUT_DIR BROKER_NAME [BROKER_IP]}
ip=${3:-}
mkdir -p "$out"
umask 077
openssl req -x509 -newkey rsa:3072 -sha256 -days 3650 -nodes -subj "/CN=classfleet private CA" \
  -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
san="DNS:$name"
[ -n "$ip" ] && san="$san,IP:$ip"
openssl req -newkey rsa:3072 -sha256 -nodes -subj "/CN=$name" -keyout "$out/broker.key" -out "$out/broker.csr" \
  2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" > "$out/broker.ext"
openssl x509 -req -sha256 -days 825 -in "$out/broker.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
  -CAcreateserial -extfile "$out/broker.ext" -out "$out/broker.crt" 2>/dev/null
rm -f "$out/broker.csr" "$out/broker.ext"
chmod 644 "$out/ca.crt" "$out/broker.crt"
echo "CA: $out/ca.crt   broker: $out/broker.crt, $out/broker.key"
