package install

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// argoHealth is what an Argo CD health script returns.
type argoHealth struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// runHealthLua runs a health script as Argo CD runs a health
// customization from argocd-cm: without the standard libraries (only
// package, base and table; useOpenLibs is off for user scripts), with
// obj decoded from the object as Argo CD decodes it, under a 1 s
// deadline, and the returned table read back as JSON.
func runHealthLua(t *testing.T, script string, obj *unstructured.Unstructured) argoHealth {
	t.Helper()
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", luaValue(l, obj.Object))
	if err := l.DoString(script); err != nil {
		t.Fatalf("health.lua: %v", err)
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("health.lua returned %s, not a table", l.Get(-1).Type())
	}
	var h argoHealth
	for _, f := range []struct {
		key string
		to  *string
	}{{"status", &h.Status}, {"message", &h.Message}} {
		v := ret.RawGetString(f.key)
		if v.Type() != lua.LTString && v.Type() != lua.LTNil {
			t.Fatalf("health.lua returned a %s %s", v.Type(), f.key)
		}
		if v.Type() == lua.LTString {
			*f.to = v.String()
		}
	}
	switch h.Status {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
	default:
		t.Fatalf("health.lua returned status %q, which Argo CD shows as Unknown", h.Status)
	}
	return h
}

// luaValue converts a decoded object to Lua values as Argo CD does.
func luaValue(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case json.Number:
		return lua.LString(v)
	case string:
		return lua.LString(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, e := range v {
			t.Append(luaValue(l, e))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, e := range v {
			t.RawSetH(lua.LString(k), luaValue(l, e))
		}
		return t
	}
	return lua.LNil
}

func readObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return u
}

// TestArgoCDHealth runs config/argocd/health.lua on every fixture of
// health_test.yaml and compares the health Argo CD would show, and checks
// the fixtures cover every phase and the held update.
func TestArgoCDHealth(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "config", "argocd")
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cases struct {
		Tests []struct {
			InputPath    string     `json:"inputPath"`
			HealthStatus argoHealth `json:"healthStatus"`
		} `json:"tests"`
	}
	if err := yaml.UnmarshalStrict(b, &cases); err != nil {
		t.Fatal(err)
	}
	phases := map[string]bool{}
	statuses := map[string]bool{}
	for _, c := range cases.Tests {
		t.Run(c.InputPath, func(t *testing.T) {
			obj := readObject(t, filepath.Join(dir, c.InputPath))
			if obj.GetKind() != "Strategy" || obj.GroupVersionKind().Group != "stratops.dev" {
				t.Fatalf("%s is a %s, not a Strategy", c.InputPath, obj.GroupVersionKind())
			}
			phase, _, _ := unstructured.NestedString(obj.Object, "status", "phase")
			phases[phase] = true
			got := runHealthLua(t, string(script), obj)
			statuses[got.Status] = true
			if got != c.HealthStatus {
				t.Errorf("health = %+v, want %+v", got, c.HealthStatus)
			}
		})
	}
	for _, p := range []string{"Pending", "Gated", "Running", "Degraded", "Halted", "Suspended", "Succeeded", "Failed"} {
		if !phases[p] {
			t.Errorf("no fixture in phase %s", p)
		}
	}
	for _, s := range []string{"Healthy", "Progressing", "Degraded", "Suspended"} {
		if !statuses[s] {
			t.Errorf("no fixture is %s", s)
		}
	}
}

// TestArgoCDHealth_FixturesAreValidStrategies: the fixtures pass the
// CRD's schema (a fixture no API server would accept tests nothing).
func TestArgoCDHealth_FixturesAreValidStrategies(t *testing.T) {
	env := startAPIServer(t)
	dir := filepath.Join(repoRoot(t), "config", "argocd", "testdata")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		obj := readObject(t, f)
		obj.SetNamespace("default")
		unstructured.RemoveNestedField(obj.Object, "metadata", "generation")
		unstructured.RemoveNestedField(obj.Object, "status")
		if err := env.dryRunApply(obj); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}
