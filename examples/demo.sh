#!/usr/bin/env bash
# The README's demo: installs what the lab needs, starts a 3-node lab cluster (real sshd per node, HAProxy in
# front, MySQL-style database, customized server.xml and setenv.sh), then upgrades it to the next bug-fix
# version with `confluo upgrade`, under traffic through the load balancer: the lab's inventory names HAProxy, so
# each node is drained and out of its pool before it stops, and back once it serves. KEEP_LAB=1 keeps the lab.
set -euo pipefail
cd "$(dirname "$0")/.."

# OS packages and a virtual environment (.venv) made with the system's own Python; .venv/bin then leads PATH.
# shellcheck source=../.ci/setup.sh
source .ci/setup.sh
confluo_setup ""

LAB=${LAB_DIR:-/tmp/confluo-demo-lab}
confluo lab down --dir "$LAB" >/dev/null 2>&1 || true
rm -rf "$LAB"; mkdir -p "$(dirname "$LAB")"
trap '[ "${KEEP_LAB:-0}" = 1 ] || confluo lab down --dir "$LAB"' EXIT

echo "== confluo lab up"
confluo lab up --dir "$LAB"
NEXT=$(python -c 'import json,sys; print(json.load(sys.stdin)["next_version"])' < <(confluo lab status --dir "$LAB" --json))
LB=$(python -c 'import json,sys; print(json.load(sys.stdin)["lb"]["url"])' < <(confluo lab status --dir "$LAB" --json))

echo "== confluo plan (changes nothing)"
confluo plan -i "$LAB/inventory.yaml" --to "$NEXT" | head -60

echo "== confluo upgrade, while a client keeps reading pages through the load balancer"
python - "$LB" > "$LAB/traffic.txt" <<'PY' &
import sys, time, urllib.request, urllib.error
url, ok, failed, until = sys.argv[1], 0, 0, time.time() + 600
while time.time() < until:
    try:
        with urllib.request.urlopen(url + "/", timeout=5) as response:
            ok += response.status == 200
    except (urllib.error.URLError, OSError):
        failed += 1
    print(ok, failed, flush=True)
    time.sleep(0.05)
PY
TRAFFIC=$!
confluo upgrade -i "$LAB/inventory.yaml" --to "$NEXT" --yes
kill "$TRAFFIC" 2>/dev/null || true; wait "$TRAFFIC" 2>/dev/null || true
read -r OK FAILED < <(tail -n 1 "$LAB/traffic.txt")
echo "traffic through the load balancer during the upgrade: $OK answered, $FAILED failed"

echo "== confluo status"
confluo status -i "$LAB/inventory.yaml"
confluo lb status -i "$LAB/inventory.yaml"
confluo lab status --dir "$LAB"
