package controllers

import (
	"reflect"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// A status's meaning is all of it but its figures: the counts, lags and
// times that tick on their own or with traffic (a channel's message
// counts, lags and last message time; a key's TTL; the last probe time).
// A change of meaning is written at once; figures alone wait for the
// refresh interval (patchStatus).
//
// meaningfulChange compares field by field: a reflective comparison of a
// copy without the figures took a tenth of a healthy reconcile. As the
// semantic comparison does, an empty list equals an absent one, pointers
// are compared by what they point to and times by their instant.
// TestMeaning_EveryFieldIsMeaningOrAFigure changes each field of a status
// in turn, so a field added to the status and not compared here fails it.
func meaningfulChange(a, b *stratv1.StrategyStatus) bool {
	if a.ObservedGeneration != b.ObservedGeneration || a.LastHandledReconcileAt != b.LastHandledReconcileAt ||
		a.Phase != b.Phase || a.ChannelsSummary != b.ChannelsSummary || a.KeysSummary != b.KeysSummary ||
		!equalPtr(a.EventLogger, b.EventLogger) || !equalPtr(a.Engine, b.Engine) ||
		!slices.EqualFunc(a.Conditions, b.Conditions, sameCondition) ||
		!slices.EqualFunc(a.Channels, b.Channels, sameChannelMeaning) ||
		!slices.EqualFunc(a.Keys, b.Keys, sameKeyMeaning) ||
		!sameRedisMeaning(a.Redis, b.Redis) {
		return true
	}
	// Backtest runs are few and rare: compared whole.
	return (len(a.Backtests) > 0 || len(b.Backtests) > 0) && !equality.Semantic.DeepEqual(a.Backtests, b.Backtests)
}

func sameCondition(a, b metav1.Condition) bool {
	return a.Type == b.Type && a.Status == b.Status && a.ObservedGeneration == b.ObservedGeneration &&
		a.LastTransitionTime.Equal(&b.LastTransitionTime) && a.Reason == b.Reason && a.Message == b.Message
}

// sameChannelMeaning: all but the message counts, the lags and the last
// message time.
func sameChannelMeaning(a, b stratv1.ChannelStatus) bool {
	return a.Name == b.Name && a.Subscribers == b.Subscribers && a.DroppedMessages == b.DroppedMessages &&
		a.Gaps == b.Gaps && a.LastGapTime.Equal(b.LastGapTime) && a.Healthy == b.Healthy && a.Reason == b.Reason
}

// sameKeyMeaning: all but the TTL.
func sameKeyMeaning(a, b stratv1.KeyStatus) bool {
	return a.Name == b.Name && a.Present == b.Present && equalPtr(a.PolicyTTLSeconds, b.PolicyTTLSeconds) &&
		a.Healthy == b.Healthy && a.Reason == b.Reason
}

// sameRedisMeaning: all but the last probe time.
func sameRedisMeaning(a, b *stratv1.RedisStatus) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Endpoint == b.Endpoint && a.ServerVersion == b.ServerVersion && a.Role == b.Role &&
		a.InMemoryFallback == b.InMemoryFallback && a.ConsecutiveFailures == b.ConsecutiveFailures &&
		a.FailingSince.Equal(b.FailingSince) && slices.Equal(a.Probes, b.Probes)
}

// equalPtr compares what two pointers to a comparable value point to.
func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// statusEqual says whether two statuses are the same, figures included.
// The semantic comparison allocates for every value it compares: equal
// values are tried first.
func statusEqual(a, b *stratv1.StrategyStatus) bool {
	return reflect.DeepEqual(a, b) || equality.Semantic.DeepEqual(a, b)
}
