package v1

// Condition types. Ready, Reconciling and Stalled follow kstatus so that
// kubectl wait, Flux and Argo CD read a Strategy's health without custom
// code; the others say which part of the strategy is (not) healthy.
const (
	// ConditionReady is True when the strategy runs as declared.
	ConditionReady = "Ready"
	// ConditionReconciling is present, and True, only while the operator is
	// still making the cluster match the spec.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is present, and True, only when no retry can make
	// progress without a change by the user (invalid spec, missing Secret).
	ConditionStalled = "Stalled"
	// ConditionRedisReady is True when Redis passed every readiness probe.
	ConditionRedisReady = "RedisReady"
	// ConditionEventLoggerReady is True when the event logger Deployment has
	// all its replicas available.
	ConditionEventLoggerReady = "EventLoggerReady"
	// ConditionEngineReady is True when the engine workload runs (or, for a
	// backtest Job, progresses or succeeded).
	ConditionEngineReady = "EngineReady"
	// ConditionChannelsHealthy is True when every channel has its subscribers
	// and traffic. It never changes Ready.
	ConditionChannelsHealthy = "ChannelsHealthy"
	// ConditionKeysHealthy is True when every key is present with a TTL that
	// follows the policy. It never changes Ready.
	ConditionKeysHealthy = "KeysHealthy"
	// ConditionUpdatePending is True, only while it is, when a new
	// revision of a running Live engine is held (updateStrategy Manual).
	// It never changes Ready.
	ConditionUpdatePending = "UpdatePending"
)

// Condition reasons: stable CamelCase words that alerts and GitOps tools
// can match on.
const (
	// ReasonSucceeded: the condition's subject is healthy.
	ReasonSucceeded = "Succeeded"
	// ReasonProgressing: a rollout is under way.
	ReasonProgressing = "Progressing"
	// ReasonReconciling: the first reconcile, or a new generation, is being
	// worked on.
	ReasonReconciling = "Reconciling"
	// ReasonSecretNotFound: a Secret the spec references does not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonSecretKeyNotFound: a referenced Secret lacks the referenced key.
	ReasonSecretKeyNotFound = "SecretKeyNotFound"
	// ReasonSecretNotPermitted: a referenced Secret lacks the consent label
	// (CredentialsLabel), so the operator does not read it.
	ReasonSecretNotPermitted = "SecretNotPermitted"
	// ReasonAddressNotAllowed: a Redis address of the spec is outside the
	// operator's --allowed-redis-addresses, so it does not connect.
	ReasonAddressNotAllowed = "AddressNotAllowed"
	// ReasonEngineTemplateNotPermitted: the engine template asks for what
	// an ordinary workload of the namespace may not have (host namespaces,
	// privilege, added capabilities, hostPath, host ports, another
	// ServiceAccount).
	ReasonEngineTemplateNotPermitted = "EngineTemplateNotPermitted"
	// ReasonInvalidEngineTemplate: the API server refused the engine's
	// Deployment or Job as the template makes it (a volume named like one
	// of the operator's, bad resources); the message is the server's.
	ReasonInvalidEngineTemplate = "InvalidEngineTemplate"
	// ReasonPodsRejected: the engine's pods cannot be created (Pod
	// Security admission, a quota); the message is the refusal.
	ReasonPodsRejected = "PodsRejected"
	// ReasonStopped: the Live engine is stopped on purpose
	// (spec.engine.stopped); the Strategy runs as declared, phase Halted.
	ReasonStopped = "Stopped"
	// ReasonAwaitingApproval: a new revision of the engine waits for
	// stratops.dev/approve-revision (UpdatePending).
	ReasonAwaitingApproval = "AwaitingApproval"
	// ReasonEngineRemoving: spec.engine was removed (or the mode changed)
	// and the engine of before is being stopped, then deleted.
	ReasonEngineRemoving = "EngineRemoving"
	// ReasonInvalidSpec: the spec cannot be acted on (admission let it in,
	// but it cannot work, e.g. a messaging override that is not valid).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonNameConflict: an object the Strategy would own already exists
	// and belongs to someone else.
	ReasonNameConflict = "NameConflict"
	// ReasonServiceAccountNotOwned: a ServiceAccount named as the engine's
	// (<name>-engine) exists and the Strategy does not own it; the engine
	// runs only as its own.
	ReasonServiceAccountNotOwned = "ServiceAccountNotOwned"
	// ReasonPrefixConflict: another Strategy (in any namespace or cluster)
	// holds the same Redis, database and key prefix.
	ReasonPrefixConflict = "PrefixConflict"
	// Reasons of EventLoggerReady False when Redis refuses what the logger
	// must write: the ACL lacks a command, a key of the logger's holds
	// another type, Redis is out of memory (maxmemory with noeviction), or
	// the server is a replica.
	ReasonRedisPermissionDenied = "RedisPermissionDenied"
	ReasonRedisWrongType        = "RedisWrongType"
	ReasonRedisOutOfMemory      = "RedisOutOfMemory"
	ReasonRedisReadOnly         = "RedisReadOnly"
	// ReasonReconcileError: talking to the API server failed; it is retried.
	ReasonReconcileError = "ReconcileError"
	// ReasonSuspended: spec.suspend is true; nothing is reconciled.
	ReasonSuspended = "Suspended"
	// ReasonEventLoggerNotReady: the event logger is not (yet) available.
	ReasonEventLoggerNotReady = "EventLoggerNotReady"
	// ReasonEventLoggerAvailable: the event logger has all replicas available.
	ReasonEventLoggerAvailable = "EventLoggerAvailable"
	// ReasonRedisNotReady: Redis has not passed every readiness probe.
	ReasonRedisNotReady = "RedisNotReady"
	// ReasonRedisLost: Redis failed its probes after rollout.
	ReasonRedisLost = "RedisLost"
	// ReasonProbesFailing: a rolled-out Live strategy's Redis fails its
	// probes, but not for long enough to be lost: RedisReady stays True,
	// and the message names the failed probe and the time left.
	ReasonProbesFailing = "ProbesFailing"
	// ReasonOperatorCannotReachRedis: RedisReady Unknown: the operator's
	// probes fail for as long as a loss takes, but the event logger still
	// reaches Redis; nothing is halted.
	ReasonOperatorCannotReachRedis = "OperatorCannotReachRedis"
	// ReasonInMemoryFallback: a backtest runs without Redis, on memory.
	ReasonInMemoryFallback = "InMemoryFallback"
	// ReasonGated: the event logger or engine waits for Redis to pass its
	// probes.
	ReasonGated = "Gated"
	// ReasonEngineRunning: the engine Deployment is available, or the
	// backtest Job runs.
	ReasonEngineRunning = "EngineRunning"
	// ReasonWaitingForEventLogger: the engine starts (or, after a Halt,
	// resumes) only once an event logger replica is available, so that
	// nothing it publishes goes unlogged.
	ReasonWaitingForEventLogger = "WaitingForEventLogger"
	// ReasonEngineStarting: the engine is rolling out.
	ReasonEngineStarting = "EngineStarting"
	// ReasonEngineHalted: Redis is lost under policy Halt; the engine is at 0.
	ReasonEngineHalted = "EngineHalted"
	// ReasonBacktestSucceeded: the backtest Job completed.
	ReasonBacktestSucceeded = "BacktestSucceeded"
	// ReasonBacktestFailed: the backtest Job failed (Stalled).
	ReasonBacktestFailed = "BacktestFailed"
	// ReasonAllHealthy: every channel (or key) meets its policy.
	ReasonAllHealthy = "AllHealthy"
	// ReasonUnhealthy: some channels (or keys) do not; the message names them.
	ReasonUnhealthy = "Unhealthy"
	// ReasonRedisUnavailable: health is unknown because Redis is not usable.
	ReasonRedisUnavailable = "RedisUnavailable"
)

// Event reasons: what the operator records about a Strategy, one per
// outcome a person acts on; what it does to its children is logged, not
// recorded. A Stalled reason (above) is also the reason of the Warning that
// says the Strategy stalled.
const (
	// EventGatePassed (Normal): a Live strategy's Redis passed every probe
	// and its rollout starts.
	EventGatePassed = "GatePassed"
	// EventGateFailed (Warning): a Live strategy stays gated; the note
	// names the failed probe. Sent when the failure changes.
	EventGateFailed = "GateFailed"
	// EventRedisLost (Warning): a rolled-out Live strategy's Redis is lost;
	// the note says what its policy does.
	EventRedisLost = ReasonRedisLost
	// EventOperatorCannotReachRedis (Warning): the operator's probes say
	// lost, the event logger still reaches Redis: nothing is halted.
	EventOperatorCannotReachRedis = ReasonOperatorCannotReachRedis
	// EventRedisRecovered (Normal): Redis passes its probes after a loss.
	EventRedisRecovered = "RedisRecovered"
	// EventEngineHalted (Warning): Redis lost under policy Halt; the engine
	// is scaled to 0.
	EventEngineHalted = ReasonEngineHalted
	// EventEngineResumed (Normal): Redis is back; a halted engine is scaled
	// up again.
	EventEngineResumed = "EngineResumed"
	// EventEngineStopped (Normal): spec.engine.stopped scaled the engine to 0.
	EventEngineStopped = "EngineStopped"
	// EventEngineStarted (Normal): spec.engine.stopped is false again.
	EventEngineStarted = "EngineStarted"
	// EventEngineRestarted (Warning): the running engine's pod template
	// changes, so its pod is replaced now.
	EventEngineRestarted = "EngineRestarted"
	// EventUpdateHeld (Normal): a new revision waits for approval
	// (updateStrategy Manual); the note says how to approve it.
	EventUpdateHeld = "UpdateHeld"
	// EventApprovalStale (Warning): the approve annotation names a revision
	// the spec no longer asks for.
	EventApprovalStale = "ApprovalStale"
	// EventEngineRemoving (Warning): spec.engine was removed or the mode
	// changed; the engine is being stopped.
	EventEngineRemoving = ReasonEngineRemoving
	// EventEngineRemoved (Warning for a Job, Normal once a Deployment's pods
	// ended): the engine of before is deleted.
	EventEngineRemoved = "EngineRemoved"
	// EventBacktestStopped (Warning): a new revision replaces a running
	// backtest Job, which is stopped.
	EventBacktestStopped = "BacktestStopped"
	// EventReady (Normal): the Strategy became Ready.
	EventReady = ConditionReady
	// EventSuspended (Normal): spec.suspend stopped reconciling.
	EventSuspended = ReasonSuspended
	// EventChannelsHealthy, EventKeysHealthy: a health condition flipped
	// (Warning from healthy to unhealthy, Normal when healthy again).
	EventChannelsHealthy = ConditionChannelsHealthy
	EventKeysHealthy     = ConditionKeysHealthy
	// EventPasswordWithoutTLS (Warning, once per generation): the spec
	// sends a Redis password over a connection without TLS.
	EventPasswordWithoutTLS = "PasswordWithoutTLS"
	// EventReconcileError (Warning): talking to the API server failed; the
	// reconcile is retried.
	EventReconcileError = ReasonReconcileError
)

// CredentialsLabel, set to "true" on a Secret, is its owner's consent that
// stratops read it as a Strategy's Redis credentials (password, CA). A
// Strategy that references a Secret without it is Stalled with reason
// SecretNotPermitted: writing a Strategy must not let its author make the
// operator read, and send to Redis, any Secret of the namespace.
const CredentialsLabel = "stratops.dev/redis-credentials"
