#!/usr/bin/env bash
# The production footprint: what deploy/install.sh puts on a device (its copy of the application
# and `npm ci --omit=dev`), its size, and the daemon's resident memory once it is online.
# Usage: scripts/footprint.sh MODEL.gguf   (run after `npm run build`; it uses npm's cache)
set -euo pipefail
cd "$(dirname "$0")/.."
model="$(realpath "${1:?usage: scripts/footprint.sh MODEL.gguf}")"
[[ -f dist/main.js ]] || { echo "dist/main.js is missing: run npm run build first" >&2; exit 1; }

app="$(mktemp -d)"
pid=""
broker=""
trap 'kill $pid $broker 2>/dev/null || true; rm -rf "$app"' EXIT
# The files install.sh copies (deploy/install.sh, "Copying the application").
for item in package.json package-lock.json dist config systemd deploy README.md LICENSE; do
  [[ -e "$item" ]] && cp -R "$item" "$app/"
done
(cd "$app" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)

echo "installed size:      $(du -sm "$app" | cut -f1) MB (node_modules $(du -sm "$app/node_modules" | cut -f1) MB, dist $(du -sm "$app/dist" | cut -f1) MB)"
echo "bench code in it:    $(find "$app" -not -path '*/node_modules/*' \( -path '*bench*' -o -name '*synthetic*' -o -name 'gguf-writer*' -o -name 'make-model*' \) | wc -l) files (the benchmark and the synthetic model writer)"

# A broker of its own on a free port (never 1883, which may be the house's).
port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
mosquitto="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
"$mosquitto" -p "$port" >/dev/null 2>&1 &
broker=$!
sleep 0.5
log="$app/daemon.log"
UV_THREADPOOL_SIZE=1 NODE_OPTIONS=--max-semi-space-size=2 MALLOC_MMAP_THRESHOLD_=131072 node "$app/dist/main.js" start --log.pretty never --mqtt.embeddedBroker never \
  --mqtt.url "mqtt://127.0.0.1:$port" --model.path "$model" \
  --runtime.threads 2 --runtime.autotune false --homeassistant.enabled false \
  --state.dir "$app/state" >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  grep -q '"msg":"online"' "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
grep -q '"msg":"online"' "$log" || { echo "the daemon did not come online" >&2; tail -5 "$log" >&2; exit 1; }
sleep 1
echo "daemon start RSS:    $(awk '/^VmRSS/ {printf "%.0f MB", $2/1024}' "/proc/$pid/status") (model $(du -m "$model" | cut -f1) MB, $(basename "$model"))"
