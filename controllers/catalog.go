package controllers

import (
	"time"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/eventlogger"
)

// catalogFor is the catalog a Strategy's components share: the standard's,
// narrowed or extended by spec.messaging. A channel or key of the standard
// keeps the standard's publisher, subscribers and TTL unless the spec says
// otherwise; one outside the standard is persistent and needs no subscriber
// unless the spec says otherwise.
func catalogFor(s *stratv1.Strategy) (eventlogger.Catalog, error) {
	mode := eventlogger.Mode(s.Spec.Mode)
	c := eventlogger.Standard(mode)
	if s.Spec.Redis != nil {
		c.KeyPrefix = s.Spec.Redis.KeyPrefix
	}
	if m := s.Spec.Messaging; m != nil {
		if len(m.Channels) > 0 {
			c.Channels = make([]eventlogger.Channel, 0, len(m.Channels))
			for _, cs := range m.Channels {
				ch, ok := eventlogger.StandardChannel(cs.Name)
				if !ok {
					ch = eventlogger.Channel{Name: cs.Name}
					ch.MinSubscribers = eventlogger.DefaultMinSubscribers(ch)
				}
				if cs.MinSubscribers != nil {
					ch.MinSubscribers = int(*cs.MinSubscribers)
				}
				if cs.MaxSilence != nil {
					ch.MaxSilence = eventlogger.Duration{Duration: cs.MaxSilence.Duration}
				}
				c.Channels = append(c.Channels, ch)
			}
		}
		if len(m.Keys) > 0 {
			c.Keys = make([]eventlogger.Key, 0, len(m.Keys))
			for _, ks := range m.Keys {
				k, ok := eventlogger.StandardKey(ks.Name)
				if !ok {
					k = eventlogger.Key{Name: ks.Name}
				}
				if ks.TTL != nil {
					k.TTL = eventlogger.Duration{Duration: ks.TTL.Truncate(time.Second)}
				}
				if ks.MaxAge != nil {
					k.MaxAge = eventlogger.Duration{Duration: ks.MaxAge.Duration}
				}
				c.Keys = append(c.Keys, k)
			}
		}
	}
	if err := c.Validate(); err != nil {
		return eventlogger.Catalog{}, stalled(stratv1.ReasonInvalidSpec, "spec.messaging: %v", err)
	}
	return c, nil
}
