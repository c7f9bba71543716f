package eventlogger

// The event logger's own settings. The operator sets the spool's and the
// drain's; the others are for running the logger by hand. What the
// operator hands every component (catalog, mode, Redis, log level, health
// interval) is the pod contract of package messaging.
const (
	EnvSpoolDir          = "STRATOPS_SPOOL_DIR"
	EnvSpoolMaxBytes     = "STRATOPS_SPOOL_MAX_BYTES"
	EnvDrainTimeout      = "STRATOPS_DRAIN_TIMEOUT"
	EnvPodName           = "STRATOPS_POD_NAME"
	EnvHTTPAddr          = "STRATOPS_HTTP_ADDR"
	EnvHealthAddr        = "STRATOPS_HEALTH_ADDR"
	EnvMaxMessageBytes   = "STRATOPS_MAX_MESSAGE_BYTES"
	EnvEventLogFile      = "STRATOPS_EVENT_LOG_FILE"
	EnvPendingQueueLimit = "STRATOPS_PENDING_QUEUE_LIMIT"
)
