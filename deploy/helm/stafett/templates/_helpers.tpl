{{/* The four services: name and what the portal calls each. */}}
{{- define "stafett.services" -}}
case log consent notify
{{- end -}}

{{- define "stafett.labels" -}}
app.kubernetes.io/name: stafett
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stafett
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "case"). */}}
{{- define "stafett.selector" -}}
app.kubernetes.io/name: stafett
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "stafett.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stafett.image" -}}
{{- $registry := .root.Values.image.registry -}}
{{- $tag := .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if $registry -}}
{{ printf "%s/stafett-%s:%s" (trimSuffix "/" $registry) .image $tag }}
{{- else -}}
{{ printf "stafett-%s:%s" .image $tag }}
{{- end -}}
{{- end -}}

{{- define "stafett.natsUrl" -}}
{{- if .Values.natsConnection.url -}}
{{ .Values.natsConnection.url }}
{{- else -}}
{{ printf "%s://%s-nats:4222" (ternary "tls" "nats" .Values.natsConnection.tls.enabled) .Release.Name }}
{{- end -}}
{{- end -}}

{{- define "stafett.pgCluster" -}}
{{- .Values.postgres.clusterName | default (printf "%s-pg" .Release.Name) -}}
{{- end -}}

{{- define "stafett.pgHost" -}}
{{- if .Values.postgres.enabled -}}
{{ printf "%s-rw" (include "stafett.pgCluster" .) }}
{{- else -}}
{{ required "postgres.host is needed when postgres.enabled is false" .Values.postgres.host }}
{{- end -}}
{{- end -}}

{{/* Environment every process shares, the portal included. */}}
{{- define "stafett.commonEnv" -}}
- name: STAFETT_ENV
  value: production
- name: STAFETT_LOG_LEVEL
  value: {{ .Values.region.logLevel | quote }}
- name: STAFETT_LOG_JSON
  value: "true"
{{- /* Empty lists render, and every process then refuses to start in production with a
     message that names the setting (stafett_shared.settings). */}}
- name: STAFETT_ISSUERS
  value: {{ mustToJson (.Values.region.issuers | default list) | quote }}
- name: STAFETT_ADMINS
  value: {{ mustToJson (.Values.region.admins | default list) | quote }}
{{- with .Values.region.orgAdmins }}
- name: STAFETT_ORG_ADMINS
  value: {{ mustToJson . | quote }}
{{- end }}
{{- range $name, $value := .Values.region.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* What a process that talks to NATS needs besides its user: (dict "root" $). */}}
{{- define "stafett.natsEnv" -}}
- name: STAFETT_NATS_URL
  value: {{ include "stafett.natsUrl" .root | quote }}
{{- if .root.Values.natsConnection.tls.enabled }}
- name: STAFETT_NATS_TLS_CA
  value: /etc/stafett/nats-ca/{{ .root.Values.natsConnection.tls.caKey }}
{{- end }}
- name: STAFETT_CREATE_STREAM
  value: "false"
- name: STAFETT_STREAM_REPLICAS
  value: {{ .root.Values.natsConnection.streamReplicas | quote }}
{{- end -}}

{{/* A NATS user's name and password: (dict "root" $ "user" "case"). */}}
{{- define "stafett.natsUser" -}}
- name: STAFETT_NATS_USER
  value: {{ .user }}
- name: STAFETT_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.secrets.nats.name }}
      key: {{ .user }}
{{- end -}}

{{/* A service's database: the role's password, then the URL built from it by Kubernetes
     ($(VAR) expansion), never written into the manifest. (dict "root" $ "service" "case") */}}
{{- define "stafett.databaseEnv" -}}
{{- $upper := upper .service -}}
- name: STAFETT_{{ $upper }}_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ index .root.Values.secrets.database .service }}
      key: password
- name: STAFETT_{{ $upper }}_DATABASE_URL
  value: {{ printf "postgresql://stafett_%s:$(STAFETT_%s_DB_PASSWORD)@%s:%v/stafett_%s" .service $upper (include "stafett.pgHost" .root) .root.Values.postgres.port .service | quote }}
- name: PGSSLMODE
  value: {{ .root.Values.postgres.sslMode | quote }}
{{- if .root.Values.postgres.enabled }}
- name: PGSSLROOTCERT
  value: /etc/stafett/pg-ca/ca.crt
{{- end }}
{{- end -}}

{{/* A setting read from a Secret, left out when the Secret's name is empty:
     (dict "env" "STAFETT_KEK" "ref" .Values.secrets.kek). */}}
{{- define "stafett.secretEnv" -}}
{{- if .ref.name -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.name }}
      key: {{ .ref.key }}
{{- end -}}
{{- end -}}

{{/* The keys a service holds, the portal never: the KEK, its id and, while set, the fixed
     blind index key and the keys that only unwrap (docs/operators.md, "Key rotation"). */}}
{{- define "stafett.keyEnv" -}}
{{- $secrets := .Values.secrets -}}
{{ include "stafett.secretEnv" (dict "env" "STAFETT_KEK" "ref" $secrets.kek) }}
- name: STAFETT_KEK_ID
  value: {{ .Values.region.kekId | quote }}
{{- with include "stafett.secretEnv" (dict "env" "STAFETT_BLIND_INDEX_KEY" "ref" $secrets.blindIndexKey) }}
{{ . }}
{{- end }}
{{- with include "stafett.secretEnv" (dict "env" "STAFETT_OTHER_KEKS" "ref" $secrets.otherKeks) }}
{{ . }}
{{- end }}
{{- end -}}

{{- define "stafett.natsCaVolume" -}}
{{- if .Values.natsConnection.tls.enabled }}
- name: nats-ca
  secret:
    secretName: {{ .Values.natsConnection.tls.caSecret }}
    items:
      - key: {{ .Values.natsConnection.tls.caKey }}
        path: {{ .Values.natsConnection.tls.caKey }}
{{- end }}
{{- end -}}

{{- define "stafett.natsCaMount" -}}
{{- if .Values.natsConnection.tls.enabled }}
- name: nats-ca
  mountPath: /etc/stafett/nats-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "stafett.pgCaVolume" -}}
{{- if .Values.postgres.enabled }}
- name: pg-ca
  secret:
    secretName: {{ include "stafett.pgCluster" . }}-ca
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end -}}

{{- define "stafett.pgCaMount" -}}
{{- if .Values.postgres.enabled }}
- name: pg-ca
  mountPath: /etc/stafett/pg-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod-level settings every Stafett pod shares. */}}
{{- define "stafett.podSpec" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
