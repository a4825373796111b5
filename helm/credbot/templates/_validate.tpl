{{/*
credbot.validate fails the render, listing every problem at once, when the
values describe a release that cannot start or does not do what they say.
*/}}
{{- define "credbot.validate" -}}
{{- $v := .Values }}
{{- $errs := list }}

{{- /* Slack */}}
{{- $slackInline := or $v.slack.botToken $v.slack.signingSecret $v.slack.appToken }}
{{- if and $v.slack.existingSecret $slackInline }}
{{- $errs = append $errs "slack: set either slack.existingSecret or the inline tokens (slack.botToken, slack.signingSecret, slack.appToken), not both" }}
{{- end }}
{{- if not (or $v.slack.existingSecret $v.slack.botToken) }}
{{- $errs = append $errs "slack: set slack.botToken (xoxb-…) or slack.existingSecret" }}
{{- end }}
{{- if eq $v.mode "socket" }}
{{- if not (or $v.slack.existingSecret $v.slack.appToken) }}
{{- $errs = append $errs "mode socket needs an app-level token: set slack.appToken (xapp-…) or slack.existingSecret with the key slack.existingSecretKeys.appToken" }}
{{- end }}
{{- if gt (int $v.replicaCount) 10 }}
{{- $errs = append $errs (printf "mode socket: replicaCount is %d, but Slack allows at most 10 Socket Mode connections per app" (int $v.replicaCount)) }}
{{- end }}
{{- if $v.ingress.enabled }}
{{- $errs = append $errs "mode socket: the bot dials Slack and needs no ingress; set ingress.enabled=false (or mode http)" }}
{{- end }}
{{- else }}
{{- if not (or $v.slack.existingSecret $v.slack.signingSecret) }}
{{- $errs = append $errs "mode http needs the signing secret that verifies Slack's requests: set slack.signingSecret or slack.existingSecret with the key slack.existingSecretKeys.signingSecret" }}
{{- end }}
{{- if $v.slack.appToken }}
{{- $errs = append $errs "slack.appToken is set but mode is http: set mode: socket to use Socket Mode, or drop the token" }}
{{- end }}
{{- if and $v.ingress.enabled (not $v.ingress.host) }}
{{- $errs = append $errs "ingress.enabled needs ingress.host (the host of Slack's Request URLs)" }}
{{- end }}
{{- end }}

{{- /* Bot configuration */}}
{{- if not $v.config.approvalChannel }}
{{- $errs = append $errs "config.approvalChannel (CREDBOT_APPROVAL_CHANNEL, a channel id like C0123456789) is required" }}
{{- end }}

{{- /* Sealing key */}}
{{- if and $v.secretKey.existingSecret $v.secretKey.value }}
{{- $errs = append $errs "secretKey: set either secretKey.existingSecret or secretKey.value, not both" }}
{{- end }}
{{- if not (or $v.secretKey.existingSecret $v.secretKey.value) }}
{{- $errs = append $errs "secretKey: set secretKey.value (openssl rand -base64 32) or secretKey.existingSecret" }}
{{- end }}

{{- /* Audit key and webhook */}}
{{- if and $v.auditKey.existingSecret $v.auditKey.value }}
{{- $errs = append $errs "auditKey: set either auditKey.existingSecret or auditKey.value, not both" }}
{{- end }}
{{- if not (or $v.auditKey.existingSecret $v.auditKey.value) }}
{{- $errs = append $errs "auditKey: set auditKey.value (openssl rand -base64 32, not the sealing key) or auditKey.existingSecret" }}
{{- end }}
{{- if and $v.auditWebhookSecret.existingSecret $v.auditWebhookSecret.value }}
{{- $errs = append $errs "auditWebhookSecret: set either auditWebhookSecret.existingSecret or auditWebhookSecret.value, not both" }}
{{- end }}
{{- $webhookSecret := or $v.auditWebhookSecret.existingSecret $v.auditWebhookSecret.value }}
{{- if and $v.config.auditWebhookUrl (not $webhookSecret) }}
{{- $errs = append $errs "config.auditWebhookUrl needs the secret that signs its requests: set auditWebhookSecret.value or auditWebhookSecret.existingSecret" }}
{{- end }}
{{- if and $webhookSecret (not $v.config.auditWebhookUrl) }}
{{- $errs = append $errs "auditWebhookSecret is set but config.auditWebhookUrl is not" }}
{{- end }}

{{- /* Redis */}}
{{- if and $v.redis.existingSecret $v.redis.url }}
{{- $errs = append $errs "redis: set either redis.existingSecret or redis.url, not both" }}
{{- end }}
{{- if not (or $v.redis.existingSecret $v.redis.url) }}
{{- $errs = append $errs "redis: set redis.url or redis.existingSecret" }}
{{- end }}

{{- /* BTP */}}
{{- $b := $v.btp }}
{{- if not $b.globalAccount }}
{{- $errs = append $errs "btp.globalAccount (the global account's subdomain) is required" }}
{{- else if regexMatch "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$" $b.globalAccount }}
{{- $errs = append $errs "btp.globalAccount must be the global account's subdomain, not its GUID" }}
{{- end }}
{{- $btpInline := dict "password" $b.password "assertion" $b.assertion "x509" (or $b.tlsClientCertificate $b.tlsClientKey) }}
{{- range $flow, $set := $btpInline }}
{{- if and $set (ne $flow $b.loginFlow) }}
{{- $errs = append $errs (printf "btp: a %s secret is set inline but btp.loginFlow is %s; drop it or change the flow" $flow $b.loginFlow) }}
{{- end }}
{{- end }}
{{- if and $b.existingSecret (or $b.password $b.assertion $b.tlsClientCertificate $b.tlsClientKey) }}
{{- $errs = append $errs "btp: set either btp.existingSecret or the inline secrets (btp.password, btp.assertion, btp.tlsClientCertificate/tlsClientKey), not both" }}
{{- end }}
{{- if eq $b.loginFlow "x509" }}
{{- if or (not $b.username) (not $b.tlsIdpUrl) }}
{{- $errs = append $errs "btp.loginFlow x509 needs btp.username and btp.tlsIdpUrl" }}
{{- end }}
{{- if and (not $b.existingSecret) (not (and $b.tlsClientCertificate $b.tlsClientKey)) }}
{{- $errs = append $errs "btp.loginFlow x509 needs btp.tlsClientCertificate and btp.tlsClientKey (PEM), or btp.existingSecret" }}
{{- end }}
{{- else if eq $b.loginFlow "assertion" }}
{{- if not $b.idp }}
{{- $errs = append $errs "btp.loginFlow assertion needs btp.idp (the custom IdP)" }}
{{- end }}
{{- if not (or $b.existingSecret $b.assertion) }}
{{- $errs = append $errs "btp.loginFlow assertion needs btp.assertion or btp.existingSecret" }}
{{- end }}
{{- else if eq $b.loginFlow "password" }}
{{- if not $b.username }}
{{- $errs = append $errs "btp.loginFlow password needs btp.username" }}
{{- end }}
{{- if not (or $b.existingSecret $b.password) }}
{{- $errs = append $errs "btp.loginFlow password needs btp.password or btp.existingSecret" }}
{{- end }}
{{- end }}

{{- /* Policy */}}
{{- if and $v.policies.existingConfigMap $v.policies.files }}
{{- $errs = append $errs "policies: set either policies.existingConfigMap or policies.files, not both" }}
{{- end }}
{{- if not (or $v.policies.existingConfigMap $v.policies.files) }}
{{- $errs = append $errs "policies: set policies.files (model.conf, *.csv, …) or policies.existingConfigMap; the example policy in the image grants nothing in a real global account" }}
{{- end }}
{{- if $v.policies.files }}
{{- if not (hasKey $v.policies.files "model.conf") }}
{{- $errs = append $errs "policies.files needs model.conf (the repository's policies/model.conf; the bot refuses any other model)" }}
{{- end }}
{{- $csv := false }}
{{- range $name, $_ := $v.policies.files }}{{ if hasSuffix ".csv" $name }}{{ $csv = true }}{{ end }}{{ end }}
{{- if not $csv }}
{{- $errs = append $errs "policies.files needs at least one *.csv file with the policy rows" }}
{{- end }}
{{- end }}

{{- /* Disruption budget */}}
{{- $pdb := $v.podDisruptionBudget }}
{{- if and $pdb.enabled (gt (int $v.replicaCount) 1) }}
{{- $min := toString $pdb.minAvailable }}
{{- $max := toString $pdb.maxUnavailable }}
{{- if and (ne $min "") (ne $max "") }}
{{- $errs = append $errs "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- else if and (eq $min "") (eq $max "") }}
{{- $errs = append $errs "podDisruptionBudget: set minAvailable or maxUnavailable" }}
{{- end }}
{{- end }}

{{- /* Shutdown */}}
{{- if eq (include "credbot.millis" $v.drain.timeout) "0" }}
{{- $errs = append $errs "drain.timeout (CREDBOT_DRAIN_TIMEOUT) must be longer than 0 (e.g. 20s): with no time to drain, a replica would cut off its in-flight work" }}
{{- end }}

{{- /* Extra environment */}}
{{- $managed := list "CREDBOT_LISTEN_ADDR" "CREDBOT_POLICY_DIR" "CREDBOT_APPROVAL_CHANNEL" "CREDBOT_ESCALATION_CHANNEL" "CREDBOT_AUDIT_CHANNEL" "CREDBOT_BREAKGLASS_CHANNEL" "CREDBOT_BREAKGLASS_ESCALATION" "CREDBOT_BREAKGLASS_LIFETIME" "CREDBOT_BREAKGLASS_REVIEW" "CREDBOT_BREAKGLASS_REASON_PATTERN" "CREDBOT_ASSIGN_MAX_FOR" "CREDBOT_BTP_USER_ORIGIN" "CREDBOT_ALLOWED_TEAMS" "CREDBOT_PENDING_TTL" "CREDBOT_CLAIM_WINDOW" "CREDBOT_MAX_LIFETIME" "CREDBOT_ROTATION_GRACE" "CREDBOT_RETENTION" "CREDBOT_REMIND_AFTER" "CREDBOT_ESCALATE_AFTER" "CREDBOT_MINT_WORKERS" "CREDBOT_WORKERS" "CREDBOT_RESCUE_AFTER" "CREDBOT_SWEEP_INTERVAL" "CREDBOT_LOG_LEVEL" "CREDBOT_LOG_FORMAT" "CREDBOT_DRAIN_TIMEOUT" "CREDBOT_MAX_PENDING_PER_USER" "CREDBOT_COMMANDS_PER_MINUTE" "CREDBOT_LOOKUP_CACHE" "CREDBOT_INVENTORY_INTERVAL" "CREDBOT_SECRET_KEY" "CREDBOT_AUDIT_KEY" "CREDBOT_AUDIT_RETAIN" "CREDBOT_AUDIT_WEBHOOK_URL" "CREDBOT_AUDIT_WEBHOOK_SECRET" "CREDBOT_KEY_PREFIX" "REDIS_URL" "SLACK_BOT_TOKEN" "SLACK_SIGNING_SECRET" "SLACK_APP_TOKEN" "SLACK_API_URL" "BTP_CLI_SERVER_URL" "BTP_GLOBALACCOUNT" "BTP_USERNAME" "BTP_PASSWORD" "BTP_IDP" "BTP_ASSERTION" "BTP_TLS_CLIENT_CERTIFICATE" "BTP_TLS_CLIENT_KEY" "BTP_TLS_IDP_URL" "BTP_PROTOCOL_VERSION" "BTP_VERIFY_CREDENTIALS" }}
{{- range $v.extraEnv }}
{{- if has .name $managed }}
{{- $errs = append $errs (printf "extraEnv: %s is set by the chart from its values; use those instead" .name) }}
{{- end }}
{{- end }}

{{- if $errs }}
{{- fail (printf "\n\ncredbot: the values cannot make a working release:\n  - %s\n" (join "\n  - " $errs)) }}
{{- end }}
{{- end }}
