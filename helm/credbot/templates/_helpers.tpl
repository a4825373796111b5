{{/*
Names and labels, as `helm create` scaffolds them.
*/}}
{{- define "credbot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, cut to 63 characters (DNS label limit). If the
release name already contains the chart name it is used as is.
*/}}
{{- define "credbot.fullname" -}}
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

{{- define "credbot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "credbot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "credbot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "credbot.labels" -}}
helm.sh/chart: {{ include "credbot.chart" . }}
{{ include "credbot.selectorLabels" . }}
app.kubernetes.io/version: {{ include "credbot.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: slack-bot
app.kubernetes.io/part-of: credbot
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "credbot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "credbot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "credbot.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/*
registry/repository:tag, or registry/repository@digest when a digest is set.
*/}}
{{- define "credbot.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (include "credbot.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
The Secret the chart renders for every group given inline.
*/}}
{{- define "credbot.secretName" -}}
{{- include "credbot.fullname" . }}
{{- end }}

{{- define "credbot.slackSecret" -}}
{{- default (include "credbot.secretName" .) .Values.slack.existingSecret }}
{{- end }}

{{- define "credbot.btpSecret" -}}
{{- default (include "credbot.secretName" .) .Values.btp.existingSecret }}
{{- end }}

{{- define "credbot.secretKeySecret" -}}
{{- default (include "credbot.secretName" .) .Values.secretKey.existingSecret }}
{{- end }}

{{- define "credbot.auditKeySecret" -}}
{{- default (include "credbot.secretName" .) .Values.auditKey.existingSecret }}
{{- end }}

{{- define "credbot.auditWebhookSecret" -}}
{{- default (include "credbot.secretName" .) .Values.auditWebhookSecret.existingSecret }}
{{- end }}

{{- define "credbot.redisSecret" -}}
{{- default (include "credbot.secretName" .) .Values.redis.existingSecret }}
{{- end }}

{{/*
"true" when at least one secret group is given inline, so the chart's Secret
is needed.
*/}}
{{- define "credbot.needsSecret" -}}
{{- if or (not .Values.slack.existingSecret) (not .Values.btp.existingSecret) (not .Values.secretKey.existingSecret) (not .Values.auditKey.existingSecret) (and .Values.config.auditWebhookUrl (not .Values.auditWebhookSecret.existingSecret)) (not .Values.redis.existingSecret) }}true{{ end }}
{{- end }}

{{/*
The ConfigMap mounted as the policy directory, or nothing. An inline policy
gets an immutable ConfigMap named after its content: serving pods keep the
files they started with and only the rollout's new pods see a new policy, so
a policy that does not load stops the rollout (the bot refuses to start on
it) without reaching the serving replicas.
*/}}
{{- define "credbot.policyConfigMap" -}}
{{- if .Values.policies.existingConfigMap }}
{{- .Values.policies.existingConfigMap }}
{{- else if .Values.policies.files }}
{{- printf "%s-policies-%s" (include "credbot.fullname" .) (include "credbot.policyChecksum" . | trunc 10) }}
{{- end }}
{{- end }}

{{- define "credbot.policyChecksum" -}}
{{- toJson .Values.policies.files | sha256sum }}
{{- end }}

{{- define "credbot.policyDir" -}}/etc/credbot/policies{{- end }}
{{- define "credbot.btpSecretDir" -}}/var/run/secrets/credbot/btp{{- end }}

{{- define "credbot.probeTiming" -}}
initialDelaySeconds: {{ .initialDelaySeconds }}
periodSeconds: {{ .periodSeconds }}
timeoutSeconds: {{ .timeoutSeconds }}
failureThreshold: {{ .failureThreshold }}
successThreshold: {{ .successThreshold }}
{{- end }}

{{/*
credbot.millis: a duration of the schema's drainDuration form (whole h, m, s,
ms: 5s, 1m30s, 1500ms) in milliseconds.
*/}}
{{- define "credbot.millis" -}}
{{- $unit := dict "h" 3600000 "m" 60000 "s" 1000 "ms" 1 }}
{{- $ms := 0 }}
{{- range regexFindAll "[0-9]+(ms|h|m|s)" . -1 }}
{{- $n := regexFind "^[0-9]+" . }}
{{- $ms = add $ms (mul (atoi $n) (index $unit (trimPrefix $n .))) }}
{{- end }}
{{- $ms }}
{{- end }}

{{/*
The pod's terminationGracePeriodSeconds covers the whole shutdown, which
Kubernetes counts from the pod's deletion: the preStop pause, the bot's drain
after SIGTERM, and 10 s for the process to exit once the drain is over (close
Redis, flush logs) before the kubelet kills it. Computed, not a value, so it
cannot fall short of the other two.
*/}}
{{- define "credbot.terminationGracePeriodSeconds" -}}
{{- $ms := add (include "credbot.millis" .Values.drain.preStopDelay | atoi) (include "credbot.millis" .Values.drain.timeout | atoi) }}
{{- add (div (add $ms 999) 1000) 10 }}
{{- end }}
