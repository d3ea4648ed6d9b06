#!/usr/bin/env bash
# Installs the Debian packages the local stack needs, only those that are missing:
# Java 17 (Kafka), Maven (fetches the Kafka jars), PostgreSQL and Prometheus, and python3-venv
# where uv is not installed yet (the Makefile installs uv into a private venv under
# ~/.cache/ulasan, never into Debian's externally managed Python).
# Quiet and fast when everything is present; needs root (or sudo) otherwise. Debian 12.
# Runs as a normal user too: nothing here needs root when the packages are present.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
uv_venv="${ULASAN_UV_VENV:-$HOME/.cache/ulasan/uv-venv}"

have java || need+=(openjdk-17-jre-headless)
have mvn || need+=(maven)
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || need+=(postgresql)
have prometheus || need+=(prometheus)
if [ "$(id -u)" -eq 0 ]; then
    # only root needs runuser (PostgreSQL refuses to run as root: the stack runs it as its
    # own user); it lives in /usr/sbin, outside a normal user's PATH
    have runuser || [ -x /usr/sbin/runuser ] || need+=(util-linux)
fi
if ! have uv && [ ! -x "$uv_venv/bin/uv" ]; then
    # a fresh Debian 12 has neither pip nor ensurepip: `python3 -m venv` needs python3-venv
    have python3 || need+=(python3)
    python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)
fi
have chromium || need+=(chromium)
have chromedriver || need+=(chromium-driver)
# Go builds helm for the chart checks (deploy/tools/install-helm.sh; an old Go is enough)
have go || [ -x /usr/local/go/bin/go ] || need+=(golang-go)  # the go.dev tarball lives there
# `ulasan bench gateway` builds ghz with the same Go, and oha with cargo (Rust >= 1.88, from
# rustup: Debian 12's cargo is too old for it, so it is not installed here; without cargo the
# bench says so and `--client python` still runs)

if [ "${#need[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif have sudo; then
    sudo=(sudo)
else
    echo "missing Debian packages: ${need[*]}; run this script as root (or install sudo)" >&2
    exit 1
fi

echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
if [[ " ${need[*]} " == *" postgresql "* ]]; then
    # ulasan runs its own cluster under the state dir: do not create (and start) the system
    # cluster on port 5432 that the Debian package would otherwise set up
    "${sudo[@]}" mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | "${sudo[@]}" tee /etc/postgresql-common/createcluster.conf >/dev/null
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confold "${need[@]}" >/dev/null
echo "installed: ${need[*]}"
