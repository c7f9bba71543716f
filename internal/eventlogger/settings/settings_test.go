package settings

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func lookupOf(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// TestSettings_WhatTheOperatorWritesTheLoggerReads: Env then FromEnv gives
// the same settings back, for the operator's settings and for every field.
func TestSettings_WhatTheOperatorWritesTheLoggerReads(t *testing.T) {
	all := Settings{HTTPAddr: ":9000", HealthAddr: "", EventLogFile: "/tmp/e.log", MaxMessageBytes: 4096, PendingLimit: 7,
		SpoolDir: "/var/spool/stratops", SpoolMaxBytes: 241591910, DrainTimeout: 45 * time.Second, PodName: "logger-0"}
	for name, s := range map[string]Settings{"defaults": Defaults(), "every field": all} {
		env := map[string]string{}
		for _, v := range s.Env() {
			env[v.Name] = v.Value
		}
		got, err := FromEnv(lookupOf(env))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Fatalf("%s: read back %+v\nwrote %+v", name, got, s)
		}
	}
	if got := Defaults().Env(); len(got) != 0 {
		t.Fatalf("the defaults need no variable: %+v", got)
	}
	pod := Defaults()
	pod.PodNameFromPod = true
	if env := pod.Env(); len(env) != 1 || env[0].Name != EnvPodName || env[0].FieldPath != "metadata.name" {
		t.Fatalf("the pod's name comes from its field: %+v", env)
	}
}

// TestSettings_ABadValueIsAnErrorNamingTheVariable: a size with a unit,
// a duration without one, a negative count: each is refused by name,
// never read as the default.
func TestSettings_ABadValueIsAnErrorNamingTheVariable(t *testing.T) {
	for env, want := range map[string]string{
		EnvSpoolMaxBytes:     "256Mi",
		EnvDrainTimeout:      "45",
		EnvPendingQueueLimit: "-1",
		EnvMaxMessageBytes:   "lots",
	} {
		_, err := FromEnv(lookupOf(map[string]string{env: want}))
		if err == nil || !strings.Contains(err.Error(), env+`="`+want+`"`) {
			t.Errorf("%s=%s: %v", env, want, err)
		}
	}
}
