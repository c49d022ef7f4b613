{{/* Names ------------------------------------------------------------------- */}}

{{- define "karvdash.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Names of cluster-scoped objects carry the namespace: two releases of the
same name in two namespaces must not share them. */}}
{{- define "karvdash.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "karvdash.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "karvdash.labels" -}}
app.kubernetes.io/name: karvdash-hub
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "karvdash.selectorLabels" -}}
app.kubernetes.io/name: karvdash-hub
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "karvdash.image" -}}
{{- $component := index .root.Values .component -}}
{{- $component.image | default (include "karvdash.chartImage" .root) | default (printf "karvdash-hub:%s" .root.Chart.AppVersion) -}}
{{- end -}}

{{/* The chart-wide image, unless it is Karvdash's own (a Karvdash values
file names it), which cannot run karvdash-hub. */}}
{{- define "karvdash.chartImage" -}}
{{- if not (include "karvdash.karvdashImage" .) -}}{{ .Values.image }}{{- end -}}
{{- end -}}

{{- define "karvdash.karvdashImage" -}}
{{- if regexMatch "(^|/)carvicsforth/karvdash(:|@|$)" (.Values.image | default "") -}}{{ .Values.image }}{{- end -}}
{{- end -}}

{{/* Karvdash 2 values said "set to anything to enable" */}}
{{- define "karvdash.truthy" -}}
{{- if kindIs "bool" . -}}
{{- ternary "true" "" . -}}
{{- else if and . (not (has (lower (toString .)) (list "false" "no" "0" "off"))) -}}
true
{{- end -}}
{{- end -}}

{{/* The files -------------------------------------------------------------- */}}

{{- define "karvdash.files" -}}
{{- $url := required "karvdash.filesURL is required: file:///<path>, nfs://<server>/<path> or minio://<host>:<port>/<bucket>" .Values.karvdash.filesURL -}}
{{- $parts := urlParse $url -}}
{{- if not (has $parts.scheme (list "file" "nfs" "minio" "minios")) -}}
{{- fail (printf "karvdash.filesURL %q must start with file://, nfs://, minio:// or minios://" $url) -}}
{{- end -}}
{{- if and (has $parts.scheme (list "minio" "minios")) (not $parts.host) -}}
{{- fail (printf "karvdash.filesURL %q: an S3 URL needs a server, minio://<host>:<port>/<bucket>" $url) -}}
{{- end -}}
{{- if or (not (hasPrefix "/" $parts.path)) (eq $parts.path "/") -}}
{{- fail (printf "karvdash.filesURL %q needs an absolute path below /" $url) -}}
{{- end -}}
{{- if and (eq $parts.scheme "nfs") (not $parts.host) -}}
{{- fail (printf "karvdash.filesURL %q: an nfs:// URL needs a server" $url) -}}
{{- end -}}
scheme: {{ $parts.scheme }}
server: {{ $parts.host | quote }}
path: {{ $parts.path | quote }}
{{- end -}}

{{/* Where hub and dashboard see the files: the node path itself for file://
(so the paths they write are the paths pods mount), a fixed mount for NFS. */}}
{{- define "karvdash.filesMountPath" -}}
{{- $files := include "karvdash.files" . | fromYaml -}}
{{- if eq $files.scheme "file" -}}{{ $files.path }}{{- else -}}/srv/karvdash/files{{- end -}}
{{- end -}}

{{/* S3 files live in the bucket: the hub and the dashboard only stage
uploads, on a folder of the pod (a part at a time). */}}

{{- define "karvdash.filesVolume" -}}
{{- $files := include "karvdash.files" . | fromYaml -}}
- name: files
{{- if eq $files.scheme "file" }}
  hostPath:
    path: {{ $files.path | quote }}
    type: DirectoryOrCreate
{{- else if has $files.scheme (list "minio" "minios") }}
  emptyDir: {}
{{- else }}
  persistentVolumeClaim:
    claimName: {{ include "karvdash.fullname" . }}-files
{{- end }}
{{- end -}}

{{/* State and logs --------------------------------------------------------- */}}

{{- define "karvdash.stateVolume" -}}
{{- $k := .Values.karvdash -}}
{{- if and (not $k.stateVolumeClaim) (not $k.stateHostPath) -}}
{{- fail "set karvdash.stateVolumeClaim (an existing PersistentVolumeClaim) or karvdash.stateHostPath (a folder shared by all nodes) for the hub's state" -}}
{{- end -}}
- name: state
{{- if $k.stateVolumeClaim }}
  persistentVolumeClaim:
    claimName: {{ $k.stateVolumeClaim }}
{{- else }}
  hostPath:
    path: {{ $k.stateHostPath | quote }}
    type: DirectoryOrCreate
{{- end }}
{{- end -}}

{{- define "karvdash.logsVolume" -}}
{{- $k := .Values.karvdash -}}
{{- if $k.logsVolumeClaim }}
- name: logs
  persistentVolumeClaim:
    claimName: {{ $k.logsVolumeClaim }}
{{- else if $k.logsHostPath }}
- name: logs
  hostPath:
    path: {{ $k.logsHostPath | quote }}
    type: DirectoryOrCreate
{{- end }}
{{- end -}}

{{/* Secrets that must survive upgrades: reuse what the cluster has. */}}
{{- define "karvdash.generatedSecret" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace (printf "%s-secrets" (include "karvdash.fullname" .root)) -}}
{{- if and $existing (index ($existing.data | default dict) .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 64 -}}
{{- end -}}
{{- end -}}

{{/* The ONE values file ------------------------------------------------------- */}}

{{/* Keys of karvdash: that the chart itself uses (its volumes), not settings
of the hub. Karvdash's other names (djangoSecret, dockerRegistry, ...) go to
the values file as they are: karvdash_hub/core/karvdashvalues.py maps them
and the hub, the dashboard and the webhook log what it did. */}}
{{- define "karvdash.chartOnlyKeys" -}}
{{- list "stateVolumeClaim" "stateHostPath" "logsVolumeClaim" "logsHostPath" | toJson -}}
{{- end -}}

{{/* The settings as the hub, the dashboard and the webhook read them. */}}
{{- define "karvdash.settings" -}}
{{- $k := .root.Values.karvdash -}}
{{- $files := include "karvdash.files" .root | fromYaml -}}
{{- $_ := required "karvdash.ingressURL is required, e.g. https://example.com" .root.Values.karvdash.ingressURL -}}
{{- $settings := deepCopy $k -}}
{{- range (include "karvdash.chartOnlyKeys" . | fromJsonArray) -}}
{{- $_ := unset $settings . -}}
{{- end -}}
{{- /* the chart's admission policy needs the folders as a list */ -}}
{{- if kindIs "string" $k.allowedHostPathDirs -}}
{{- $_ := set $settings "allowedHostPathDirs" (compact (splitList ":" $k.allowedHostPathDirs)) -}}
{{- end -}}
{{- $_ := set $settings "mode" "kubernetes" -}}
{{- $_ := set $settings "stateDir" "/srv/karvdash/state" -}}
{{- if has $files.scheme (list "nfs" "minio" "minios") -}}
{{- $_ := set $settings "filesMountPath" (include "karvdash.filesMountPath" .root) -}}
{{- end -}}
{{- $dashboard := printf "http://%s-dashboard.%s.svc:8080" (include "karvdash.fullname" .root) .root.Release.Namespace -}}
{{- $_ := set $settings "dashboardURL" $dashboard -}}
{{- if not $k.serviceAuthURL -}}
{{- /* the ingress controller asks the dashboard directly, not through the ingress */ -}}
{{- $_ := set $settings "serviceAuthURL" (printf "%s/services/karvdash/ingress-auth/check" $dashboard) -}}
{{- end -}}
{{- if not $k.karvdashctlURL -}}
{{- /* karvdashctl in users' pods reaches the API through the proxy's Service:
the ingress URL may not resolve, or not be trusted, inside the cluster */ -}}
{{- $_ := set $settings "karvdashctlURL" (printf "http://%s-proxy-public.%s.svc:%v/services/karvdash/karvdash2/api/" (include "karvdash.fullname" .root) .root.Release.Namespace .root.Values.proxy.service.port) -}}
{{- end -}}
{{- if not $k.hubNamespace -}}
{{- /* where the dashboard keeps URL-prefix claims: the release's namespace */ -}}
{{- $_ := set $settings "hubNamespace" .root.Release.Namespace -}}
{{- end -}}
{{- if and (not (hasKey $k "ingressClassName")) .root.Values.ingress.className -}}
{{- /* services behind the same ingress controller as the hub */ -}}
{{- $_ := set $settings "ingressClassName" .root.Values.ingress.className -}}
{{- end -}}
{{- if not $k.appProxyImage -}}
{{- /* the sidecar runs jupyter-standaloneproxy, which this image has */ -}}
{{- $_ := set $settings "appProxyImage" (include "karvdash.image" (dict "root" .root "component" "hub")) -}}
{{- end -}}
{{- if .withSecrets -}}
{{- /* the webhook gets the settings without secrets it has no use for */ -}}
{{- $_ := set $settings "dashboardAPIToken" .dashboardToken -}}
{{- else -}}
{{- $settings = omit $settings "adminPassword" "dockerRegistryURL" "dockerRegistry" "dockerRegistryCert" "dockerRegistryInsecure" "dockerRegistryNoVerify" "dashboardURL" "djangoSecret" -}}
{{- end -}}
{{- toYaml $settings -}}
{{- end -}}

{{/* JupyterHub config the deployment needs; hub.config goes over it. */}}
{{- define "karvdash.hubConfig" -}}
{{- $name := include "karvdash.fullname" . -}}
{{- $config := dict
  "JupyterHub" (dict
    "hub_bind_url" "http://:8081"
    "hub_connect_url" (printf "http://%s-hub.%s.svc:8081" $name .Release.Namespace)
    "cleanup_servers" false)
  "ConfigurableHTTPProxy" (dict
    "should_start" false
    "api_url" (printf "http://%s-proxy-api:8001" $name))
-}}
{{- if .Values.hub.db.url -}}
{{- $_ := set $config.JupyterHub "db_url" .Values.hub.db.url -}}
{{- end -}}
{{- if or .Values.karvdash.logsVolumeClaim .Values.karvdash.logsHostPath -}}
{{- $_ := set $config.JupyterHub "extra_log_file" "/var/log/karvdash/jupyterhub.log" -}}
{{- end -}}
{{- toYaml (mergeOverwrite $config (deepCopy .Values.hub.config)) -}}
{{- end -}}

{{/* Pod pieces ------------------------------------------------------------------- */}}

{{- define "karvdash.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "karvdash.containerSecurityContext" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
{{- end -}}


{{/* The admission webhook ----------------------------------------------------- */}}

{{- define "karvdash.webhookTLSSecret" -}}
{{- if .Values.webhook.certManager.enabled -}}
{{- include "karvdash.fullname" . }}-webhook-tls
{{- else -}}
{{- required "webhook.tls.secretName is required without cert-manager (webhook.certManager.enabled: false)" .Values.webhook.tls.secretName -}}
{{- end -}}
{{- end -}}

{{- define "karvdash.webhookAnnotations" -}}
{{- if .Values.webhook.certManager.enabled -}}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s-webhook" .Release.Namespace (include "karvdash.fullname" .) }}
{{- end -}}
{{- end -}}

{{- define "karvdash.webhookClient" -}}
clientConfig:
  service:
    name: {{ include "karvdash.fullname" .root }}-webhook
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: 443
  {{- if and (not .root.Values.webhook.certManager.enabled) .root.Values.webhook.tls.caBundle }}
  caBundle: {{ .root.Values.webhook.tls.caBundle | b64enc }}
  {{- end }}
{{- end -}}

{{/* Only user namespaces (labelled by the hub), and never the system ones or
the chart's own, even if someone labels them: an outage of the webhook can
then only delay pods of users. */}}
{{- define "karvdash.webhookNamespaceSelector" -}}
namespaceSelector:
  matchLabels:
    karvdash.io/user-namespace: enabled
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: [kube-system, kube-public, kube-node-lease, default, {{ .Release.Namespace | quote }}]
{{- end -}}
