#!/usr/bin/env bash
# Random secrets for deploy/compose.yaml, one file each, never overwriting one that exists.
#   deploy/make-secrets.sh [DIR]   (default: deploy/secrets; set CLASSFLEET_SECRETS_DIR to the same)
# The directory is 0700 (only root/the operator on the host); the files are 0644 because compose
# bind-mounts them into containers whose users (classfleet 10001, prometheus 65534, grafana 472)
# must read them. Back the directory up with the database: the controller's MQTT password and the
# session key live only here.
set -euo pipefail
dir=${1:-"$(dirname "$0")/secrets"}
install -d -m 0700 "$dir"
for name in PGPASSWORD CLASSFLEET_MQTT_PASSWORD CLASSFLEET_METRICS_TOKEN CLASSFLEET_SECRET_KEY grafana_admin_password; do
  path="$dir/$name"
  if [ -s "$path" ]; then
    echo "kept    $path"
    continue
  fi
  (umask 022; openssl rand -hex 32 > "$path")
  chmod 0644 "$path"
  echo "created $path"
done
