# Helpers of bench/scale: making and deleting a large NodePool, reading RSS and
# counting requests. Source after .testenv/env and bench/lib.sh; needs K, WORK.

INSTANCE_TYPE=c-4x-amd64-linux # 64 pods each: room for the evicted pods

rss_mib() { awk '/VmRSS/ {printf "%.1f\n", $2 / 1024}' "/proc/$1/status" 2>/dev/null; }

stamp() { date -u +%Y-%m-%dT%H:%M:%S.%6NZ; }

# requests_between ID FROM TO: requests of the bench user whose User-Agent names
# ID (the daemon's POD_NAME), received between the two stamps.
requests_between() {
  jq -r --arg id "$1" --arg from "$2" --arg to "$3" \
    'select((.userAgent // "" | contains($id)) and .requestReceivedTimestamp >= $from and .requestReceivedTimestamp < $to) | .auditID' \
    "$WORK/audit.jsonl" | sort -u | wc -l
}

# evictions_between ID FROM TO: eviction requests among them.
evictions_between() {
  jq -r --arg id "$1" --arg from "$2" --arg to "$3" \
    'select((.userAgent // "" | contains($id)) and .requestReceivedTimestamp >= $from and .requestReceivedTimestamp < $to and .objectRef.subresource == "eviction") | .auditID' \
    "$WORK/audit.jsonl" | sort -u | wc -l
}

wait_until() { # wait_until WHAT SECONDS CMD: until CMD prints "ok"; progress every 30 s
  local what=$1 limit=$2 out last=0
  shift 2
  local deadline=$((SECONDS + limit))
  while ((SECONDS < deadline)); do
    out=$("$@" 2>/dev/null || true)
    [[ "$out" == ok* ]] && return 0
    if ((SECONDS - last >= 30)); then echo "   waiting for $what: $out" >&2; last=$SECONDS; fi
    sleep 3
  done
  echo "   gave up waiting for $what after ${limit}s: $out" >&2
  return 1
}

ready_nodes() { # ready_nodes POOL WANT
  local n
  n=$(K get nodes -l "karpenter.sh/nodepool=$1" --no-headers 2>/dev/null | awk '$2 == "Ready"' | wc -l)
  if ((n >= $2)); then echo ok; else echo "$n of $2 Ready"; fi
}

# make_nodes POOL N: the NodePool (never consolidated, expired or grown by
# Karpenter) and N NodeClaims of it; waits until N nodes are Ready.
make_nodes() {
  local pool=$1 n=$2
  {
    cat <<YAML
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: $pool, labels: {node-drain.io/bench: scale}}
spec:
  limits: {cpu: "0"}
  template:
    spec:
      nodeClassRef: {group: karpenter.kwok.sh, kind: KWOKNodeClass, name: default}
      requirements:
      - {key: node.kubernetes.io/instance-type, operator: In, values: [$INSTANCE_TYPE]}
      - {key: karpenter.sh/capacity-type, operator: In, values: [on-demand]}
      expireAfter: Never
  disruption: {consolidationPolicy: WhenEmpty, consolidateAfter: Never, budgets: [{nodes: "100%"}]}
YAML
    for i in $(seq 1 "$n"); do
      cat <<YAML
---
apiVersion: karpenter.sh/v1
kind: NodeClaim
metadata: {name: $pool-$i, labels: {karpenter.sh/nodepool: $pool, node-drain.io/bench: scale}}
spec:
  expireAfter: Never
  nodeClassRef: {group: karpenter.kwok.sh, kind: KWOKNodeClass, name: default}
  taints: [{key: node-drain.io/scale, value: "$pool", effect: NoSchedule}]
  requirements:
  - {key: node.kubernetes.io/instance-type, operator: In, values: [$INSTANCE_TYPE]}
  - {key: karpenter.sh/capacity-type, operator: In, values: [on-demand]}
  - {key: karpenter.sh/nodepool, operator: In, values: [$pool]}
YAML
    done
  } >"$WORK/nodes.yaml"
  K apply -f "$WORK/nodes.yaml" >/dev/null
  wait_until "$n nodes Ready" $((120 + n)) ready_nodes "$pool" "$n"
}

running_pods() { # running_pods NS WANT: ready replicas of the namespace's Deployments
  local n
  n=$(K get deploy -n "$1" -o jsonpath='{range .items[*]}{.status.readyReplicas}{"\n"}{end}' | awk '{s += $1} END {print s + 0}')
  if ((n >= $2)); then echo ok; else echo "$n of $2 Running"; fi
}

# make_pods POOL NS P: P pods in Deployments of PER_DEPLOY replicas, pinned to POOL.
make_pods() {
  local pool=$1 ns=$2 p=$3 d=0 left=$3 r
  {
    cat <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: $ns, labels: {node-drain.io/bench: scale}}
YAML
    while ((left > 0)); do
      d=$((d + 1)) r=$((left < PER_DEPLOY ? left : PER_DEPLOY)) left=$((left - r))
      cat <<YAML
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: load-$d, namespace: $ns}
spec:
  replicas: $r
  selector: {matchLabels: {app: load-$d}}
  template:
    metadata: {labels: {app: load-$d}}
    spec:
      nodeSelector: {karpenter.sh/nodepool: $pool}
      tolerations: [{key: node-drain.io/scale, operator: Exists, effect: NoSchedule}]
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: registry.invalid/load:1, resources: {requests: {cpu: 10m, memory: 16Mi}}}]
YAML
    done
  } >"$WORK/pods.yaml"
  K apply -f "$WORK/pods.yaml" >/dev/null
  wait_until "$p pods Running" $((300 + p / 20)) running_pods "$ns" "$p"
}

prometheus_nodes() { # prometheus_nodes POOL WANT: Karpenter's node count for POOL, as Prometheus has it
  local n
  n=$(curl -s "$PROMETHEUS_URL/api/v1/query" --data-urlencode \
    "query=karpenter_nodepools_usage{nodepool='$1',resource_type='nodes'}" | jq -r '.data.result[0].value[1] // 0')
  if [[ "${n%.*}" -ge "$2" ]]; then echo ok; else echo "$n nodes counted"; fi
}

wait_prometheus() { wait_until "Karpenter's metrics in Prometheus" 120 prometheus_nodes "$1" "$2"; }

# karpenter_disrupted POOL: NodeClaims of POOL Karpenter deleted or marked for disruption.
karpenter_disrupted() {
  K get nodeclaims -l "karpenter.sh/nodepool=$1" -o json |
    jq '[.items[] | select(.metadata.deletionTimestamp != null or ((.status.conditions // []) | any(.type == "Drifted" and .status == "True")))] | length'
}

# teardown: the daemon, the namespace (its pods first, so Karpenter's
# termination has nothing to evict), the NodeClaims and the NodePool; waits
# (bounded) until the nodes are gone, so the next size starts clean.
teardown() {
  [[ -n "${SAMPLER:-}" ]] && kill "$SAMPLER" 2>/dev/null
  [[ -n "${DAEMON:-}" ]] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
  SAMPLER= DAEMON=
  [[ -z "${POOL:-}" ]] && return 0
  echo "   cleaning up $POOL $(date -u +%H:%M:%S)" >&2
  K delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  wait_until "namespace $NS gone" 600 sh -c "'$TESTENV_BIN/kubectl' get namespace '$NS' >/dev/null 2>&1 && echo still there || echo ok" || true
  K delete nodeclaims -l "karpenter.sh/nodepool=$POOL" --wait=false >/dev/null 2>&1 || true
  K delete nodepool "$POOL" --wait=false >/dev/null 2>&1 || true
  K delete lease -n default "$POOL" >/dev/null 2>&1 || true
  wait_until "nodes of $POOL gone" 600 sh -c "n=\$('$TESTENV_BIN/kubectl' get nodes -l karpenter.sh/nodepool=$POOL --no-headers 2>/dev/null | wc -l); [ \$n = 0 ] && echo ok || echo \$n left" || true
  echo "   cleaned up $POOL $(date -u +%H:%M:%S)" >&2
  POOL= NS=
}
