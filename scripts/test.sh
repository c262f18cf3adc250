#!/usr/bin/env bash
# Runs every test of sessiond on a fresh Debian machine: installs what the
# tests need when it is missing (redis-server, chromium, openssl, nginx,
# postgresql, node and npm, systemd-analyze, CA certificates, python3 with
# FastAPI, and the tools that make the test vectors of imported password
# hashes: Django with its argon2 and bcrypt libraries, htpasswd and argon2),
# then runs the Go tests. Usage: bash scripts/test.sh [go test flags]
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v openssl >/dev/null || need+=(openssl)
[ -x /usr/sbin/nginx ] || need+=(nginx)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v systemd-analyze >/dev/null || need+=(systemd)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
# Debian's packages go to the system's python3, whatever else is on PATH.
/usr/bin/python3 -c 'import fastapi, uvicorn, httpx' 2>/dev/null ||
  need+=(python3-fastapi python3-uvicorn python3-httpx)
/usr/bin/python3 -c 'import django, argon2, bcrypt' 2>/dev/null || need+=(python3-django python3-argon2 python3-bcrypt)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v argon2 >/dev/null || need+=(argon2)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

go version
go vet ./...
# The webhook receiver's locked npm packages (interop/webhooks), installed
# once here because the tests of several packages start it at once; each
# test also installs them when they are missing.
(cd interop/webhooks && npm ci --no-audit --no-fund --loglevel=error)
go test -count=1 -timeout 15m "$@" ./...

# Then each fuzz target briefly: token and refresh token parsing, User-Agent
# parsing, client IPs and request decoding. The budgets are counts of
# executions (about 10 s each on a 2-core machine; FUZZTIME overrides them
# all), not durations: with a duration, Go 1.26's fuzzing coordinator can
# report "context deadline exceeded" as a failure when the time runs out
# while a worker is busy (go.dev/issue/75804, fixed in Go 1.27).
for target in 'FuzzAccessVerify . 30000x' 'FuzzRefreshParse . 20000x' \
  'FuzzParse ./useragent 60000x' 'FuzzClientIP ./http 30000x' \
  'FuzzDecodeRequest ./http 30000x'; do
  set -- $target
  go test -run '^$' -fuzz "^$1\$" -fuzztime "${FUZZTIME:-$3}" "$2"
done
