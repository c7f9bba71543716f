package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

func repo(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// allDocs is the README, DEVELOPMENT.md and docs/*.md, joined.
func allDocs(t *testing.T, root string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append([]string{filepath.Join(root, "README.md"), filepath.Join(root, "DEVELOPMENT.md")}, files...)
	var b strings.Builder
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(raw)
		b.WriteString("\n")
	}
	return b.String()
}

// stringConsts are the string constants of a Go package, by name.
func stringConsts(t *testing.T, dir string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	out := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range vs.Names {
				if i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						out[name.Name] = v
					}
				}
			}
			return true
		})
	}
	return out
}

// managerFlags are the flags cmd/manager defines.
func managerFlags(t *testing.T, root string) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, "cmd", "manager", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`flag\.\w+Var\(&\w+, "([a-z0-9-]+)"`).FindAllStringSubmatch(string(src), -1) {
		out[m[1]] = true
	}
	if len(out) < 10 {
		t.Fatalf("found only %d manager flags: the pattern no longer reads cmd/manager", len(out))
	}
	return out
}

// TestDocs_EveryNameTheCodeDefinesIsDocumented: every condition type,
// condition reason and event reason of api/v1, every manager flag and
// every field of the Strategy's spec appears in the docs.
func TestDocs_EveryNameTheCodeDefinesIsDocumented(t *testing.T) {
	root := repo(t)
	docs := allDocs(t, root)
	var missing []string
	for name, v := range stringConsts(t, filepath.Join(root, "api", "v1")) {
		if (strings.HasPrefix(name, "Reason") || strings.HasPrefix(name, "Event") || strings.HasPrefix(name, "Condition")) && !strings.Contains(docs, "`"+v+"`") {
			missing = append(missing, name+" ("+v+")")
		}
	}
	for f := range managerFlags(t, root) {
		if !strings.Contains(docs, "`--"+f+"`") && !strings.Contains(docs, "--"+f) {
			missing = append(missing, "manager flag --"+f)
		}
	}
	for _, path := range specPaths(crdSchema(t, root).Properties["spec"], "spec") {
		field := path[strings.LastIndex(path, ".")+1:]
		if strings.HasPrefix(path, "spec.engine.template.") || strings.HasPrefix(path, "spec.eventLogger.resources.") {
			continue // the pod template's and resource requirements' fields are Kubernetes's
		}
		if !strings.Contains(docs, "`"+field+"`") && !strings.Contains(docs, path) {
			missing = append(missing, "spec field "+path)
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("%s is in the code but in no doc (README, DEVELOPMENT.md, docs/)", m)
	}
}

func crdSchema(t *testing.T, root string) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "config", "crd", "bases", "stratops.dev_strategies.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(raw, crd); err != nil {
		t.Fatal(err)
	}
	return *crd.Spec.Versions[0].Schema.OpenAPIV3Schema
}

func specPaths(s apiextensionsv1.JSONSchemaProps, prefix string) []string {
	var out []string
	if s.Items != nil && s.Items.Schema != nil {
		s = *s.Items.Schema
	}
	for name, p := range s.Properties {
		path := prefix + "." + name
		out = append(out, path)
		out = append(out, specPaths(p, path)...)
	}
	return out
}

// resolves says whether a dotted path names a field of the schema.
func resolves(s apiextensionsv1.JSONSchemaProps, parts []string) bool {
	for _, part := range parts {
		if s.Items != nil && s.Items.Schema != nil {
			s = *s.Items.Schema
		}
		if s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields {
			return true
		}
		p, ok := s.Properties[part]
		if !ok {
			if s.AdditionalProperties != nil {
				return true // a map: any key
			}
			return false
		}
		s = p
	}
	return true
}

// TestDocs_EveryNameTheDocsGiveExists: every spec.* and status.* path
// the docs give resolves in the CRD's schema, every stratops.dev/
// annotation or label they name is one the code uses, every flag of the
// manager-flags table is a manager flag, and every reason of the
// conditions table is a name the code has. The README stays at most 200
// lines.
func TestDocs_EveryNameTheDocsGiveExists(t *testing.T) {
	root := repo(t)
	docs := fence.ReplaceAllString(allDocs(t, root), "")
	schema := crdSchema(t, root)
	bad := map[string]bool{}
	for _, m := range regexp.MustCompile(`\b(spec|status)((?:\.[a-z][a-zA-Z0-9]*)+)`).FindAllStringSubmatch(docs, -1) {
		parts := strings.Split(strings.TrimPrefix(m[2], "."), ".")
		if !resolves(schema.Properties[m[1]], parts) {
			bad["path "+m[0]] = true
		}
	}
	code := goSource(t, root)
	for _, m := range regexp.MustCompile(`stratops\.dev/[a-z][a-z0-9-]*[a-z0-9]`).FindAllString(docs, -1) {
		if m != "stratops.dev/v1" && !strings.Contains(code, `"`+m) {
			bad["annotation or label "+m] = true
		}
	}
	operating, err := os.ReadFile(filepath.Join(root, "docs", "operating.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(operating), "\n### Manager flags\n")
	table, _, _ = strings.Cut(table, "\n#")
	flags := managerFlags(t, root)
	for _, m := range regexp.MustCompile("`--([a-z0-9-]+)`").FindAllStringSubmatch(table, -1) {
		if !flags[m[1]] && !strings.HasPrefix(m[1], "zap-") {
			bad["manager flag --"+m[1]] = true
		}
	}
	strategy, err := os.ReadFile(filepath.Join(root, "docs", "strategy.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, conds, _ := strings.Cut(string(strategy), "\n### conditions\n")
	conds, _, _ = strings.Cut(conds, "\n\n")
	for _, m := range regexp.MustCompile("`([A-Z][A-Za-z]+)`").FindAllStringSubmatch(conds, -1) {
		if !strings.Contains(code, `"`+m[1]+`"`) {
			bad["condition or reason "+m[1]] = true
		}
	}
	for b := range bad {
		t.Errorf("the docs name %s, which the code does not have", b)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(readme), "\n"); n > 200 {
		t.Errorf("the README is %d lines; it stays at most 200 (the rest lives in docs/)", n)
	}
}

// goSource is every non-test Go file of the project, joined.
func goSource(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	for _, dir := range []string{"api", "cmd", "controllers", "internal", "pkg"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			raw, err := os.ReadFile(p)
			b.Write(raw)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
