{{/* Labels of every object; `component` is added where it applies. */}}
{{- define "node-drain.labels" -}}
app.kubernetes.io/name: node-drain
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{/* The daemon's pods: the selector of the Deployment, the PDB, the NetworkPolicy and the metrics Service. */}}
{{- define "node-drain.daemonSelector" -}}
app.kubernetes.io/name: node-drain
app.kubernetes.io/component: daemon
{{- end -}}

{{- define "node-drain.image" -}}
{{ printf "%s:%s" .Values.image.repository .Values.image.tag | quote }}
{{- end -}}

{{/* The restricted Pod Security Standard, pod and container. */}}
{{- define "node-drain.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}
{{- define "node-drain.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: ["ALL"]}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* Who node-drain is (downward API) and where Slack is. */}}
{{- define "node-drain.identityEnv" -}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: NODE_NAME
  valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
- name: SLACK_WEBHOOK_URL
  valueFrom:
    secretKeyRef: {name: {{ .Values.slack.secretName | quote }}, key: webhook-url, optional: true}
{{- end -}}
