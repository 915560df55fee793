#!/bin/sh
# Roll Cadenza out on Kubernetes in the order it needs: the schema migration first, then the
# services. Kustomize cannot order objects, so this applies one overlay in two phases.
#   usage: deploy/k8s/rollout.sh dev|prod      (TIMEOUT=15m by default)
# Prerequisites: kubectl pointed at the cluster; for prod, the Secret cadenza-secrets exists
# in the namespace (base/secret.example.yaml lists its keys); for dev, overlays/dev/secrets.env
# and deps.env exist (overlays/dev/make-secrets.sh).
set -eu
overlay=${1:?usage: rollout.sh dev|prod}
dir=$(cd "$(dirname "$0")" && pwd)/overlays/$overlay
ns=$(sed -n 's/^namespace: *//p' "$dir/kustomization.yaml")
timeout=${TIMEOUT:-15m}

# 1. a Job's pod template is immutable: each rollout runs a fresh one (with the new image)
kubectl -n "$ns" delete job cadenza-migrate --ignore-not-found --wait=true
# 2. namespace, ServiceAccount, ConfigMap, Secret (dev), network policies, the Job
kubectl apply -k "$dir" -l cadenza.dev/pre-rollout=true
# 3. the schema is at the new version before any new process starts
if ! kubectl -n "$ns" wait --for=condition=complete job/cadenza-migrate --timeout="$timeout"; then
    kubectl -n "$ns" logs job/cadenza-migrate --tail=50 >&2 || true
    echo "the migration did not complete; nothing else was changed" >&2
    exit 1
fi
# 4. everything else (the Job left alone)
kubectl apply -k "$dir" -l 'app.kubernetes.io/component!=migration'
for d in cadenza-api cadenza-worker cadenza-agents cadenza-mcp-proxy; do
    kubectl -n "$ns" rollout status "deployment/$d" --timeout="$timeout"
done
