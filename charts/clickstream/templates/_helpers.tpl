{{/* Names and labels. */}}
{{- define "clickstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "clickstream.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "clickstream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "clickstream.labels" -}}
helm.sh/chart: {{ include "clickstream.chart" . }}
{{ include "clickstream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: clickstream
{{- end }}

{{- define "clickstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clickstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component; call with (dict "root" $ "component" "processor"). */}}
{{- define "clickstream.componentLabels" -}}
{{ include "clickstream.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "clickstream.componentSelector" -}}
{{ include "clickstream.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "clickstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "clickstream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "clickstream.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "clickstream.topicsNamespace" -}}
{{- default .Values.kafka.namespace .Values.topics.namespace }}
{{- end }}

{{/*
The Bitnami subchart's fullname (its common.names.fullname rule), so the processor can
find the master Service.
*/}}
{{- define "clickstream.redisFullname" -}}
{{- if .Values.redis.fullnameOverride }}
{{- .Values.redis.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default "redis" .Values.redis.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret and key holding the Redis password; empty name means no AUTH. */}}
{{- define "clickstream.redisSecretName" -}}
{{- if .Values.redis.enabled }}
{{- .Values.redis.auth.existingSecret }}
{{- else }}
{{- .Values.externalRedis.existingSecret }}
{{- end }}
{{- end }}

{{- define "clickstream.redisSecretKey" -}}
{{- if .Values.redis.enabled }}
{{- .Values.redis.auth.existingSecretPasswordKey }}
{{- else }}
{{- .Values.externalRedis.passwordKey }}
{{- end }}
{{- end }}

{{/*
REDIS_URL names the server only: the password reaches the services as REDIS_PASSWORD,
unchanged, so no character in it can turn into a URL delimiter.
*/}}
{{- define "clickstream.redisUrl" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s-master.%s.svc:6379/0" (include "clickstream.redisFullname" .) .Release.Namespace }}
{{- else }}
{{- printf "%s://%s:%v/%v" (ternary "rediss" "redis" .Values.externalRedis.tls) .Values.externalRedis.host .Values.externalRedis.port .Values.externalRedis.db }}
{{- end }}
{{- end }}

{{/* A private CA for the external Redis' TLS certificate, mounted from a Secret. */}}
{{- define "clickstream.redisCaSecret" -}}
{{- if not .Values.redis.enabled }}{{ .Values.externalRedis.caSecret }}{{ end }}
{{- end }}

{{- define "clickstream.redisCaDir" -}}
/etc/clickstream/redis-ca
{{- end }}

{{/*
"true" when a component talks to Redis: the processor always, the dashboard when its
live panel (the window in progress, read from the processors' state) is on.
Call with (dict "root" $ "component" "consumer").
*/}}
{{- define "clickstream.usesRedis" -}}
{{- if eq .component "processor" }}true
{{- else if and (eq .component "consumer") .root.Values.consumer.livePanel }}true
{{- end }}
{{- end }}

{{/* The REDIS_* env entries of a component that talks to Redis; call with the root. */}}
{{- define "clickstream.redisEnv" -}}
- name: REDIS_URL
  value: {{ include "clickstream.redisUrl" . | quote }}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.cluster }}
- name: REDIS_CLUSTER
  value: "true"
{{- end }}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.username }}
- name: REDIS_USERNAME
  value: {{ .Values.externalRedis.username | quote }}
{{- end }}
{{- with include "clickstream.redisSecretName" . }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ include "clickstream.redisSecretKey" $ }}
{{- end }}
{{- if include "clickstream.redisCaSecret" . }}
- name: REDIS_TLS_CA_FILE
  value: {{ printf "%s/%s" (include "clickstream.redisCaDir" .) .Values.externalRedis.caKey | quote }}
{{- end }}
{{- end }}

{{- define "clickstream.configmapName" -}}
{{- printf "%s-config" (include "clickstream.fullname" .) }}
{{- end }}
