{{/* The host of ingressURL, which every Ingress of the chart serves. */}}
{{- define "karvdash.ingressHost" -}}
{{- (urlParse (required "karvdash.ingressURL is required, e.g. https://example.com" .Values.karvdash.ingressURL)).host | splitList ":" | first -}}
{{- end -}}

{{/* ingressClassName and tls of every Ingress of the chart (the same on
each: controllers that keep one router per Ingress serve each path with it). */}}
{{- define "karvdash.ingressSpec" -}}
{{- $host := include "karvdash.ingressHost" . -}}
{{- with .Values.ingress.className }}
ingressClassName: {{ . }}
{{- end }}
{{- with .Values.ingress.tls }}
tls:
  {{- range . }}
  - secretName: {{ .secretName }}
    hosts: {{ .hosts | default (list $host) | toJson }}
  {{- end }}
{{- end }}
{{- end -}}
