{{/* Names, labels and the pieces every ulasan container shares. */}}

{{- define "ulasan.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ulasan.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ulasan
{{- end -}}

{{/* selector labels of one component: (dict "ctx" $ "component" "worker") */}}
{{- define "ulasan.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ulasan.componentLabels" -}}
{{ include "ulasan.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* image reference: (dict "ctx" $ "image" .Values.image.serving) */}}
{{- define "ulasan.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{- define "ulasan.secretName" -}}
{{- include "ulasan.fullname" . -}}
{{- end -}}

{{/* true when the chart writes its own Secret (a password or API keys given as values) */}}
{{- define "ulasan.ownSecret" -}}
{{- if or (and .Values.postgres.password (not .Values.postgres.existingSecret)) (and .Values.gateway.auth.apiKeys (not .Values.gateway.auth.existingSecret)) -}}
true
{{- end -}}
{{- end -}}

{{/* The settings every ulasan process reads (ulasan/core/settings.py). */}}
{{- define "ulasan.commonEnv" -}}
- name: HOME
  value: {{ .Values.stateDir | quote }}
- name: ULASAN_STATE_DIR
  value: {{ .Values.stateDir | quote }}
- name: ULASAN_KAFKA__BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: ULASAN_KAFKA__PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: ULASAN_KAFKA__REPLICATION_FACTOR
  value: {{ .Values.kafka.replicationFactor | quote }}
- name: ULASAN_KAFKA__CLIENT_ID
  value: {{ .Values.kafka.clientId | quote }}
- name: ULASAN_POSTGRES__HOST
  value: {{ .Values.postgres.host | quote }}
- name: ULASAN_POSTGRES__PORT
  value: {{ .Values.postgres.port | quote }}
- name: ULASAN_POSTGRES__USER
  value: {{ .Values.postgres.user | quote }}
- name: ULASAN_POSTGRES__DBNAME
  value: {{ .Values.postgres.dbname | quote }}
{{- if .Values.postgres.existingSecret }}
- name: ULASAN_POSTGRES__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.postgres.existingSecret }}
      key: {{ .Values.postgres.existingSecretKey }}
{{- else if .Values.postgres.password }}
- name: ULASAN_POSTGRES__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ulasan.secretName" . }}
      key: postgres-password
{{- end }}
- name: ULASAN_MLFLOW__TRACKING_URI
  value: {{ .Values.mlflow.trackingUri | quote }}
- name: ULASAN_MLFLOW__REGISTERED_MODEL
  value: {{ .Values.mlflow.registeredModel | quote }}
- name: ULASAN_MLFLOW__EXPERIMENT
  value: {{ .Values.mlflow.experiment | quote }}
{{- end -}}

{{/* pod-level settings shared by every workload: (dict "ctx" $) */}}
{{- define "ulasan.podSpecCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* the writable folders of a read-only container: the state dir and /tmp */}}
{{- define "ulasan.stateMounts" -}}
- name: state
  mountPath: {{ .Values.stateDir }}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "ulasan.emptyDirVolumes" -}}
- name: state
  emptyDir:
    sizeLimit: {{ .sizeLimit | default "1Gi" }}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- end -}}

{{/* fail on values that would deploy a broken system; returns nothing */}}
{{- define "ulasan.validate" -}}
{{- $partitions := int .Values.kafka.partitions -}}
{{- if lt $partitions 1 -}}
{{- fail (printf "kafka.partitions must be at least 1, got %d" $partitions) -}}
{{- end -}}
{{- if and (not .Values.worker.keda.enabled) (gt (int .Values.worker.replicas) $partitions) -}}
{{- fail (printf "worker.replicas (%d) exceeds kafka.partitions (%d): a worker beyond the partition count gets no partition and idles; raise kafka.partitions (and re-create the topics) or lower worker.replicas" (int .Values.worker.replicas) $partitions) -}}
{{- end -}}
{{- if and .Values.requestsLane.enabled (gt (int .Values.requestsLane.replicas) $partitions) -}}
{{- fail (printf "requestsLane.replicas (%d) exceeds kafka.partitions (%d): a lane pod beyond the partition count gets no partition and idles" (int .Values.requestsLane.replicas) $partitions) -}}
{{- end -}}
{{- if and .Values.requestsLane.enabled (lt (int .Values.requestsLane.replicas) 1) -}}
{{- fail "requestsLane.replicas must be at least 1: the lane alone answers the gateway's requests" -}}
{{- end -}}
{{- if lt (int .Values.worker.keda.minReplicas) 1 -}}
{{- fail "worker.keda.minReplicas must be at least 1: workers also answer the gateway's requests" -}}
{{- end -}}
{{- if and .Values.gateway.auth.required (not .Values.gateway.auth.apiKeys) (not .Values.gateway.auth.existingSecret) -}}
{{- fail "gateway.auth.required is true but there are no API keys: set gateway.auth.apiKeys or gateway.auth.existingSecret" -}}
{{- end -}}
{{- end -}}
