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
{{- if .Values.redis.auth.enabled }}{{ .Values.redis.auth.existingSecret }}{{ end }}
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
REDIS_URL without the password: "$(REDIS_PASSWORD)" is expanded by the kubelet from the
REDIS_PASSWORD variable defined just before it, which reads the Secret.
*/}}
{{- define "clickstream.redisUrl" -}}
{{- $auth := "" }}
{{- if include "clickstream.redisSecretName" . }}
{{- $user := "" }}
{{- if not .Values.redis.enabled }}{{ $user = .Values.externalRedis.username }}{{ end }}
{{- $auth = printf "%s:$(REDIS_PASSWORD)@" $user }}
{{- end }}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s%s-master.%s.svc:6379/0" $auth (include "clickstream.redisFullname" .) .Release.Namespace }}
{{- else }}
{{- printf "%s://%s%s:%v/%v" (ternary "rediss" "redis" .Values.externalRedis.tls) $auth .Values.externalRedis.host .Values.externalRedis.port .Values.externalRedis.db }}
{{- end }}
{{- end }}

{{- define "clickstream.configmapName" -}}
{{- printf "%s-config" (include "clickstream.fullname" .) }}
{{- end }}
