#!/usr/bin/env bash
# Start gridhive on a scratch SQLite file, create one key per door, and let schemathesis throw
# generated input at every operation with each key. Any 5xx fails the run.
set -euo pipefail
work=$(mktemp -d)
db="sqlite:///$work/schemathesis.db"
# A free port, so that two runs on one machine never collide.
port=$(python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
export GRIDHIVE_DATABASE_URL="$db" GRIDHIVE_LOG_LEVEL=WARNING

utility=$(gridhive admin create-org --kind utility --name "Fuzz Utility" --json | python -c 'import json,sys;print(json.load(sys.stdin)["id"])')
oem=$(gridhive admin create-org --kind oem --name "Fuzz OEM" --json | python -c 'import json,sys;print(json.load(sys.stdin)["id"])')
key_of() { gridhive admin create-key --org "$1" --json | python -c 'import json,sys;print(json.load(sys.stdin)["key"])'; }
utility_key=$(key_of "$utility")
oem_key=$(key_of "$oem")
admin_key=$(gridhive admin create-admin-key --json | python -c 'import json,sys;print(json.load(sys.stdin)["key"])')

gridhive serve --port "$port" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.5; done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "server did not start"; cat "$work/server.log"; exit 1; }

status=0
for key in "$oem_key" "$utility_key" "$admin_key"; do
  schemathesis run "http://127.0.0.1:$port/openapi.json" \
    --checks not_a_server_error --max-examples "${SCHEMATHESIS_EXAMPLES:-25}" --seed 1 \
    --header "Authorization: Bearer $key" --request-timeout 10 --no-color || status=1
done
if [ $status -ne 0 ]; then
  echo "server log:"; tail -50 "$work/server.log"
fi
exit $status
