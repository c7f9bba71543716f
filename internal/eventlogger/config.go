package eventlogger

// The event logger's own settings, which the operator does not set: they
// are for running the logger by hand. What the operator hands the logger
// (catalog, mode, Redis, log level, health interval) is the pod contract of
// package messaging.
const (
	EnvHTTPAddr          = "STRATOPS_HTTP_ADDR"
	EnvHealthAddr        = "STRATOPS_HEALTH_ADDR"
	EnvMaxMessageBytes   = "STRATOPS_MAX_MESSAGE_BYTES"
	EnvEventLogFile      = "STRATOPS_EVENT_LOG_FILE"
	EnvPendingQueueLimit = "STRATOPS_PENDING_QUEUE_LIMIT"
)
