package messaging

import (
	"bytes"
	"encoding/json"
)

// topLevel holds the raw values of the top-level fields the codec reads.
// Each is nil when the object has no such field; the rest of the object is
// never parsed into values, so it is kept exactly as it came.
type topLevel struct {
	timestamp, component, event, metadata []byte
}

// scanTopLevel finds the fields of a JSON object that json.Valid accepted.
// Like encoding/json, a field given twice counts with its last value.
// Unlike encoding/json, names match exactly: "Event" is not "event".
func scanTopLevel(obj []byte) topLevel {
	var f topLevel
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return f
	}
	i++
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return f
		}
		if obj[i] == ',' {
			i++
			continue
		}
		keyEnd := skipString(obj, i)
		key := obj[i+1 : keyEnd-1]
		i = skipSpace(obj, keyEnd)
		i = skipSpace(obj, i+1) // the colon
		valEnd := skipValue(obj, i)
		val := obj[i:valEnd]
		i = valEnd
		if bytes.IndexByte(key, '\\') >= 0 {
			var s string
			if json.Unmarshal(obj[keyEnd-len(key)-2:keyEnd], &s) == nil {
				key = []byte(s)
			}
		}
		switch string(key) {
		case "timestamp":
			f.timestamp = val
		case "component":
			f.component = val
		case "event":
			f.event = val
		case "metadata":
			f.metadata = val
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i].
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default: // number, true, false, null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		return j
	}
}

// jsonString reads a raw JSON value as a string; ok is false when it is
// not a string.
func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}
