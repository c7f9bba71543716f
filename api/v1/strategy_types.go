package v1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StrategyMode says how a strategy runs.
// +kubebuilder:validation:Enum=Backtest;Live
type StrategyMode string

const (
	// ModeBacktest replays history; Redis is optional.
	ModeBacktest StrategyMode = "Backtest"
	// ModeLive trades for real; Redis is required.
	ModeLive StrategyMode = "Live"
)

// RedisLossPolicy says what happens to a Live engine when Redis is lost
// after rollout.
// +kubebuilder:validation:Enum=Halt;Alert
type RedisLossPolicy string

const (
	// RedisLossHalt scales the engine to zero: the standard's fail-fast.
	RedisLossHalt RedisLossPolicy = "Halt"
	// RedisLossAlert keeps the engine running and reports Degraded.
	RedisLossAlert RedisLossPolicy = "Alert"
)

// RedisTopology is how the Redis deployment is reached.
// +kubebuilder:validation:Enum=Standalone;Sentinel;Cluster
type RedisTopology string

const (
	// TopologyStandalone is one Redis server at spec.redis.address.
	TopologyStandalone RedisTopology = "Standalone"
	// TopologySentinel finds the master through the Sentinels in addresses.
	TopologySentinel RedisTopology = "Sentinel"
	// TopologyCluster is a Redis Cluster seeded by addresses.
	TopologyCluster RedisTopology = "Cluster"
)

// LogLevel is the event logger's log verbosity.
// +kubebuilder:validation:Enum=debug;info;warn;error
type LogLevel string

// StrategyPhase is a strategy's lifecycle in one word.
// +kubebuilder:validation:Enum=Pending;Gated;Running;Degraded;Halted;Suspended;Succeeded;Failed
type StrategyPhase string

const (
	// PhasePending: children are being created or rolled out.
	PhasePending StrategyPhase = "Pending"
	// PhaseGated: Live, Redis has not proven itself; nothing rolled out.
	PhaseGated StrategyPhase = "Gated"
	// PhaseRunning: everything declared runs.
	PhaseRunning StrategyPhase = "Running"
	// PhaseDegraded: Live, Redis lost, policy Alert: engine kept running.
	PhaseDegraded StrategyPhase = "Degraded"
	// PhaseHalted: Live, Redis lost, policy Halt: engine scaled to zero.
	PhaseHalted StrategyPhase = "Halted"
	// PhaseSuspended: spec.suspend is true.
	PhaseSuspended StrategyPhase = "Suspended"
	// PhaseSucceeded: the backtest Job completed.
	PhaseSucceeded StrategyPhase = "Succeeded"
	// PhaseFailed: the backtest Job failed, or the spec cannot work.
	PhaseFailed StrategyPhase = "Failed"
)

// SecretKeySelector names one key of a Secret in the Strategy's namespace.
type SecretKeySelector struct {
	// name of the Secret, in the Strategy's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key within the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// SecretReference names a Secret in the Strategy's namespace.
type SecretReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// RedisTLSSpec configures TLS to Redis.
// +kubebuilder:validation:XValidation:rule="!has(self.insecureSkipVerify) || !self.insecureSkipVerify || (has(self.enabled) && self.enabled)",message="spec.redis.tls.insecureSkipVerify needs spec.redis.tls.enabled: true",fieldPath=".insecureSkipVerify"
type RedisTLSSpec struct {
	// enabled turns TLS on.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// caSecretRef holds the PEM CA bundle that signs the server certificate;
	// omitted, the system roots are used.
	// +optional
	CASecretRef *SecretKeySelector `json:"caSecretRef,omitempty"`
	// clientCertSecretRef names a kubernetes.io/tls Secret (keys tls.crt
	// and tls.key) whose certificate the operator, the event logger and the
	// engine present to Redis (mutual TLS). Like every Secret referenced
	// here, it needs the label stratops.dev/redis-credentials: "true".
	// +optional
	ClientCertSecretRef *SecretReference `json:"clientCertSecretRef,omitempty"`
	// serverName overrides the name checked against the server certificate.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServerName string `json:"serverName,omitempty"`
	// insecureSkipVerify skips certificate verification. Only for tests.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// RedisSpec says how to reach Redis.
// +kubebuilder:validation:XValidation:rule="self.topology != 'Standalone' || (has(self.address) && size(self.address) > 0)",message="spec.redis.address is required when spec.redis.topology is Standalone",fieldPath=".address"
// +kubebuilder:validation:XValidation:rule="self.topology != 'Sentinel' || (has(self.sentinelMasterName) && size(self.sentinelMasterName) > 0)",message="spec.redis.sentinelMasterName is required when spec.redis.topology is Sentinel",fieldPath=".sentinelMasterName"
// +kubebuilder:validation:XValidation:rule="self.topology != 'Sentinel' || (has(self.addresses) && size(self.addresses) > 0)",message="spec.redis.addresses must list the Sentinels when spec.redis.topology is Sentinel",fieldPath=".addresses"
// +kubebuilder:validation:XValidation:rule="self.topology != 'Cluster' || (has(self.addresses) && size(self.addresses) > 0)",message="spec.redis.addresses must list seed nodes when spec.redis.topology is Cluster",fieldPath=".addresses"
// +kubebuilder:validation:XValidation:rule="self.topology != 'Cluster' || !has(self.db) || self.db == 0",message="spec.redis.db must be 0 (or omitted) when spec.redis.topology is Cluster: Redis Cluster has one database",fieldPath=".db"
type RedisSpec struct {
	// address is host:port of a Standalone Redis.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Address string `json:"address,omitempty"`
	// topology is Standalone, Sentinel or Cluster.
	// +optional
	// +kubebuilder:default=Standalone
	Topology RedisTopology `json:"topology,omitempty"`
	// addresses are the Sentinel or Cluster seed addresses (host:port).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=512
	Addresses []string `json:"addresses,omitempty"`
	// sentinelMasterName is the master set name Sentinels know.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	SentinelMasterName string `json:"sentinelMasterName,omitempty"`
	// db is the database number (0-15); Cluster has only 0.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:XValidation:rule="self >= 0 && self <= 15",message="spec.redis.db must be between 0 and 15"
	DB int32 `json:"db,omitempty"`
	// username is the Redis ACL user; empty means the default user.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Username string `json:"username,omitempty"`
	// passwordSecretRef is the Secret key holding the password. The password
	// is read, never copied: pods get it through secretKeyRef.
	// +optional
	PasswordSecretRef *SecretKeySelector `json:"passwordSecretRef,omitempty"`
	// tls configures TLS to Redis.
	// +optional
	TLS *RedisTLSSpec `json:"tls,omitempty"`
	// keyPrefix is prepended to every channel and key name, so that several
	// strategies can share one Redis database (e.g. "eth-basis:").
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="!self.matches('\\\\s')",message="spec.redis.keyPrefix must not contain whitespace"
	KeyPrefix string `json:"keyPrefix,omitempty"`
	// dialTimeout bounds connecting to Redis, at most 10s: a slow Redis
	// must not hold the operator's workers, which serve every tenant.
	// +optional
	// +kubebuilder:default="2s"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('10s')",message="spec.redis.dialTimeout must be a positive duration of at most 10s"
	DialTimeout *metav1.Duration `json:"dialTimeout,omitempty"`
	// healthCheckInterval is how often Redis and the channel and key health
	// are probed, between 1s and 1h.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="spec.redis.healthCheckInterval must be between 1s and 1h"
	HealthCheckInterval *metav1.Duration `json:"healthCheckInterval,omitempty"`
	// lossThreshold is how long a rolled-out Live strategy's Redis must
	// keep failing its probes before it is lost (and the loss policy
	// applies), between 1s and 1h: set it above your Sentinels'
	// down-after-milliseconds plus their election, so that a failover is
	// not a loss. omitted: three failed probe rounds in a row.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="spec.redis.lossThreshold must be between 1s and 1h"
	LossThreshold *metav1.Duration `json:"lossThreshold,omitempty"`
}

// EventLoggerSpec configures the strategy's event logger.
type EventLoggerSpec struct {
	// image of the event logger; default: the operator's own image.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`
	// replicas of the event logger.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=16
	Replicas *int32 `json:"replicas,omitempty"`
	// resources of the event logger container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// logLevel of the event logger.
	// +optional
	// +kubebuilder:default=info
	LogLevel LogLevel `json:"logLevel,omitempty"`
	// spoolSize is the room of the logger's disk buffer (an emptyDir of
	// this size limit): events it accepted wait there until the history
	// has them. When it is full, POST /events answers 503 and published
	// messages are logged to stdout and counted as dropped. default: 256Mi.
	// +optional
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('16Mi')) >= 0 && quantity(string(self)).compareTo(quantity('64Gi')) <= 0",message="spoolSize must be between 16Mi and 64Gi"
	SpoolSize *resource.Quantity `json:"spoolSize,omitempty"`
}

// ChannelSpec declares a channel the strategy depends on.
type ChannelSpec struct {
	// name is {component}:{event_type}, without the key prefix.
	// +required
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$')",message="channel name must match {component}:{event_type}, i.e. ^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('stratops:')",message="channel name: the stratops: component is reserved for the operator"
	Name string `json:"name"`
	// minSubscribers is how many subscribers the channel needs to be healthy;
	// default: the standard's subscribers of this channel plus the event logger.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinSubscribers *int32 `json:"minSubscribers,omitempty"`
	// maxSilence is how long the channel may go without a message before it
	// is unhealthy; omitted: silence is never unhealthy.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxSilence must be a positive duration"
	MaxSilence *metav1.Duration `json:"maxSilence,omitempty"`
	// maxLag is the highest p99 lag (from an event's timestamp to the event
	// logger receiving it, over the health window) before the channel is
	// unhealthy with reason Lagging; omitted: lag is never unhealthy.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxLag must be a positive duration"
	MaxLag *metav1.Duration `json:"maxLag,omitempty"`
	// maxInvalidRatio is the share of invalid messages (not JSON, not an
	// object, too large) over the health window above which the channel is
	// unhealthy with reason InvalidMessages; omitted: 0.1.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	MaxInvalidRatio *float64 `json:"maxInvalidRatio,omitempty"`
}

// KeySpec declares a key the strategy depends on.
type KeySpec struct {
	// name is {component}:{data_type}, without the key prefix.
	// +required
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$')",message="key name must match {component}:{data_type}, i.e. ^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('stratops:') && self != 'events:channel_stats'",message="key name: the stratops: component and events:channel_stats are reserved for the operator and the event logger"
	Name string `json:"name"`
	// ttl is the key's TTL policy, at least 1s. Omitted: the standard's policy for
	// a key of the standard, persistent for any other key.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="ttl must be at least 1s"
	TTL *metav1.Duration `json:"ttl,omitempty"`
	// maxAge is how old the key's value (its timestamp) may be before it is
	// stale; omitted: age is not checked.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxAge must be a positive duration"
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`
}

// MessagingSpec narrows or extends the standard's catalog. A list that is
// omitted means the standard's full list.
type MessagingSpec struct {
	// channels the strategy depends on.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Channels []ChannelSpec `json:"channels,omitempty"`
	// keys the strategy depends on.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Keys []KeySpec `json:"keys,omitempty"`
}

// EngineSpec is the strategy's own workload.
type EngineSpec struct {
	// template of the engine pod. Backtest runs it as a Job, Live as a
	// Deployment (created only after the Redis gate).
	// +required
	Template corev1.PodTemplateSpec `json:"template"`
	// updateStrategy says how a new revision reaches a running Live
	// engine: Auto rolls it at once; Manual holds it (condition
	// UpdatePending) until the Strategy is annotated
	// stratops.dev/approve-revision=<the revision>.
	// +optional
	// +kubebuilder:default=Auto
	UpdateStrategy UpdateStrategy `json:"updateStrategy,omitempty"`
	// stopped stops a Live engine on purpose: scaled to zero (SIGTERM, then
	// its grace period), phase Halted, reason Stopped; false starts it
	// again. Unlike suspend, reconciling goes on.
	// +optional
	Stopped bool `json:"stopped,omitempty"`
}

// UpdateStrategy is how a new revision reaches a running Live engine.
// +kubebuilder:validation:Enum=Auto;Manual
type UpdateStrategy string

const (
	UpdateAuto   UpdateStrategy = "Auto"
	UpdateManual UpdateStrategy = "Manual"
)

// AnnotationDeletionProtection "true" on a Strategy makes the shipped
// admission policy (config/policy) refuse its deletion.
const AnnotationDeletionProtection = "stratops.dev/deletion-protection"

// AnnotationReconcileRequestedAt on a Strategy asks for a reconcile now
// (kubectl stratops reconcile writes the time): the operator reconciles at
// once, which checks Redis anew, and records the value it handled in
// status.lastHandledReconcileAt, as Flux's reconcile.fluxcd.io/requestedAt.
const AnnotationReconcileRequestedAt = "stratops.dev/reconcile-requested-at"

// AnnotationApproveRevision on a Strategy approves a held revision of its
// engine (updateStrategy Manual): its value is the revision's name.
const AnnotationApproveRevision = "stratops.dev/approve-revision"

// StrategySpec is the desired state of a Strategy.
// +kubebuilder:validation:XValidation:rule="self.mode != 'Live' || has(self.redis)",message="spec.redis is required when spec.mode is Live: Redis is required for live trading",fieldPath=".redis"
type StrategySpec struct {
	// mode is Backtest or Live.
	// +required
	Mode StrategyMode `json:"mode"`
	// suspend stops reconciling; what runs keeps running.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// redisLossPolicy (Live only) says what losing Redis after rollout does
	// to the engine: Halt scales it to zero, Alert keeps it and reports
	// Degraded.
	// +optional
	// +kubebuilder:default=Halt
	RedisLossPolicy RedisLossPolicy `json:"redisLossPolicy,omitempty"`
	// redis says how to reach Redis; required for Live.
	// +optional
	Redis *RedisSpec `json:"redis,omitempty"`
	// eventLogger configures the event logger.
	// +optional
	// +kubebuilder:default={}
	EventLogger EventLoggerSpec `json:"eventLogger,omitempty"`
	// messaging narrows or extends the channels and keys of the standard;
	// omitted: the standard's full catalog.
	// +optional
	Messaging *MessagingSpec `json:"messaging,omitempty"`
	// engine is the strategy's own workload.
	// +optional
	Engine *EngineSpec `json:"engine,omitempty"`
}

// ProbeResult is the outcome of one Redis readiness probe.
type ProbeResult struct {
	// name of the probe: connect, ping, role, write-ttl, pubsub.
	Name string `json:"name"`
	// ok is true when the probe passed.
	OK bool `json:"ok"`
	// reason is a CamelCase word for a failure (Unreachable, AuthFailed, ...).
	// +optional
	Reason string `json:"reason,omitempty"`
	// message says what happened.
	// +optional
	Message string `json:"message,omitempty"`
}

// RedisStatus is what the operator last saw of Redis.
type RedisStatus struct {
	// endpoint that was probed.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// serverVersion reported by INFO.
	// +optional
	ServerVersion string `json:"serverVersion,omitempty"`
	// role reported by ROLE: master or replica.
	// +optional
	Role string `json:"role,omitempty"`
	// inMemoryFallback is true when a Backtest runs without Redis.
	// +optional
	InMemoryFallback bool `json:"inMemoryFallback,omitempty"`
	// lastProbeTime is when the probes last ran.
	// +optional
	LastProbeTime *metav1.Time `json:"lastProbeTime,omitempty"`
	// consecutiveFailures counts probe rounds failed in a row.
	// +optional
	ConsecutiveFailures int32 `json:"consecutiveFailures,omitempty"`
	// failingSince is when the probe rounds started failing; absent while
	// they pass.
	// +optional
	FailingSince *metav1.Time `json:"failingSince,omitempty"`
	// probes are the results of the last probe round.
	// +optional
	// +listType=map
	// +listMapKey=name
	Probes []ProbeResult `json:"probes,omitempty"`
}

// ChannelStatus is the health of one channel.
type ChannelStatus struct {
	// name of the channel, without the key prefix.
	Name string `json:"name"`
	// subscribers counted by PUBSUB NUMSUB (summed over cluster nodes).
	Subscribers int64 `json:"subscribers"`
	// messages the event logger logged from this channel.
	Messages int64 `json:"messages"`
	// invalidMessages the event logger skipped as invalid (not JSON, not an
	// object, or over its size limit).
	InvalidMessages int64 `json:"invalidMessages"`
	// nonconformingMessages the event logger logged without a usable
	// timestamp (stamped with the time it received them).
	NonconformingMessages int64 `json:"nonconformingMessages"`
	// droppedMessages the event logger received and wrote to its output but
	// could not keep for the history (its spool was full).
	// +optional
	DroppedMessages int64 `json:"droppedMessages,omitempty"`
	// gaps counts the times the event logger's subscription to the channel
	// was down (a restart, a network blip, Redis disconnecting a slow
	// subscriber): messages published then may be lost.
	// +optional
	Gaps int64 `json:"gaps"`
	// lastGapTime is when the last gap ended.
	// +optional
	LastGapTime *metav1.Time `json:"lastGapTime,omitempty"`
	// lagP50 and lagP99 are the median and 99th percentile of the time from
	// an event's timestamp to the event logger receiving it, over the health
	// window; empty when no event with a timestamp arrived in it.
	// +optional
	LagP50 string `json:"lagP50,omitempty"`
	// lagP99: see lagP50.
	// +optional
	LagP99 string `json:"lagP99,omitempty"`
	// lastMessageTime is when the event logger last saw a message.
	// +optional
	LastMessageTime *metav1.Time `json:"lastMessageTime,omitempty"`
	// healthy is true when the channel meets its policy.
	Healthy bool `json:"healthy"`
	// reason is why the channel is unhealthy (TooFewSubscribers, Silent,
	// InvalidMessages, Lagging).
	// +optional
	Reason string `json:"reason,omitempty"`
}

// KeyStatus is the health of one key.
type KeyStatus struct {
	// name of the key, without the key prefix.
	Name string `json:"name"`
	// present is true when the key exists.
	Present bool `json:"present"`
	// ttlSeconds is the key's remaining TTL; -1 when it has none.
	// +optional
	TTLSeconds *int64 `json:"ttlSeconds,omitempty"`
	// policyTTLSeconds is the TTL the policy wants; absent for persistent keys.
	// +optional
	PolicyTTLSeconds *int64 `json:"policyTTLSeconds,omitempty"`
	// healthy is true when the key meets its policy.
	Healthy bool `json:"healthy"`
	// reason is why the key is unhealthy (Missing, NoExpiry, TTLExceedsPolicy, Stale).
	// +optional
	Reason string `json:"reason,omitempty"`
}

// WorkloadStatus counts a workload's replicas.
type WorkloadStatus struct {
	// replicas desired.
	Replicas int32 `json:"replicas"`
	// readyReplicas available.
	ReadyReplicas int32 `json:"readyReplicas"`
	// revision the pods run (the pod template's stratops.dev/revision).
	// +optional
	Revision string `json:"revision,omitempty"`
	// updateRevision is the revision the spec asks for; it differs from
	// revision while a rollout is under way or held (UpdatePending).
	// +optional
	UpdateRevision string `json:"updateRevision,omitempty"`
	// leader is the event logger replica (pod) that holds the lease and
	// records the channels' messages; the others stand by.
	// +optional
	Leader string `json:"leader,omitempty"`
}

// StrategyStatus is the observed state of a Strategy.
type StrategyStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// lastHandledReconcileAt is the last stratops.dev/reconcile-requested-at
	// value a reconcile handled: equal to the annotation once the
	// requested reconcile ran.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
	// phase is the lifecycle in one word.
	// +optional
	Phase StrategyPhase `json:"phase,omitempty"`
	// conditions: Ready, Reconciling, Stalled (kstatus) and RedisReady,
	// EventLoggerReady, EngineReady, ChannelsHealthy, KeysHealthy.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// redis is what the operator last saw of Redis.
	// +optional
	Redis *RedisStatus `json:"redis,omitempty"`
	// channels is the health of each channel.
	// +optional
	// +listType=map
	// +listMapKey=name
	Channels []ChannelStatus `json:"channels,omitempty"`
	// keys is the health of each key.
	// +optional
	// +listType=map
	// +listMapKey=name
	Keys []KeyStatus `json:"keys,omitempty"`
	// channelsSummary is healthy/total channels.
	// +optional
	ChannelsSummary string `json:"channelsSummary,omitempty"`
	// keysSummary is healthy/total keys.
	// +optional
	KeysSummary string `json:"keysSummary,omitempty"`
	// eventLogger counts the event logger's replicas.
	// +optional
	EventLogger *WorkloadStatus `json:"eventLogger,omitempty"`
	// engine counts the engine's replicas (Live) or pods (Backtest).
	// +optional
	Engine *WorkloadStatus `json:"engine,omitempty"`
	// backtests are the last five backtest runs, newest first: one Job per
	// revision of a Backtest's engine. The phase is the newest one's.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=5
	Backtests []BacktestRun `json:"backtests,omitempty"`
}

// BacktestRun is one backtest Job and its outcome.
type BacktestRun struct {
	// revision the Job ran (empty for a Job from before revisions).
	// +optional
	Revision string `json:"revision,omitempty"`
	// job is the Job's name.
	Job string `json:"job"`
	// startTime is when the Job was made.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when it succeeded, failed or was stopped.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// outcome is Running, Succeeded, Failed, or Stopped (a newer revision
	// replaced it before it finished).
	Outcome BacktestOutcome `json:"outcome"`
}

// BacktestOutcome is how a backtest run ended, or that it runs.
// +kubebuilder:validation:Enum=Running;Succeeded;Failed;Stopped
type BacktestOutcome string

const (
	BacktestRunning   BacktestOutcome = "Running"
	BacktestSucceeded BacktestOutcome = "Succeeded"
	BacktestFailed    BacktestOutcome = "Failed"
	BacktestStopped   BacktestOutcome = "Stopped"
)

// Strategy is a trading strategy whose components talk through Redis.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=strat,categories=stratops
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 51 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS-1035 label (lower case letters, digits and '-', starting with a letter) of at most 51 characters: it names the event logger Service"
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Redis",type=string,JSONPath=`.status.conditions[?(@.type=="RedisReady")].status`
// +kubebuilder:printcolumn:name="Channels",type=string,JSONPath=`.status.channelsSummary`
// +kubebuilder:printcolumn:name="Keys",type=string,JSONPath=`.status.keysSummary`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.engine.revision`,priority=1
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.redis.endpoint`,priority=1
// +kubebuilder:printcolumn:name="Leader",type=string,JSONPath=`.status.eventLogger.leader`,priority=1
type Strategy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec StrategySpec `json:"spec"`
	// +optional
	Status StrategyStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (s *Strategy) GetConditions() []metav1.Condition { return s.Status.Conditions }

// SetConditions replaces the status conditions.
func (s *Strategy) SetConditions(c []metav1.Condition) { s.Status.Conditions = c }

// StrategyList is a list of Strategies.
// +kubebuilder:object:root=true
type StrategyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Strategy `json:"items"`
}
