#!/usr/bin/env bash
# Build helm from the Go module proxy once and keep it outside the clone, keyed by version, like
# the Kafka jars (~/.cache/ulasan/bin/helm-<version>). Prints the binary's path on stdout.
#   deploy/tools/install-helm.sh            # make helm, the chart tests and CI call this
#   HELM_VERSION=v4.3.2 deploy/tools/install-helm.sh
# Needs Go (>= 1.21; an older toolchain fetches the one helm asks for from the proxy).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v4.3.2}"
CACHE_DIR="${ULASAN_TOOLS_DIR:-${HOME}/.cache/ulasan/bin}"
BIN="${CACHE_DIR}/helm-${HELM_VERSION}"

say() { echo "install-helm: $*" >&2; }

if [[ -x "${BIN}" ]] && "${BIN}" version --short >/dev/null 2>&1; then
    echo "${BIN}"
    exit 0
fi
# GO names the go binary; unset, `go` on PATH, else the go.dev tarball's /usr/local/go (often
# outside PATH)
if [[ -z "${GO:-}" ]] && ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
    GO=/usr/local/go/bin/go
fi
GO="${GO:-go}"
if ! command -v "${GO}" >/dev/null 2>&1; then
    say "Go is not installed: install it (make system-deps, https://go.dev/dl/ or apt-get"
    say "install golang-go) and run this again; it builds helm ${HELM_VERSION} with 'go install'"
    exit 1
fi

mkdir -p "${CACHE_DIR}"
# one build at a time (parallel test runs share the cache)
exec 9>"${CACHE_DIR}/.helm.lock"
flock 9
if [[ -x "${BIN}" ]] && "${BIN}" version --short >/dev/null 2>&1; then
    echo "${BIN}"
    exit 0
fi
WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT

# Go older than 1.21 (Debian 12's golang-go is 1.19) cannot switch toolchains by itself: fetch
# the toolchain helm needs as the module golang.org/toolchain from the same proxy, once.
minor="$("${GO}" env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')"
if [[ "${minor}" =~ ^[0-9]+$ ]] && (( minor < 21 )); then
    TOOLCHAIN="${GO_TOOLCHAIN:-go1.24.13}"
    TC_DIR="${CACHE_DIR}/${TOOLCHAIN}"
    if [[ ! -x "${TC_DIR}/bin/go" ]]; then
        mod="golang.org/toolchain@v0.0.1-${TOOLCHAIN}.$("${GO}" env GOOS)-$("${GO}" env GOARCH)"
        say "$("${GO}" env GOVERSION) is too old for helm: fetching ${mod}"
        src="$(cd "${WORK}" && GOFLAGS=-mod=mod "${GO}" mod download -json "${mod}" \
            | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
        [[ -n "${src}" && -d "${src}" ]] || { say "could not download ${mod}"; exit 1; }
        rm -rf "${TC_DIR}.tmp" && cp -r "${src}" "${TC_DIR}.tmp" && chmod -R u+w,+X "${TC_DIR}.tmp"
        chmod +x "${TC_DIR}.tmp"/bin/* "${TC_DIR}.tmp"/pkg/tool/*/*
        mv "${TC_DIR}.tmp" "${TC_DIR}"
    fi
    GO="${TC_DIR}/bin/go"
fi
say "building helm ${HELM_VERSION} with $("${GO}" env GOVERSION) (once; a few minutes)"
# -ldflags: what helm's own Makefile stamps in, so `helm version` reports the release
GOBIN="${WORK}" CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" "${GO}" install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}" \
    "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}"
"${WORK}/helm" version --short >/dev/null
mv -f "${WORK}/helm" "${BIN}.tmp"
mv -f "${BIN}.tmp" "${BIN}"
say "helm ${HELM_VERSION} at ${BIN}"
echo "${BIN}"
