# Shared by the benchmarks: a user of its own per measured tool (a client
# certificate from the test CA, bound to cluster-admin) so the audit log counts
# exactly its requests, and medians. Source after .testenv/env; needs K and WORK.

bench_user() { # bench_user NAME: writes $WORK/NAME.kubeconfig
  local user=$1
  local PKI=$TESTENV_STATE/pki
  openssl req -newkey rsa:2048 -nodes -keyout "$WORK/$user.key" -out "$WORK/$user.csr" -subj "/CN=$user" 2>/dev/null
  # v3 with client-auth usage: rustls refuses v1 certificates.
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=critical,CA:FALSE\n' >"$WORK/ext.cnf"
  openssl x509 -req -in "$WORK/$user.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -out "$WORK/$user.crt" -days 1 -extfile "$WORK/ext.cnf" 2>/dev/null
  local server
  server=$(K config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  cat >"$WORK/$user.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: t, cluster: {server: "$server", certificate-authority: "$PKI/ca.crt"}}]
users: [{name: u, user: {client-certificate: "$WORK/$user.crt", client-key: "$WORK/$user.key"}}]
contexts: [{name: t, context: {cluster: t, user: u}}]
current-context: t
KC
  K create clusterrolebinding "$user" --clusterrole=cluster-admin --user="$user" --dry-run=client -o yaml | K apply -f - >/dev/null
}

requests_of() { # requests_of USER SINCE_LINE: requests in the audit log after that line
  tail -n +"$(($2 + 1))" "$TESTENV_AUDIT_LOG" | jq -r --arg u "$1" \
    'select(.user.username == $u and .stage == "ResponseComplete") | .auditID' | sort -u | wc -l
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

percentile() { # percentile P: the P-th percentile (nearest rank) of the numbers on stdin
  sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int((p/100)*NR+0.999999); if (i<1) i=1; print a[i]}'
}
