{{/* Names and labels. */}}
{{- define "quicksilver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "quicksilver.fullname" -}}
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

{{- define "quicksilver.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "quicksilver.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quicksilver.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "quicksilver.labels" -}}
helm.sh/chart: {{ include "quicksilver.chart" . }}
{{ include "quicksilver.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "quicksilver.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "quicksilver.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "quicksilver.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the keys: the user's, or the chart's. */}}
{{- define "quicksilver.keysSecret" -}}
{{- default (include "quicksilver.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* true when the transport keeps its state on one node (the embedded store, memory). */}}
{{- define "quicksilver.singleNode" -}}
{{- if has .Values.transport.type (list "embedded" "local") }}true{{ end }}
{{- end }}

{{/* Where the transport URL comes from: "" (none), or the Secret's name. */}}
{{- define "quicksilver.transportSecret" -}}
{{- if .Values.transport.existingSecret }}
{{- .Values.transport.existingSecret }}
{{- else if .Values.transport.url }}
{{- include "quicksilver.fullname" . }}
{{- end }}
{{- end }}

{{- define "quicksilver.terminationGracePeriodSeconds" -}}
{{- $sum := add .Values.drain.shutdownDelaySeconds .Values.drain.gracePeriodSeconds }}
{{- if kindIs "invalid" .Values.drain.terminationGracePeriodSeconds }}
{{- add $sum 15 }}
{{- else }}
{{- .Values.drain.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* The global options: drain, logs, then the user's lines. */}}
{{- define "quicksilver.globalOptions" -}}
shutdown_delay {{ .Values.drain.shutdownDelaySeconds }}s
grace_period {{ .Values.drain.gracePeriodSeconds }}s
{{- if or (eq .Values.log.format "json") (eq .Values.log.level "DEBUG") }}
log {
{{- if eq .Values.log.format "json" }}
	format json
{{- end }}
{{- if eq .Values.log.level "DEBUG" }}
	level DEBUG
{{- end }}
}
{{- end }}
{{- with .Values.globalOptions }}
{{ . }}
{{- end }}
{{- end }}

{{/* Refusals at render time, with the reason. */}}
{{- define "quicksilver.validate" -}}
{{- $single := include "quicksilver.singleNode" . }}
{{- if and $single (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount is %d, but transport.type %s keeps its state on one node: use one replica, or a cluster transport (transport.type redis, postgres, kafka or pulsar)" (int .Values.replicaCount) .Values.transport.type) }}
{{- end }}
{{- if and $single .Values.autoscaling.enabled }}
{{- fail (printf "autoscaling.enabled needs a cluster transport: transport.type %s keeps its state on one node" .Values.transport.type) }}
{{- end }}
{{- if and (not $single) (not .Values.transport.url) (not .Values.transport.existingSecret) }}
{{- fail (printf "transport.type %s needs transport.url or transport.existingSecret" .Values.transport.type) }}
{{- end }}
{{- if and .Values.transport.url .Values.transport.existingSecret }}
{{- fail "transport.url and transport.existingSecret are exclusive: give one" }}
{{- end }}
{{- $tgp := int (include "quicksilver.terminationGracePeriodSeconds" .) }}
{{- $sum := add .Values.drain.shutdownDelaySeconds .Values.drain.gracePeriodSeconds }}
{{- if le $tgp (int $sum) }}
{{- fail (printf "drain.terminationGracePeriodSeconds (%d) must exceed drain.shutdownDelaySeconds + drain.gracePeriodSeconds (%d), or the pod is killed before its streams end" $tgp (int $sum)) }}
{{- end }}
{{- end }}
