#!/usr/bin/env bash
# Installs nginx from Debian's packages when it is missing (the deployment test
# runs it on loopback in front of sidecar replicas). Needs root or sudo.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "nginx is missing: installing it from Debian's packages"
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends nginx >/dev/null
# The package may start a system nginx on port 80; the test runs its own.
$sudo service nginx stop >/dev/null 2>&1 || true
