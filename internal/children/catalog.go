package children

import (
	"fmt"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/pkg/messaging"
)

// Catalog is the catalog a Strategy's components share: the standard's,
// narrowed or extended by spec.messaging. A channel or key of the standard
// keeps the standard's publisher, subscribers and TTL unless the spec says
// otherwise; one outside the standard is persistent and needs no subscriber
// unless the spec says otherwise.
func Catalog(s *stratv1.Strategy) (messaging.Catalog, error) {
	mode := messaging.Mode(s.Spec.Mode)
	c := messaging.Standard(mode)
	if s.Spec.Redis != nil {
		c.KeyPrefix = s.Spec.Redis.KeyPrefix
	}
	if m := s.Spec.Messaging; m != nil {
		if len(m.Channels) > 0 {
			c.Channels = make([]messaging.Channel, 0, len(m.Channels))
			for _, cs := range m.Channels {
				ch, ok := messaging.StandardChannel(cs.Name)
				if !ok {
					ch = messaging.Channel{Name: cs.Name}
					ch.MinSubscribers = messaging.DefaultMinSubscribers(ch)
				}
				if cs.MinSubscribers != nil {
					ch.MinSubscribers = int(*cs.MinSubscribers)
				}
				if cs.MaxSilence != nil {
					ch.MaxSilence = messaging.Duration{Duration: cs.MaxSilence.Duration}
				}
				if cs.MaxLag != nil {
					ch.MaxLag = messaging.Duration{Duration: cs.MaxLag.Duration}
				}
				if cs.MaxInvalidRatio != nil {
					ch.MaxInvalidRatio = new(*cs.MaxInvalidRatio)
				}
				c.Channels = append(c.Channels, ch)
			}
		}
		if len(m.Keys) > 0 {
			c.Keys = make([]messaging.Key, 0, len(m.Keys))
			for _, ks := range m.Keys {
				k, ok := messaging.StandardKey(ks.Name)
				if !ok {
					k = messaging.Key{Name: ks.Name}
				}
				if ks.TTL != nil {
					k.TTL = messaging.Duration{Duration: ks.TTL.Duration}
				}
				if ks.MaxAge != nil {
					k.MaxAge = messaging.Duration{Duration: ks.MaxAge.Duration}
				}
				c.Keys = append(c.Keys, k)
			}
		}
	}
	if err := c.Validate(); err != nil {
		return messaging.Catalog{}, fmt.Errorf("spec.messaging: %w", err)
	}
	return c, nil
}
