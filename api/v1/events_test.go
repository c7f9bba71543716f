package v1

import (
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDocs_TheEventTableIsTheCodes: every event reason the code defines
// (the Event* constants) is in the event table of docs/operating.md, and
// every reason the table names is one the code defines.
func TestDocs_TheEventTableIsTheCodes(t *testing.T) {
	code := eventReasons(t)
	readme, err := os.ReadFile("../../docs/operating.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n### Events\n")
	if !ok {
		t.Fatal("docs/operating.md has no Events section")
	}
	if end := strings.Index(table, "\n#"); end >= 0 {
		table = table[:end]
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, m := range regexp.MustCompile("`([A-Za-z]+)`").FindAllStringSubmatch(first, -1) {
			documented[m[1]] = true
		}
	}
	for reason, name := range code {
		if !documented[reason] {
			t.Errorf("%s (%q) is missing from the event table of docs/operating.md", name, reason)
		}
	}
	for reason := range documented {
		if _, ok := code[reason]; !ok {
			t.Errorf("the event table of docs/operating.md names %q, which no Event constant in api/v1 is", reason)
		}
	}
}

// eventReasons are the values of the Event* constants of this package,
// by value, with their names.
func eventReasons(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "condition_types.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	conf := types.Config{}
	info := &types.Info{Defs: map[*ast.Ident]types.Object{}}
	if _, err := conf.Check("v1", fset, []*ast.File{f}, info); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for id, obj := range info.Defs {
		c, ok := obj.(*types.Const)
		if !ok || !strings.HasPrefix(id.Name, "Event") {
			continue
		}
		out[constant.StringVal(c.Val())] = id.Name
	}
	if len(out) < 10 || out[EventGatePassed] == "" {
		t.Fatalf("found only %v", out)
	}
	return out
}
