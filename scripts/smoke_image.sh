#!/usr/bin/env bash
# The image's own smoke test: `mailings migrate` in one container, the image's
# default command (the API) in another on the same data volume, both as
# docker-compose.yml runs them (read-only root, no capabilities), until
# /readyz answers. The release workflow runs it before publishing, CI on
# every push; locally: docker build -t mailings . && scripts/smoke_image.sh mailings
set -euo pipefail
image="${1:?usage: scripts/smoke_image.sh IMAGE}"
name="mailings-smoke-$$"
hardened=(--read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges:true
  -v "$name:/app/data")

cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker volume rm "$name" >/dev/null 2>&1 || true
}
trap cleanup EXIT

docker volume create "$name" >/dev/null
docker run --rm "${hardened[@]}" "$image" mailings migrate
docker run -d --name "$name" "${hardened[@]}" "$image" >/dev/null

# The probe docker-compose.yml's health check runs, from inside the container.
probe="import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=3)"
for _ in $(seq 120); do
  if [ "$(docker inspect -f '{{.State.Running}}' "$name")" != "true" ]; then
    echo "the API container stopped:" >&2
    docker logs "$name" >&2
    exit 1
  fi
  if docker exec "$name" python -c "$probe" 2>/dev/null; then
    echo "$image: migrated, serving, /readyz answers 200"
    exit 0
  fi
  sleep 1
done
echo "/readyz did not answer 200 within 120 tries:" >&2
docker logs "$name" >&2
exit 1
