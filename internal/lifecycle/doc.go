// Package lifecycle holds the decisions of the Strategy controller as
// functions of values, tested without an API server: what a Strategy's
// Redis means for it now (DecideRedis: the Live gate, losing Redis under
// Halt or Alert, a backtest's in-memory fallback), and what one reconcile
// comes to in conditions and phase under the kstatus rules (Summarize).
// The reconciler does the I/O around them.
package lifecycle
