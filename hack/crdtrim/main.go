// Command crdtrim strips the upstream descriptions from the schema of the
// Strategy CRD's embedded pod template (spec.engine.template), after
// controller-gen writes the CRD: they are most of its size, and a CRD over
// 256 KiB cannot be applied client-side (kubectl apply keeps a copy of the
// object in an annotation) or synced by Argo CD by default. The template's
// schema keeps its types, formats and merge keys, which server-side apply
// and the admission policies read; every field of stratops's own keeps its
// description (kubectl explain).
//
// Usage: go run ./hack/crdtrim <crd.yaml>
package main

import (
	"bytes"
	"fmt"
	"os"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: crdtrim <crd.yaml>")
		os.Exit(2)
	}
	if err := trim(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "crdtrim:", err)
		os.Exit(1)
	}
}

func trim(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(raw, crd); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for i := range crd.Spec.Versions {
		v := &crd.Spec.Versions[i]
		if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		spec, ok := v.Schema.OpenAPIV3Schema.Properties["spec"]
		if !ok {
			return fmt.Errorf("%s: version %s has no spec", path, v.Name)
		}
		engine, ok := spec.Properties["engine"]
		if !ok {
			return fmt.Errorf("%s: version %s has no spec.engine", path, v.Name)
		}
		template, ok := engine.Properties["template"]
		if !ok {
			return fmt.Errorf("%s: version %s has no spec.engine.template", path, v.Name)
		}
		own := template.Description
		stripDescriptions(&template)
		template.Description = own
		engine.Properties["template"] = template
		spec.Properties["engine"] = engine
		v.Schema.OpenAPIV3Schema.Properties["spec"] = spec
	}
	out, err := yaml.Marshal(crd)
	if err != nil {
		return err
	}
	// controller-gen's document marker, and no status a CRD file never has.
	out = bytes.Replace(out, []byte("status:\n  acceptedNames:\n    kind: \"\"\n    plural: \"\"\n  conditions: null\n  storedVersions: null\n"), nil, 1)
	return os.WriteFile(path, append([]byte("---\n"), out...), 0o644)
}

// stripDescriptions removes every description in a schema, recursively.
func stripDescriptions(s *apiextensionsv1.JSONSchemaProps) {
	s.Description = ""
	for k, p := range s.Properties {
		stripDescriptions(&p)
		s.Properties[k] = p
	}
	if s.Items != nil {
		if s.Items.Schema != nil {
			stripDescriptions(s.Items.Schema)
		}
		for i := range s.Items.JSONSchemas {
			stripDescriptions(&s.Items.JSONSchemas[i])
		}
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		stripDescriptions(s.AdditionalProperties.Schema)
	}
	for _, list := range [][]apiextensionsv1.JSONSchemaProps{s.AllOf, s.AnyOf, s.OneOf} {
		for i := range list {
			stripDescriptions(&list[i])
		}
	}
}
