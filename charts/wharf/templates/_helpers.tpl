{{- define "wharf.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wharf.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "wharf.databaseSecret" -}}
{{- default (printf "%s-database" (include "wharf.fullname" .)) .Values.database.existingSecret -}}
{{- end -}}
