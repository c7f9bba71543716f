package version

import (
	"strings"
	"testing"
)

func TestString_NamesTheBinaryTheVersionTheCommitAndGo(t *testing.T) {
	old := Version
	defer func() { Version = old }()
	Version = "1.2.3"
	s := String("manager")
	for _, want := range []string{"manager 1.2.3", "commit ", "go1."} {
		if !strings.Contains(s, want) {
			t.Fatalf("%q lacks %q", s, want)
		}
	}
}
