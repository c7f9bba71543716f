// Command apidocs writes the API reference of stratops.dev/v1
// (docs/api.md) from the Go types in api/v1: every type reachable from
// Strategy, each field with its JSON name, its type and its description
// (the doc comment, markers left out), enums with their values. make
// apidocs writes it; make verify fails when it is stale.
//
//	go run ./hack/apidocs api/v1 docs/api.md
package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
)

// typeInfo is one declared type of the package.
type typeInfo struct {
	name string
	doc  string
	expr ast.Expr
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: apidocs <api package dir> <output file>")
		os.Exit(2)
	}
	out, err := render(os.Args[1])
	if err == nil {
		err = os.WriteFile(os.Args[2], out, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apidocs:", err)
		os.Exit(1)
	}
}

func parse(dir string) (map[string]typeInfo, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	types := map[string]typeInfo{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.HasPrefix(filepath.Base(f), "zz_") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		for _, d := range af.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, s := range gd.Specs {
				ts := s.(*ast.TypeSpec)
				doc := ts.Doc
				if doc == nil {
					doc = gd.Doc
				}
				types[ts.Name.Name] = typeInfo{name: ts.Name.Name, doc: doc.Text(), expr: ts.Type}
			}
		}
	}
	return types, nil
}

var enumMarker = regexp.MustCompile(`\+kubebuilder:validation:Enum=(\S+)`)

// prose is a doc comment without its markers, on one line.
func prose(doc string) string {
	var keep []string
	for _, l := range strings.Split(doc, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "+") {
			keep = append(keep, l)
		}
	}
	return strings.ReplaceAll(strings.Join(keep, " "), "|", `\|`)
}

func render(dir string) ([]byte, error) {
	types, err := parse(dir)
	if err != nil {
		return nil, err
	}
	if _, ok := types["Strategy"]; !ok {
		return nil, fmt.Errorf("no type Strategy in %s", dir)
	}
	var b bytes.Buffer
	b.WriteString("# API reference: stratops.dev/v1\n\n")
	b.WriteString("Generated from the Go types in `api/v1` by `hack/apidocs` (`make apidocs`;\n`make verify` fails when it is stale). Every type reachable from\n`Strategy`, in the order it is reached.\n")
	seen := map[string]bool{"Strategy": true}
	queue := []string{"Strategy"}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		t := types[name]
		fmt.Fprintf(&b, "\n## %s\n\n", name)
		if p := prose(t.doc); p != "" {
			b.WriteString(p + "\n")
		}
		switch e := t.expr.(type) {
		case *ast.StructType:
			queue = writeFields(&b, e, types, seen, queue)
		case *ast.Ident:
			fmt.Fprintf(&b, "\nA `%s`.", e.Name)
			if m := enumMarker.FindStringSubmatch(t.doc); m != nil {
				fmt.Fprintf(&b, " One of: `%s`.", strings.ReplaceAll(m[1], ";", "`, `"))
			}
			b.WriteString("\n")
		}
	}
	return b.Bytes(), nil
}

func writeFields(b *bytes.Buffer, st *ast.StructType, types map[string]typeInfo, seen map[string]bool, queue []string) []string {
	b.WriteString("\n| field | type | description |\n|---|---|---|\n")
	for _, f := range st.Fields.List {
		if f.Tag == nil {
			continue
		}
		tag := reflect.StructTag(strings.Trim(f.Tag.Value, "`")).Get("json")
		jsonName, opts, _ := strings.Cut(tag, ",")
		if jsonName == "-" {
			continue
		}
		typ, refs := typeString(f.Type, types)
		for _, r := range refs {
			if !seen[r] {
				seen[r] = true
				queue = append(queue, r)
			}
		}
		if jsonName == "" && strings.Contains(opts, "inline") {
			jsonName = "(inline)"
		}
		doc := prose(f.Doc.Text())
		if strings.Contains(f.Doc.Text(), "+required") {
			doc = "**Required.** " + doc
		}
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", jsonName, typ, doc)
	}
	return queue
}

// typeString writes a field's type, linking the package's own types, and
// returns those it references.
func typeString(e ast.Expr, types map[string]typeInfo) (string, []string) {
	switch t := e.(type) {
	case *ast.StarExpr:
		return typeString(t.X, types)
	case *ast.ArrayType:
		s, refs := typeString(t.Elt, types)
		return "[]" + s, refs
	case *ast.MapType:
		k, _ := typeString(t.Key, types)
		v, refs := typeString(t.Value, types)
		return "map[" + k + "]" + v, refs
	case *ast.Ident:
		if _, ok := types[t.Name]; ok {
			return fmt.Sprintf("[%s](#%s)", t.Name, strings.ToLower(t.Name)), []string{t.Name}
		}
		return "`" + t.Name + "`", nil
	case *ast.SelectorExpr:
		return fmt.Sprintf("`%s.%s`", t.X.(*ast.Ident).Name, t.Sel.Name), nil
	}
	return "`?`", nil
}
