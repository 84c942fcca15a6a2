#!/usr/bin/env bash
# Start the services the tests need if they are down (commands of this machine's image).
set -uo pipefail

up() { timeout 2 bash -c "</dev/tcp/127.0.0.1/$1" 2>/dev/null; }
wait_for() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do up "$port" && { echo "$name is up on :$port"; return 0; }; sleep 0.5; done
  echo "$name did not come up on :$port" >&2; return 1
}

if ! up 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
wait_for 5432 PostgreSQL

if ! up 1883; then
  echo "starting Mosquitto"
  command -v mosquitto >/dev/null || { apt-get update -qq && apt-get install -y -qq mosquitto; }
  mosquitto -d -c /etc/mosquitto/mosquitto.conf
fi
wait_for 1883 Mosquitto
