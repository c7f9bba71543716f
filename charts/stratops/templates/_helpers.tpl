{{/* The release's name prefix: the release name, or release-chart when the release name does not hold the chart's. With release "stratops", names are those of config/default. */}}
{{- define "stratops.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "stratops.labels" -}}
app.kubernetes.io/name: stratops
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The manager's selector labels: those of config/manager (a Deployment's selector is immutable). */}}
{{- define "stratops.selectorLabels" -}}
app.kubernetes.io/name: stratops
app.kubernetes.io/component: manager
{{- end -}}

{{- define "stratops.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "stratops.serviceAccountName" -}}
{{- include "stratops.fullname" . }}-controller-manager
{{- end -}}
