#!/usr/bin/env bash
# Start a local chain (anvil) and deploy the Marketplace on it; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${SEEDMARKET_ANVIL_PORT:-8545}"
mkdir -p .data
anvil --port "$PORT" --silent --state .data/anvil-state.json &
ANVIL=$!
trap 'kill $ANVIL 2>/dev/null; wait $ANVIL 2>/dev/null' EXIT INT TERM
for _ in $(seq 50); do
  curl -sf -X POST -H 'content-type: application/json' \
    --data '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "http://127.0.0.1:$PORT" >/dev/null && break
  sleep 0.2
done
ape run deploy marketplace --network "http://127.0.0.1:$PORT" --account TEST::0 --root-delay 60
echo "anvil is running at http://127.0.0.1:$PORT (Ctrl-C to stop)"
wait $ANVIL
