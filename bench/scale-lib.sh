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

# The bench's own KWOK: testenv's (KWOK's default parallelism, 4 pod stages and
# 4 node-lease renewals at a time) fell behind at 500 nodes on this machine: pods
# came up at 10 a second, node leases lapsed past the node lifecycle
# controller's 40 s grace, so nodes went NotReady, the controller marked their
# pods NotReady, and KWOK's pod-ready stage (Pending pods only) never made them
# Ready again: the Deployments stalled below their replicas with no pod Pending.
# The bench's nodes carry `kwok.node-drain.io/kubelet=dead`, the label testenv's
# KWOK leaves alone (testenv/kill-kubelet's), and this one manages exactly them,
# with the same stages and more parallelism; it stops with the bench.
KWOK_PID=
start_kwok() {
  # Pod IPs from a range of their own (10.80.0.0/12), not testenv's.
  sed -e 's|^  cidr: .*|  cidr: "10.80.0.1/12"|' -e 's|^  manageNodesWithLabelSelector: .*|  manageNodesWithLabelSelector: kwok.node-drain.io/kubelet=dead,node-drain.io/bench=scale|' \
    -e "s|^  nodeLeaseDurationSeconds: .*|&\n  podPlayStageParallelism: ${BENCH_KWOK_PARALLELISM:-32}\n  nodePlayStageParallelism: ${BENCH_KWOK_PARALLELISM:-32}\n  nodeLeaseParallelism: ${BENCH_KWOK_PARALLELISM:-32}|" \
    testenv/config/kwok.yaml >"$WORK/kwok.yaml"
  grep -q 'kubelet=dead,node-drain.io/bench=scale' "$WORK/kwok.yaml" || { echo "bench/scale: could not derive the KWOK config" >&2; return 1; }
  setsid "$TESTENV_BIN/kwok" --kubeconfig="$KUBECONFIG" --config="$WORK/kwok.yaml" \
    --server-address="127.0.0.1:$((20000 + RANDOM % 20000))" >>"$WORK/kwok.log" 2>&1 </dev/null &
  KWOK_PID=$!
}

stop_kwok() {
  [[ -n "$KWOK_PID" ]] && kill -- "-$KWOK_PID" 2>/dev/null
  KWOK_PID=
  true
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
metadata: {name: $pool-$i, labels: {karpenter.sh/nodepool: $pool, node-drain.io/bench: scale, kwok.node-drain.io/kubelet: dead}}
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
  # Like wait_until, but a count that stops moving for a minute is explained.
  local deadline=$((SECONDS + ${BENCH_POD_SECONDS:-$((300 + p / 10))})) out last=0 was= still=$SECONDS restarts=0
  while ((SECONDS < deadline)); do
    out=$(running_pods "$ns" "$p" 2>/dev/null || true)
    [[ "$out" == ok* ]] && return 0
    [[ "$out" != "$was" ]] && was=$out still=$SECONDS
    if ((SECONDS - last >= 30)); then echo "   waiting for $p pods Running: $out" >&2; last=$SECONDS; fi
    if ((SECONDS - still >= 60)); then
      pod_census "$ns" >&2
      still=$SECONDS
      # KWOK 0.7 once stopped moving pods at 4,163 of 20,000 Running (no
      # error in its log; its node and lease work went on); a new KWOK took
      # them up at once. So a stall restarts it, at most 3 times.
      if ((restarts < 3)); then
        restarts=$((restarts + 1))
        echo "   restarting the bench's KWOK ($restarts of 3 at most)" >&2
        stop_kwok
        start_kwok
        # Pods on a node whose lease lapsed meanwhile were marked not Ready by
        # the node lifecycle controller; KWOK's ready stage takes only pods
        # without an IP, so they stay so: their ReplicaSets replace them.
        K get pods -n "$ns" -o json | jq -r '.items[] | select(.status.phase == "Running" and .metadata.deletionTimestamp == null
            and ((.status.conditions // []) | any(.type == "Ready" and .status != "True"))) | .metadata.name' |
          xargs -r -n 200 "$TESTENV_BIN/kubectl" delete pod -n "$ns" --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
      fi
    fi
    sleep 3
  done
  echo "   gave up waiting for $p pods Running: $out" >&2
  pod_census "$ns" >&2
  # At least 90 % Running: measured as it is (the daemon holds node metadata
  # and the pods of the nodes it drains; the table says how many ran).
  local n=${out%% of*}
  if [[ "$n" =~ ^[0-9]+$ ]] && ((n * 10 >= p * 9)); then
    echo "   measuring with $n of $p pods Running (at least 90 %)" >&2
    PODS_RUNNING=$n
    return 0
  fi
  return 1
}

# pod_census NS: where the missing replicas are (one LIST of the namespace's
# pods and ReplicaSets, only when the count stalls).
pod_census() {
  echo "   census of $1 $(date -u +%H:%M:%S):"
  K get replicasets -n "$1" -o json | jq -r '[.items[] | {want: .spec.replicas, have: (.status.replicas // 0),
      ready: (.status.readyReplicas // 0)}] | "     ReplicaSets: want \(map(.want) | add), have \(map(.have) | add), ready \(map(.ready) | add)"'
  K get pods -n "$1" -o json | jq -r '.items | "     pods: \(length) exist; " + ([.[] |
      if .metadata.deletionTimestamp then "terminating"
      elif (.spec.nodeName // "") == "" then "unscheduled"
      elif .status.phase != "Running" then "on a node, phase \(.status.phase)"
      elif ((.status.conditions // []) | any(.type == "Ready" and .status == "True")) then "Running and Ready"
      else "Running, not Ready" end] | group_by(.) | map("\(length) \(.[0])") | join(", "))'
  K get pods -n "$1" -o json | jq -r '[.items[] | select(.status.phase != "Running" or .metadata.deletionTimestamp)][:3][] |
      "     e.g. \(.metadata.name) on \(.spec.nodeName // "-"): phase \(.status.phase), \(.status.conditions // [] | map("\(.type)=\(.status) \(.reason // "")") | join("; "))"'
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
  # The namespace controller deleted pods at about 6 a second (one
  # DeleteCollection, then KWOK finalizing each: two writes a pod); here the
  # controllers go first (orphaning), then the pods at grace 0, several
  # kubectl at once (19 a second on a 500-node run).
  K delete deployments,replicasets --all -n "$NS" --cascade=orphan --wait=false >/dev/null 2>&1 || true
  K get pods -n "$NS" -o name 2>/dev/null | xargs -r -P 6 -n 300 "$TESTENV_BIN/kubectl" delete -n "$NS" \
    --grace-period=0 --force --wait=false --ignore-not-found >/dev/null 2>&1 || true
  K delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  wait_until "namespace $NS gone" 600 sh -c "'$TESTENV_BIN/kubectl' get namespace '$NS' >/dev/null 2>&1 && echo still there || echo ok" || true
  K delete nodeclaims -l "karpenter.sh/nodepool=$POOL" --wait=false >/dev/null 2>&1 || true
  K delete nodepool "$POOL" --wait=false >/dev/null 2>&1 || true
  K delete lease -n default "$POOL-new" "$POOL-baseline" --ignore-not-found >/dev/null 2>&1 || true
  wait_until "nodes of $POOL gone" 600 sh -c "n=\$('$TESTENV_BIN/kubectl' get nodes -l karpenter.sh/nodepool=$POOL --no-headers 2>/dev/null | wc -l); [ \$n = 0 ] && echo ok || echo \$n left" || true
  echo "   cleaned up $POOL $(date -u +%H:%M:%S)" >&2
  POOL= NS=
}
