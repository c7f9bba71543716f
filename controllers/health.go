package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
	"github.com/stratops/stratops/internal/eventlog"
	"github.com/stratops/stratops/internal/lifecycle"
	"github.com/stratops/stratops/internal/redisprobe"
)

// reconcileHealth puts the channels' and keys' health, as the Redis
// read-out says it, and the event logger's leader in status, conditions
// and events. It never changes Ready.
func (r *StrategyReconciler) reconcileHealth(ctx context.Context, sc *scope) (ctrl.Result, error) {
	s := sc.strategy
	if el := s.Status.EventLogger; el != nil && sc.health != nil {
		// The logger's leader, as the read-out names it.
		el.Leader = sc.health.LoggerLeader
	}
	if sc.redisState != lifecycle.RedisOK && sc.redisState != lifecycle.RedisFailing {
		why := "Redis has not passed its probes"
		switch sc.redisState {
		case lifecycle.RedisInMemory:
			why = "the backtest runs on the in-memory bus: channel and key health is read from Redis only"
			s.Status.Channels, s.Status.Keys, s.Status.ChannelsSummary, s.Status.KeysSummary = nil, nil, "", ""
		case lifecycle.RedisLost:
			why = "Redis is lost; the last read-out stays in status"
		}
		for _, t := range []string{stratv1.ConditionChannelsHealthy, stratv1.ConditionKeysHealthy} {
			meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{Type: t, Status: metav1.ConditionUnknown,
				Reason: stratv1.ReasonRedisUnavailable, Message: why, ObservedGeneration: s.Generation})
		}
		return ctrl.Result{}, nil
	}
	h := sc.health
	if h == nil {
		// The last check made no read-out (Redis passed its round, then
		// did not answer the read): the last one stays in status. Not a
		// reconcile error: Redis trouble is the probes' to report.
		return ctrl.Result{RequeueAfter: min(2*time.Second, children.HealthCheckInterval(s))}, nil
	}
	chs, badCh, gapped, lastGap := channelStatuses(sc, h)
	ks, badKeys := keyStatuses(h)
	s.Status.Channels, s.Status.Keys = chs, ks
	s.Status.ChannelsSummary = fmt.Sprintf("%d/%d", len(chs)-len(badCh), len(chs))
	s.Status.KeysSummary = fmt.Sprintf("%d/%d", len(ks)-len(badKeys), len(ks))
	r.setHealth(s, stratv1.ConditionChannelsHealthy, "channels", badCh, len(chs))
	if len(gapped) > 0 {
		// Healthy or not, what was published while the logger was not
		// subscribed may be missing from the history: said while the gap
		// is within the health window.
		c := meta.FindStatusCondition(s.Status.Conditions, stratv1.ConditionChannelsHealthy)
		c.Message += fmt.Sprintf("; possible loss: the event logger's subscription was down until %s on %d channels (status.channels[].gaps; the gap is an event in the history)",
			lastGap.UTC().Format(time.RFC3339), len(gapped))
	}
	r.setHealth(s, stratv1.ConditionKeysHealthy, "keys", badKeys, len(ks))
	return ctrl.Result{}, nil
}

// channelStatuses are status.channels from a read-out, with the unhealthy
// channels said in a few words, those whose logger had a gap within the
// health window, and the last such gap.
func channelStatuses(sc *scope, h *redisprobe.Health) (chs []stratv1.ChannelStatus, bad, gapped []string, lastGap time.Time) {
	s := sc.strategy
	chs = make([]stratv1.ChannelStatus, 0, len(h.Channels))
	for _, c := range h.Channels {
		cs := stratv1.ChannelStatus{Name: c.Name, Subscribers: c.Subscribers, Messages: c.Messages,
			InvalidMessages: c.Invalid, NonconformingMessages: c.Nonconforming, DroppedMessages: c.Dropped, Gaps: c.Gaps,
			Healthy: c.Healthy, Reason: c.Reason}
		if !c.LastMessageTime.IsZero() {
			cs.LastMessageTime = ptr.To(metav1.NewTime(c.LastMessageTime))
		}
		if !c.LastGapTime.IsZero() {
			cs.LastGapTime = ptr.To(metav1.NewTime(c.LastGapTime))
			if time.Since(c.LastGapTime) < eventlog.HealthWindow(children.HealthCheckInterval(s)) {
				gapped = append(gapped, c.Name)
				lastGap = maxTime(lastGap, c.LastGapTime)
			}
		}
		if c.WindowOK && c.Window.LagSamples > 0 {
			cs.LagP50, cs.LagP99 = lagString(c.Window.LagP50), lagString(c.Window.LagP99)
		}
		if !c.Healthy {
			bad = append(bad, fmt.Sprintf("%s (%s)", c.Name, channelProblem(sc, c)))
		}
		chs = append(chs, cs)
	}
	return chs, bad, gapped, lastGap
}

// keyStatuses are status.keys from a read-out, with the unhealthy keys
// said in a few words.
func keyStatuses(h *redisprobe.Health) (ks []stratv1.KeyStatus, bad []string) {
	ks = make([]stratv1.KeyStatus, 0, len(h.Keys))
	for _, k := range h.Keys {
		kst := stratv1.KeyStatus{Name: k.Name, Present: k.Present, Healthy: k.Healthy, Reason: k.Reason}
		if k.Present {
			kst.TTLSeconds = ptr.To(keyTTLSeconds(k))
		}
		if k.PolicyTTL > 0 {
			kst.PolicyTTLSeconds = ptr.To(int64(k.PolicyTTL.Seconds()))
		}
		if !k.Healthy {
			bad = append(bad, k.Name+" ("+k.Reason+")")
		}
		ks = append(ks, kst)
	}
	return ks, bad
}

// keyTTLSeconds is a key's TTL as status and stratops_key_ttl_seconds say
// it: whole seconds, -1 for none, -2 for a missing key.
func keyTTLSeconds(k redisprobe.KeyHealth) int64 {
	switch {
	case !k.Present:
		return -2
	case k.TTL < 0:
		return -1
	}
	return int64(k.TTL.Seconds())
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// channelProblem says in a few words why a channel is unhealthy. It names
// the policy it breaks, not figures that move with traffic (those are in
// status.channels and the metrics), so that the condition changes only
// when the verdict does.
func channelProblem(sc *scope, c redisprobe.ChannelHealth) string {
	pol, _ := sc.catalog.Channel(c.Name)
	switch c.Reason {
	case redisprobe.ReasonTooFewSubscribers:
		return fmt.Sprintf("%s: %d/%d subscribers", c.Reason, c.Subscribers, pol.MinSubscribers)
	case redisprobe.ReasonSilent:
		return fmt.Sprintf("%s: no message for more than %s", c.Reason, pol.MaxSilence.Duration)
	case redisprobe.ReasonInvalidMessages:
		return fmt.Sprintf("%s: more than %g%% of the messages in the health window are invalid", c.Reason, 100*pol.InvalidRatioLimit())
	case redisprobe.ReasonLagging:
		return fmt.Sprintf("%s: p99 lag over maxLag %s in the health window", c.Reason, pol.MaxLag.Duration)
	}
	return c.Reason
}

// lagString rounds a lag for status: three significant figures are what
// the logger's histogram holds.
func lagString(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second).String()
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

// setHealth sets a health condition and emits an event when it flips.
func (r *StrategyReconciler) setHealth(s *stratv1.Strategy, t, what string, bad []string, total int) {
	prev := lifecycle.ConditionCopy(s, t)
	if len(bad) == 0 {
		lifecycle.SetCondition(s, t, true, stratv1.ReasonAllHealthy, fmt.Sprintf("All %d %s are healthy", total, what))
		if prev != nil && prev.Status == metav1.ConditionFalse {
			r.event(s, corev1.EventTypeNormal, t, "HealthCheck", "All %d %s are healthy again", total, what)
		}
		return
	}
	msg := fmt.Sprintf("%d/%d %s unhealthy: %s", len(bad), total, what, strings.Join(bad, ", "))
	lifecycle.SetCondition(s, t, false, stratv1.ReasonUnhealthy, msg)
	if prev != nil && prev.Status == metav1.ConditionTrue {
		// A flip from healthy. A new Strategy's channels and keys start
		// unhealthy until traffic flows: the condition, the metrics and
		// the alerts say so, without a Warning for a state nothing left.
		r.event(s, corev1.EventTypeWarning, t, "HealthCheck", "%s", msg)
	}
}
