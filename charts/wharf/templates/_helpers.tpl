{{/* Names, labels and the checks every template relies on. */}}

{{- define "wharf.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wharf.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "wharf.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wharf.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: registry
{{- end -}}

{{/* The job-only pods: not selected by the Service, the PDB or the HPA. */}}
{{- define "wharf.workerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "wharf.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "wharf.workerLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "wharf.workerSelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wharf
{{- end -}}

{{- define "wharf.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "wharf.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wharf
{{- end -}}

{{- define "wharf.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "wharf.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wharf.postgresql.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wharf.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: postgresql
{{- end -}}

{{- define "wharf.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "wharf.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "wharf.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Where Wharf's database URL comes from: "secretName|key". */}}
{{- define "wharf.databaseSecretRef" -}}
{{- if .Values.postgresql.enabled -}}
{{- if or .Values.database.url .Values.database.existingSecret -}}
{{- fail "postgresql.enabled runs a PostgreSQL for Wharf: turn it off to use database.url or database.existingSecret" -}}
{{- end -}}
{{- printf "%s|database-url" (include "wharf.postgresql.fullname" .) -}}
{{- else if .Values.database.existingSecret -}}
{{- printf "%s|%s" .Values.database.existingSecret .Values.database.existingSecretKey -}}
{{- else if .Values.database.url -}}
{{- printf "%s|database-url" (include "wharf.fullname" .) -}}
{{- else -}}
{{- fail "Wharf needs PostgreSQL: set database.url or database.existingSecret, or postgresql.enabled=true" -}}
{{- end -}}
{{- end -}}

{{/* Whether the chart's own Secret has anything in it. */}}
{{- define "wharf.ownSecret" -}}
{{- $db := and (not .Values.postgresql.enabled) (not .Values.database.existingSecret) .Values.database.url -}}
{{- $admin := and (not .Values.admin.existingSecret) .Values.admin.password -}}
{{- $s3 := and (eq .Values.storage.type "s3") (not .Values.storage.s3.existingSecret) .Values.storage.s3.accessKeyId -}}
{{- if or $db $admin $s3 -}}true{{- end -}}
{{- end -}}

{{- define "wharf.signingKeySecret" -}}
{{- if .Values.signingKey.existingSecret -}}
{{- .Values.signingKey.existingSecret -}}
{{- else if .Values.signingKey.generate -}}
{{- printf "%s-signing-key" (include "wharf.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "wharf.signingKeySecretKey" -}}
{{- if .Values.signingKey.existingSecret -}}
{{- .Values.signingKey.existingSecretKey -}}
{{- else -}}
token-signing-key.pem
{{- end -}}
{{- end -}}

{{/* The Secret holding the replication credential key: always one, since
every pod (serving and worker) must seal and open with the same key. */}}
{{- define "wharf.credentialKeySecret" -}}
{{- .Values.replication.credentialKey.existingSecret | default (printf "%s-replication-key" (include "wharf.fullname" .)) -}}
{{- end -}}

{{- define "wharf.credentialKeySecretKey" -}}
{{- if .Values.replication.credentialKey.existingSecret -}}
{{- .Values.replication.credentialKey.existingSecretKey -}}
{{- else -}}
replication-credential.key
{{- end -}}
{{- end -}}

{{/* How the worker pods reach a serving pod's /v2 (replication.local_url):
the in-cluster Service, not the external URL, which may be unreachable from
inside the cluster or go through the ingress for nothing. */}}
{{- define "wharf.workerLocalURL" -}}
{{- if .Values.worker.localURL -}}
{{- .Values.worker.localURL | trimSuffix "/" -}}
{{- else -}}
{{- printf "%s://%s:%d" (ternary "https" "http" .Values.tls.enabled) (include "wharf.fullname" .) (int .Values.service.port) -}}
{{- end -}}
{{- end -}}

{{/* Secret volumes are group-readable under fsGroup; Wharf wants its keys
private (0600), so the pod gets copies of its own, in memory. */}}
{{- define "wharf.installKeysContainer" -}}
- name: install-keys
  image: {{ include "wharf.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - install
    - -m
    - "0600"
    {{- if include "wharf.signingKeySecret" . }}
    - /etc/wharf/signing-key/token-signing-key.pem
    {{- end }}
    - /etc/wharf/replication-key/replication-credential.key
    - /run/wharf/
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      memory: 64Mi
  volumeMounts:
    - name: run
      mountPath: /run/wharf
    {{- if include "wharf.signingKeySecret" . }}
    - name: signing-key
      mountPath: /etc/wharf/signing-key
      readOnly: true
    {{- end }}
    - name: replication-key
      mountPath: /etc/wharf/replication-key
      readOnly: true
{{- end -}}

{{/* The volumes of the keys, for wharf.installKeysContainer. */}}
{{- define "wharf.keyVolumes" -}}
- name: run
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- with include "wharf.signingKeySecret" . }}
- name: signing-key
  secret:
    secretName: {{ . }}
    defaultMode: 0400
    items:
      - key: {{ include "wharf.signingKeySecretKey" $ }}
        path: token-signing-key.pem
{{- end }}
- name: replication-key
  secret:
    secretName: {{ include "wharf.credentialKeySecret" . }}
    defaultMode: 0400
    items:
      - key: {{ include "wharf.credentialKeySecretKey" . }}
        path: replication-credential.key
{{- end -}}

{{/* external_url: the value, else derived from the ingress. */}}
{{- define "wharf.externalURL" -}}
{{- if .Values.externalURL -}}
{{- .Values.externalURL | trimSuffix "/" -}}
{{- else if .Values.ingress.enabled -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.ingress.tls.enabled) .Values.ingress.host -}}
{{- end -}}
{{- end -}}

{{- define "wharf.scheme" -}}
{{- ternary "HTTPS" "HTTP" .Values.tls.enabled -}}
{{- end -}}

{{/* Settings that cannot work together, refused before anything renders. */}}
{{- define "wharf.validate" -}}
{{- $many := or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled -}}
{{- if and .Values.worker.enabled (eq .Values.storage.type "filesystem") (not (include "wharf.sharedVolume" .)) -}}
{{- fail "worker.enabled runs jobs in pods of their own, which need the blobs too: it needs storage.type=s3, or a ReadWriteMany volume (storage.filesystem.persistence.accessModes)" -}}
{{- end -}}
{{- if and $many (eq .Values.storage.type "filesystem") (not (include "wharf.sharedVolume" .)) -}}
{{- fail "more than one replica (replicaCount > 1 or autoscaling) needs storage.type=s3, or a ReadWriteMany volume (storage.filesystem.persistence.accessModes)" -}}
{{- end -}}
{{- if and (eq .Values.storage.type "s3") (not .Values.storage.s3.bucket) -}}
{{- fail "storage.type=s3 needs storage.s3.bucket" -}}
{{- end -}}
{{- if and .Values.storage.s3.accessKeyId (not .Values.storage.s3.secretAccessKey) -}}
{{- fail "storage.s3.accessKeyId needs storage.s3.secretAccessKey" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) -}}
{{- fail "tls.enabled needs tls.existingSecret (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- end -}}

{{/* The Wharf container's environment; call with (dict "root" . "db" (list secret key)). */}}
{{- define "wharf.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
- name: WHARF_CONFIG
  value: /etc/wharf/wharf.toml
- name: WHARF_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ index .db 0 }}
      key: {{ index .db 1 }}
{{- if $v.admin.existingSecret }}
- name: WHARF_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.admin.existingSecret }}
      key: {{ $v.admin.existingSecretKey }}
{{- else if $v.admin.password }}
- name: WHARF_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "wharf.fullname" $root }}
      key: admin-password
{{- end }}
{{- if eq $v.storage.type "s3" }}
{{- $s3 := $v.storage.s3 }}
{{- $secret := "" }}
{{- $idKey := "access-key-id" }}
{{- $secretKey := "secret-access-key" }}
{{- if $s3.existingSecret }}
{{- $secret = $s3.existingSecret }}
{{- $idKey = $s3.accessKeyIdKey }}
{{- $secretKey = $s3.secretAccessKeyKey }}
{{- else if $s3.accessKeyId }}
{{- $secret = include "wharf.fullname" $root }}
{{- end }}
{{- if $secret }}
- name: WHARF_STORAGE_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $idKey }}
- name: WHARF_STORAGE_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $secretKey }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "wharf.volumeMounts" -}}
- name: config
  mountPath: /etc/wharf/wharf.toml
  subPath: wharf.toml
  readOnly: true
- name: data
  mountPath: /var/lib/wharf
- name: tmp
  mountPath: /tmp
- name: run
  mountPath: /run/wharf
  readOnly: true
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/wharf/tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* The port of the separate metrics listener, or nothing. */}}
{{- define "wharf.metricsPort" -}}
{{- if and .Values.metrics.enabled (gt (int .Values.metrics.port) 0) -}}
{{- int .Values.metrics.port -}}
{{- end -}}
{{- end -}}

{{/* Whether the blob volume can be mounted by several pods at once. */}}
{{- define "wharf.sharedVolume" -}}
{{- $fs := .Values.storage.filesystem.persistence -}}
{{- if and (eq .Values.storage.type "filesystem") $fs.enabled (has "ReadWriteMany" $fs.accessModes) -}}true{{- end -}}
{{- end -}}
