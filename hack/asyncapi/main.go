// Command asyncapi writes the Redis messaging standard as an AsyncAPI 3.0
// document, from the standard's catalog in pkg/messaging: its channels
// with their publishers and subscribers, both message shapes as JSON
// Schema, and its keys with their TTL policies (x-stratops-keys). make
// asyncapi runs it; make verify fails when docs/standard/asyncapi.yaml is
// stale.
//
//	go run ./hack/asyncapi docs/standard/asyncapi.yaml
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/stratops/stratops/pkg/messaging"
)

// timestampPattern is what ParseTimestamp reads: RFC 3339 with Z or an
// offset, or ISO 8601 without a zone (read as UTC); "T", "t" or a space
// between date and time; any number of fractional digits.
const timestampPattern = `^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})?$`

type obj = map[string]any

func ref(p string) obj { return obj{"$ref": p} }

// id is a channel's or key's name as an AsyncAPI id (no colons).
func id(name string) string { return strings.NewReplacer(":", "_", ".", "_").Replace(name) }

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: asyncapi <output.yaml>")
		os.Exit(2)
	}
	doc := document(messaging.Standard(messaging.ModeLive))
	b, err := yaml.Marshal(doc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "asyncapi:", err)
		os.Exit(1)
	}
	head := "# The Redis messaging standard as AsyncAPI 3.0, generated from the\n" +
		"# catalog in pkg/messaging by hack/asyncapi (make asyncapi). Do not edit.\n"
	if err := os.MkdirAll(filepath.Dir(os.Args[1]), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "asyncapi:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[1], append([]byte(head), b...), 0o644); err != nil { //nolint:gosec // a document for people to read
		fmt.Fprintln(os.Stderr, "asyncapi:", err)
		os.Exit(1)
	}
}

func document(cat messaging.Catalog) obj {
	channels, operations := channelsOf(cat)
	return obj{
		"asyncapi": "3.0.0",
		"info": obj{
			"title":   "stratops Redis messaging standard",
			"version": "1.0.0",
			"description": "The channels a Strategy's components publish and subscribe to, the shapes of their messages, and the keys they write with their TTL policies. " +
				"Every channel and key name is prefixed with the Strategy's spec.redis.keyPrefix. " +
				"x-stratops-keys lists the keys: name, address, the component that writes it (writer) and its TTL policy (ttl: a Go duration such as 1h, or persistent); " +
				"each write sets the value with that TTL in one round trip. On a channel, x-stratops-publisher and x-stratops-subscribers name the components, and x-stratops-event the event type the channel carries.",
		},
		"defaultContentType": "application/json",
		"servers": obj{
			"redis": obj{"host": "redis:6379", "protocol": "redis",
				"description": "The Strategy's Redis (spec.redis): standalone, Sentinel or Cluster, with or without TLS."},
		},
		"channels":        channels,
		"operations":      operations,
		"components":      components(),
		"x-stratops-keys": keysOf(cat),
	}
}

// channelsOf is every channel of the catalog, and who sends and receives
// on each.
func channelsOf(cat messaging.Catalog) (channels, operations obj) {
	channels, operations = obj{}, obj{}
	for _, c := range cat.Channels {
		cid := id(c.Name)
		desc := fmt.Sprintf("Published by %s; subscribed by %s and by the event logger, which records every channel but its own in events:history.",
			c.Publisher, strings.Join(append([]string{}, c.Subscribers...), ", "))
		switch {
		case c.Name == messaging.ChannelEventsLogged:
			desc = "Published by the event logger for each event events:history has; read by dashboards and tools, by none of the standard's components."
		case len(c.Subscribers) == 0:
			desc = fmt.Sprintf("Published by %s; subscribed by the event logger, which records every channel but its own in events:history.", c.Publisher)
		}
		desc += fmt.Sprintf(" Event type %q. Healthy with at least %d subscribers.", messaging.EventType(c.Name), c.MinSubscribers)
		channels[cid] = obj{
			"address":     "{prefix}" + c.Name,
			"title":       c.Name,
			"description": desc,
			"parameters":  obj{"prefix": ref("#/components/parameters/prefix")},
			"messages": obj{
				"envelope": ref("#/components/messages/envelope"),
				"flat":     ref("#/components/messages/flat"),
			},
			"x-stratops-publisher":   c.Publisher,
			"x-stratops-subscribers": append([]string{}, c.Subscribers...),
			"x-stratops-event":       messaging.EventType(c.Name),
		}
		msgs := []any{ref("#/channels/" + cid + "/messages/envelope"), ref("#/channels/" + cid + "/messages/flat")}
		operations[id(c.Publisher)+"_sends_"+cid] = obj{
			"action": "send", "channel": ref("#/channels/" + cid), "messages": msgs,
			"summary": c.Publisher + " publishes " + c.Name,
		}
		for _, s := range c.Subscribers {
			operations[id(s)+"_receives_"+cid] = obj{
				"action": "receive", "channel": ref("#/channels/" + cid), "messages": msgs,
				"summary": s + " subscribes to " + c.Name,
			}
		}
		if c.Name != messaging.ChannelEventsLogged {
			operations["event_logger_receives_"+cid] = obj{
				"action": "receive", "channel": ref("#/channels/" + cid), "messages": msgs,
				"summary": "the event logger records " + c.Name + " in events:history",
			}
		}
	}
	return channels, operations
}

// keysOf is every key of the catalog with its TTL policy.
func keysOf(cat messaging.Catalog) []any {
	var keys []any
	for _, k := range cat.Keys {
		policy := "persistent"
		if !k.Persistent() {
			policy = k.TTL.String()
		}
		entry := obj{"name": k.Name, "address": "{prefix}" + k.Name, "ttl": policy}
		if k.Writer != "" {
			entry["writer"] = k.Writer
		}
		keys = append(keys, entry)
	}
	return keys
}

// components are the prefix parameter, both message shapes and their
// schemas.
func components() obj {
	return obj{
		"parameters": obj{"prefix": obj{"description": "The Strategy's key prefix (spec.redis.keyPrefix), prepended to every channel and key name."}},
		"messages": obj{
			"envelope": obj{
				"name": "envelope", "title": "Envelope", "contentType": "application/json",
				"summary": "A message with its component and event named, its data in metadata.",
				"payload": ref("#/components/schemas/Envelope"),
				"examples": []any{obj{"name": "position", "payload": obj{
					"timestamp": "2024-05-12T14:00:00Z", "component": "position_monitor", "event": "updated",
					"metadata": obj{"trigger": "GAS_FEE_PAID", "changes_count": 1}}}},
			},
			"flat": obj{
				"name": "flat", "title": "Flat", "contentType": "application/json",
				"summary": "A message whose fields are its data; its component is the channel's publisher and its event the channel's event type.",
				"payload": ref("#/components/schemas/Flat"),
				"examples": []any{obj{"name": "position", "payload": obj{
					"timestamp": "2024-05-12T14:00:00.123456", "trigger": "GAS_FEE_PAID", "changes_count": 1}}},
			},
		},
		"schemas": obj{
			"Timestamp": obj{
				"type": "string", "pattern": timestampPattern,
				"description": "When the event happened: RFC 3339 with Z or an offset, or ISO 8601 without a zone, read as UTC (Python's datetime.utcnow().isoformat()). A message without one, or with one that does not parse, is logged as nonconforming.",
			},
			"Envelope": obj{
				"type": "object", "required": []any{"timestamp", "component", "event"},
				"properties": obj{
					"timestamp": ref("#/components/schemas/Timestamp"),
					"component": obj{"type": "string", "minLength": 1, "description": "The publishing component."},
					"event":     obj{"type": "string", "minLength": 1, "description": "The event type."},
					"metadata":  obj{"type": "object", "description": "The event's data."},
				},
			},
			"Flat": obj{
				"type": "object", "required": []any{"timestamp"},
				"properties":  obj{"timestamp": ref("#/components/schemas/Timestamp")},
				"description": "Any JSON object with a timestamp; one with both a component and an event (non-empty strings) is an envelope.",
			},
		},
	}
}
