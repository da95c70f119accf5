{{/* Names and labels. */}}
{{- define "streetscope.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "streetscope.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "streetscope.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "streetscope.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: streetscope
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "detector"). */}}
{{- define "streetscope.selector" -}}
app.kubernetes.io/name: {{ include "streetscope.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "streetscope.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "streetscope.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* An image reference: (dict "image" .Values.image "ctx" $). Digest wins over tag. */}}
{{- define "streetscope.imageRef" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The brokers: the demo broker's Service, or kafka.brokers. */}}
{{- define "streetscope.brokers" -}}
{{- if .Values.demoBroker.enabled -}}
{{- printf "%s-kafka:9092" (include "streetscope.fullname" .) -}}
{{- else -}}
{{- required "kafka.brokers is required (comma-separated host:port), or set demoBroker.enabled for a demo install" .Values.kafka.brokers -}}
{{- end -}}
{{- end -}}

{{/* Kafka security protocol as the stages derive it (docs/configuration.md). */}}
{{- define "streetscope.kafkaProtocol" -}}
{{- $s := .Values.kafka.security -}}
{{- if $s.protocol -}}{{ $s.protocol }}
{{- else if and $s.tls.enabled $s.sasl.enabled -}}sasl_ssl
{{- else if $s.tls.enabled -}}ssl
{{- else if $s.sasl.enabled -}}sasl_plaintext
{{- else -}}plaintext
{{- end -}}
{{- end -}}

{{- define "streetscope.kafkaSecretDir" -}}/etc/streetscope/kafka{{- end -}}

{{/*
A TOML table from a map: scalars as `key = value` under [path], nested maps as
sub-tables. Strings are JSON-quoted (a JSON string is a TOML basic string);
whole numbers are written as integers (TOML integers are accepted where the
stages take floats). null values are left out. Arrays of tables are refused.
*/}}
{{- define "streetscope.toml.value" -}}
{{- if kindIs "string" . -}}{{ toJson . }}
{{- else if kindIs "bool" . -}}{{ . }}
{{- else if or (kindIs "float64" .) (kindIs "float32" .) -}}
{{- if eq (float64 .) (float64 (int64 .)) -}}{{ int64 . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- else if kindIs "slice" . -}}
{{- $items := list -}}
{{- range . -}}
{{- if or (kindIs "map" .) (kindIs "slice" .) -}}{{- fail "cluster config: arrays of tables or nested arrays are not supported in config.* values" -}}{{- end -}}
{{- $items = append $items (include "streetscope.toml.value" .) -}}
{{- end -}}
[{{ join ", " $items }}]
{{- else -}}{{ toJson . }}
{{- end -}}
{{- end -}}

{{- define "streetscope.toml.table" -}}
{{- $scalars := dict -}}
{{- $tables := dict -}}
{{- range $k, $v := .data -}}
{{- if kindIs "map" $v -}}{{- $_ := set $tables $k $v -}}
{{- else if not (kindIs "invalid" $v) -}}{{- $_ := set $scalars $k $v -}}
{{- end -}}
{{- end }}
{{- if or $scalars (not $tables) }}
[{{ .path }}]
{{- range $k, $v := $scalars }}
{{ $k }} = {{ include "streetscope.toml.value" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := $tables }}
{{ include "streetscope.toml.table" (dict "path" (printf "%s.%s" $.path $k) "data" $v) }}
{{- end }}
{{- end -}}

{{/*
The cluster configuration (docs/configuration.md, ClusterConfig) of a stage:
(dict "ctx" $ "pool" $pool); pool is nil for every stage but detectors. The
detector pools' consumer group and frames topic are the same values the KEDA
trigger renders from: kafka.groups.detect and kafka.topics.frames.name.
*/}}
{{- define "streetscope.clusterToml" -}}
{{- $ := .ctx -}}
{{- $k := $.Values.kafka -}}
{{- $dir := include "streetscope.kafkaSecretDir" $ -}}
# Rendered by the streetscope chart; the reference is docs/configuration.md.
{{- $kafka := dict "brokers" (include "streetscope.brokers" $) "client_id" $k.clientId "session_timeout_ms" $k.sessionTimeoutMs -}}
{{- if $k.extra }}{{ $_ := set $kafka "extra" $k.extra }}{{ end -}}
{{- $sec := dict "protocol" (include "streetscope.kafkaProtocol" $) -}}
{{- if $k.security.tls.enabled -}}
{{- $tls := dict "ca_file" (printf "%s/%s" $dir $k.security.tls.caKey) "verify_hostname" $k.security.tls.verifyHostname -}}
{{- if $k.security.tls.certKey -}}
{{- $_ := set $tls "cert_file" (printf "%s/%s" $dir $k.security.tls.certKey) -}}
{{- $_ := set $tls "key_file" (printf "%s/%s" $dir $k.security.tls.keyKey) -}}
{{- end -}}
{{- if $k.security.tls.keyPasswordKey -}}{{- $_ := set $tls "key_password_file" (printf "%s/%s" $dir $k.security.tls.keyPasswordKey) -}}{{- end -}}
{{- $_ := set $sec "tls" $tls -}}
{{- end -}}
{{- if $k.security.sasl.enabled -}}
{{- $_ := set $sec "sasl" (dict "mechanism" $k.security.sasl.mechanism "username" $k.security.sasl.username "password_file" (printf "%s/%s" $dir $k.security.sasl.passwordKey)) -}}
{{- end -}}
{{- $_ := set $kafka "security" $sec -}}
{{- $_ := set $kafka "groups" (dict "ingest" $k.groups.ingest "detect" $k.groups.detect "aggregate" $k.groups.aggregate) -}}
{{- $topics := dict -}}
{{- range $name, $t := $k.topics -}}
{{- $spec := dict "name" $t.name "partitions" $t.partitions "replication" $t.replication "cleanup_policy" $t.cleanupPolicy -}}
{{- if $t.retentionHours }}{{ $_ := set $spec "retention_hours" $t.retentionHours }}{{ end -}}
{{- $_ := set $topics $name $spec -}}
{{- end -}}
{{- $_ := set $kafka "topics" $topics }}
{{ include "streetscope.toml.table" (dict "path" "kafka" "data" $kafka) }}
{{- $detector := dict -}}
{{- with .pool -}}
{{- $detector = include "streetscope.poolDetector" (dict "ctx" $ "pool" .) | fromJson -}}
{{- $_ := set $detector "model" (include "streetscope.poolModel" (dict "ctx" $ "pool" .)) -}}
{{- $_ := set $detector "providers" .providers -}}
{{- if not (hasKey (default dict .config) "threads") -}}
{{- $_ := set $detector "threads" $.Values.detector.threads -}}
{{- end -}}
{{- if and $.Values.engineCache.enabled (eq .image "gpu") -}}
{{- $trt := deepCopy (default dict $detector.tensorrt) -}}
{{- $_ := set $trt "engine_cache_dir" "/var/cache/streetscope/engines" -}}
{{- $_ := set $detector "tensorrt" $trt -}}
{{- end -}}
{{- end }}
{{- /* Only detectors read [detector]: the other stages' file leaves it out, so a detector setting rolls the detectors alone. */ -}}
{{- if .pool }}
{{ include "streetscope.toml.table" (dict "path" "detector" "data" $detector) }}
{{- end }}
{{- /* Every other section of config.* as it is: the schema (streetscope schema) admits exactly the cluster configuration's sections. */ -}}
{{- range $section, $data := $.Values.config }}
{{- if and (eq $section "status") $.Values.statusTls.enabled }}
{{- $data = merge (dict "tls" (dict "cert_file" (printf "%s/%s" (include "streetscope.statusTlsDir" $) $.Values.statusTls.certKey) "key_file" (printf "%s/%s" (include "streetscope.statusTlsDir" $) $.Values.statusTls.keyKey))) (deepCopy (default dict $data)) }}
{{- end }}
{{- if and (ne $section "detector") $data }}
{{ include "streetscope.toml.table" (dict "path" $section "data" $data) }}
{{- end }}
{{- end }}
{{ end -}}

{{/* A detector pool's model: (dict "ctx" $ "pool" P): its own, else detector.model. */}}
{{- define "streetscope.poolModel" -}}
{{- default .ctx.Values.detector.model .pool.model -}}
{{- end -}}

{{/* A detector pool's [detector] settings as JSON: config.detector with the
pool's config over it. Its model and providers are the pool's own keys. */}}
{{- define "streetscope.poolDetector" -}}
{{- $own := deepCopy (default dict .pool.config) -}}
{{- range $k := list "model" "providers" -}}
{{- if hasKey $own $k -}}
{{- fail (printf "detector.pools[%s].config.%s: set detector.pools[%s].%s instead" $.pool.name $k $.pool.name $k) -}}
{{- end -}}
{{- end -}}
{{- mergeOverwrite (deepCopy (default dict .ctx.Values.config.detector)) $own | toJson -}}
{{- end -}}

{{/* Engine cache key of a GPU pool: model x GPU type x TensorRT x ONNX Runtime x
the engine's settings (config.detector.tensorrt: precision, batch profile,
workspace; and the input size): an engine built for other settings does not
load, so new settings are a new key, a new directory and a new warm-up Job. */}}
{{- define "streetscope.engineKey" -}}
{{- $ := .ctx -}}
{{- $model := base (include "streetscope.poolModel" .) | trimSuffix ".onnx" -}}
{{- $gpu := required (printf "detector.pools[%s].gpuProduct is required with engineCache.enabled (the GPU model is part of the engine cache key)" .pool.name) .pool.gpuProduct -}}
{{- $d := include "streetscope.poolDetector" . | fromJson -}}
{{- $settings := dict "tensorrt" (omit (default dict $d.tensorrt) "engine_cache_dir") "input_size" $d.input_size -}}
{{- printf "%s_%s_trt%s_ort%s_%s" $model $gpu $.Values.gpuImage.tensorrtVersion $.Values.gpuImage.onnxruntimeVersion (toJson $settings | sha256sum | trunc 8) | lower | replace "/" "-" | replace " " "-" -}}
{{- end -}}

{{/* Pod-level settings shared by every pod. */}}
{{- define "streetscope.podCommon" -}}
serviceAccountName: {{ include "streetscope.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Topology spread of a component: (dict "ctx" $ "component" "detector"). */}}
{{- define "streetscope.topologySpread" -}}
{{- if .ctx.Values.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: {{ .ctx.Values.topologySpread.maxSkew }}
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: {{ .ctx.Values.topologySpread.zone }}
    labelSelector:
      matchLabels:
        {{- include "streetscope.selector" . | nindent 8 }}
  - maxSkew: {{ .ctx.Values.topologySpread.maxSkew }}
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: {{ .ctx.Values.topologySpread.node }}
    labelSelector:
      matchLabels:
        {{- include "streetscope.selector" . | nindent 8 }}
{{- end }}
{{- end -}}

{{/* Environment of every stage container. */}}
{{- define "streetscope.stageEnv" -}}
- name: STREETSCOPE_CACHE
  value: /var/cache/streetscope
- name: GST_REGISTRY
  value: /tmp/gstreamer-registry.bin
- name: HOME
  value: /tmp
- name: RUST_LOG
  value: info
# On SIGTERM a stage finishes or hands back its work, commits and leaves its
# group within this many seconds: under the pods' terminationGracePeriodSeconds
# (30), so Kubernetes never has to kill it mid-commit.
- name: STREETSCOPE_STOP_TIMEOUT
  value: "25"
{{- end -}}

{{/* Arguments of a distributed stage: (dict "ctx" $ "stage" "detect"). */}}
{{- define "streetscope.stageArgs" -}}
[{{ .stage }}, --cluster, /etc/streetscope/cluster.toml, --status-addr, "0.0.0.0:{{ .ctx.Values.statusPort }}"]
{{- end -}}

{{/* Where the status endpoint's certificate and key are mounted (statusTls). */}}
{{- define "streetscope.statusTlsDir" -}}/etc/streetscope/status-tls{{- end -}}

{{/* The status endpoint's certificate and key of a stage pod (statusTls): its volume, and its mount. */}}
{{- define "streetscope.statusTlsVolume" -}}
{{- if .Values.statusTls.enabled -}}
- name: status-tls
  secret:
    secretName: {{ .Values.statusTls.existingSecret }}
    defaultMode: 0440
    items:
      - {key: {{ .Values.statusTls.certKey }}, path: {{ .Values.statusTls.certKey }}}
      - {key: {{ .Values.statusTls.keyKey }}, path: {{ .Values.statusTls.keyKey }}}
{{- end -}}
{{- end -}}

{{- define "streetscope.statusTlsMount" -}}
{{- if .Values.statusTls.enabled -}}
- {name: status-tls, mountPath: {{ include "streetscope.statusTlsDir" . }}, readOnly: true}
{{- end -}}
{{- end -}}

{{/* Probes of a stage with a status endpoint: (dict "ctx" $ "startupSeconds" 600); HTTPS with statusTls. */}}
{{- define "streetscope.stageProbes" -}}
{{- $scheme := ternary "HTTPS" "HTTP" .ctx.Values.statusTls.enabled -}}
startupProbe:
  httpGet: {path: /healthz, port: status, scheme: {{ $scheme }}}
  periodSeconds: 5
  failureThreshold: {{ div .startupSeconds 5 }}
livenessProbe:
  httpGet: {path: /healthz, port: status, scheme: {{ $scheme }}}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: status, scheme: {{ $scheme }}}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/* Volumes of a stage: the config, the Kafka secret, writable scratch space. */}}
{{- define "streetscope.stageVolumes" -}}
- name: config
  configMap:
    name: {{ include "streetscope.fullname" .ctx }}-config
    items:
      - {key: {{ .configKey }}, path: cluster.toml}
{{- with .ctx.Values.kafka.security.existingSecret }}
- name: kafka-secret
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
- name: tmp
  emptyDir: {medium: Memory, sizeLimit: 64Mi}
- name: cache
  emptyDir: {sizeLimit: 1Gi}
{{- end -}}

{{- define "streetscope.stageMounts" -}}
- {name: config, mountPath: /etc/streetscope/cluster.toml, subPath: cluster.toml, readOnly: true}
{{- if .Values.kafka.security.existingSecret }}
- {name: kafka-secret, mountPath: {{ include "streetscope.kafkaSecretDir" . }}, readOnly: true}
{{- end }}
- {name: tmp, mountPath: /tmp}
- {name: cache, mountPath: /var/cache/streetscope}
{{- end -}}

{{/*
The kafka trigger of a ScaledObject: (dict "ctx" $ "group" G "topic" T "scaling" S "scaleToZero" B).
Every metadata value is a string (the CRD: additionalProperties: {type: string}).
*/}}
{{- define "streetscope.kafkaTrigger" -}}
{{- $ := .ctx -}}
{{- $sec := $.Values.kafka.security -}}
- type: kafka
  name: {{ .name }}
  metadata:
    bootstrapServers: {{ include "streetscope.brokers" $ | quote }}
    consumerGroup: {{ .group | quote }}
    # Always set: without a topic the scaler sums the lag of every topic the
    # group ever committed to.
    topic: {{ .topic | quote }}
    lagThreshold: {{ .scaling.lagThreshold | toString | quote }}
    activationLagThreshold: {{ .scaling.activationLagThreshold | toString | quote }}
    offsetResetPolicy: {{ default "earliest" .scaling.offsetResetPolicy | quote }}
    # Never more replicas than partitions (the chart also refuses a max above them).
    allowIdleConsumers: "false"
    scaleToZeroOnInvalidOffset: {{ .scaleToZero | toString | quote }}
    {{- if $sec.sasl.enabled }}
    sasl: {{ get (dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512") $sec.sasl.mechanism | quote }}
    {{- end }}
    tls: {{ ternary "enable" "disable" $sec.tls.enabled | quote }}
  {{- if or $sec.tls.enabled $sec.sasl.enabled }}
  authenticationRef:
    name: {{ include "streetscope.fullname" $ }}-kafka
  {{- end }}
{{- end -}}
