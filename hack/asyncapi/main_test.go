package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	"github.com/stratops/stratops/pkg/messaging"
)

// load reads a YAML or JSON file as the JSON values a validator takes.
func load(t *testing.T, path string) any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAsyncAPI_TheDocumentIsValidAndItsSchemasJudgeMessages: the committed
// docs/standard/asyncapi.yaml is what the generator writes for the
// standard's catalog, validates against the AsyncAPI 3.0.0 JSON Schema
// (vendored from @asyncapi/specs), and its message schemas take messages
// of both shapes as components write them and refuse ones without a
// timestamp or with one that does not parse.
func TestAsyncAPI_TheDocumentIsValidAndItsSchemasJudgeMessages(t *testing.T) {
	docPath := filepath.Join("..", "..", "docs", "standard", "asyncapi.yaml")
	want, err := yaml.Marshal(document(messaging.Standard(messaging.ModeLive)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(got, want) {
		t.Fatal("docs/standard/asyncapi.yaml is not what hack/asyncapi writes for the catalog: run make asyncapi")
	}

	c := jsonschema.NewCompiler()
	if err := c.AddResource("asyncapi-3.0.0.json", load(t, filepath.Join("testdata", "asyncapi-3.0.0.schema.json"))); err != nil {
		t.Fatal(err)
	}
	spec, err := c.Compile("asyncapi-3.0.0.json")
	if err != nil {
		t.Fatal(err)
	}
	doc := load(t, docPath)
	if err := spec.Validate(doc); err != nil {
		t.Fatalf("the document is not valid AsyncAPI 3.0.0: %v", err)
	}

	if err := c.AddResource("asyncapi.json", doc); err != nil {
		t.Fatal(err)
	}
	schema := func(name string) *jsonschema.Schema {
		s, err := c.Compile("asyncapi.json#/components/schemas/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	envelope, flat := schema("Envelope"), schema("Flat")
	made, _ := messaging.Envelope(time.Now(), "position_monitor", "updated", map[string]any{"seq": 1})
	for _, tc := range []struct {
		name    string
		schema  *jsonschema.Schema
		message string
		valid   bool
	}{
		{"an envelope as pkg/messaging writes it", envelope, string(made), true},
		{"the standard's envelope", envelope, `{"timestamp":"2024-05-12T14:00:00Z","component":"position_monitor","event":"updated","metadata":{"trigger":"GAS_FEE_PAID"}}`, true},
		{"an envelope with an offset", envelope, `{"timestamp":"2024-05-12T16:00:00.123456+02:00","component":"risk_monitor","event":"calculated"}`, true},
		{"an envelope without a timestamp", envelope, `{"component":"position_monitor","event":"updated","metadata":{}}`, false},
		{"an envelope without its event", envelope, `{"timestamp":"2024-05-12T14:00:00Z","component":"position_monitor"}`, false},
		{"a flat message, naive (Python's utcnow().isoformat())", flat, `{"timestamp":"2024-05-12T14:00:00.123456","trigger":"GAS_FEE_PAID"}`, true},
		{"a flat message, space-separated", flat, `{"timestamp":"2024-05-12 14:00:00","x":1}`, true},
		{"a flat message without a timestamp", flat, `{"trigger":"GAS_FEE_PAID"}`, false},
		{"a flat message with a date only", flat, `{"timestamp":"2024-05-12"}`, false},
		{"a flat message that is not an object", flat, `[1,2]`, false},
	} {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(tc.message)))
		if err != nil {
			t.Fatal(err)
		}
		err = tc.schema.Validate(v)
		if (err == nil) != tc.valid {
			t.Errorf("%s: valid %v, want %v (%v)", tc.name, err == nil, tc.valid, err)
		}
		// The schema and the decoder agree on what conforms.
		if json.Valid([]byte(tc.message)) && tc.message[0] == '{' {
			cat := messaging.Standard(messaging.ModeLive)
			e, derr := cat.DecodeEvent("position:updated", []byte(tc.message), messaging.DecodeOptions{})
			if derr == nil && tc.valid && e.Nonconforming != "" {
				t.Errorf("%s: the schema takes it, the decoder calls it nonconforming (%s)", tc.name, e.Nonconforming)
			}
		}
	}
}
