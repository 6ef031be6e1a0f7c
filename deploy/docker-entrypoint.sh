#!/bin/sh
# Turns secret files into environment variables, then runs the command (default: the controller).
# Every file in CLASSFLEET_SECRETS_DIR (default /run/secrets) whose name is an environment variable
# name (CLASSFLEET_METRICS_TOKEN, CLASSFLEET_MQTT_PASSWORD, PGPASSWORD, ...) becomes that variable,
# unless the variable is already set. Secrets thus never appear in compose files or `docker inspect`.
set -eu
dir="${CLASSFLEET_SECRETS_DIR:-/run/secrets}"
if [ -d "$dir" ]; then
  for path in "$dir"/*; do
    [ -f "$path" ] || continue
    name=$(basename "$path")
    case "$name" in
      *[!A-Za-z0-9_]* | [0-9]*) continue ;;  # not a variable name (e.g. grafana_admin_password stays a file)
    esac
    case "$name" in
      CLASSFLEET_* | PG*) ;;
      *) continue ;;
    esac
    if eval "[ -z \"\${$name+set}\" ]"; then
      value=$(cat "$path")
      export "$name=$value"
    fi
  done
fi
exec "$@"
