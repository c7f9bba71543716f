package controllers

import (
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
)

// figures are the status's fields that are not its meaning.
var figures = map[string]bool{
	"Redis.LastProbeTime":               true,
	"Channels[0].Messages":              true,
	"Channels[0].InvalidMessages":       true,
	"Channels[0].NonconformingMessages": true,
	"Channels[0].LastMessageTime":       true,
	"Channels[0].LagP50":                true,
	"Channels[0].LagP99":                true,
	"Keys[0].TTLSeconds":                true,
}

// TestMeaning_EveryFieldIsMeaningOrAFigure changes each field of a status
// with every field set, one at a time: a change of a figure is no change
// of meaning, a change of any other field is. A field added to the status
// and forgotten by meaningfulChange fails here.
func TestMeaning_EveryFieldIsMeaningOrAFigure(t *testing.T) {
	base := &stratv1.StrategyStatus{}
	fill(reflect.ValueOf(base).Elem())
	if meaningfulChange(base, base.DeepCopy()) || !statusEqual(base, base.DeepCopy()) {
		t.Fatal("a copy differs from its original")
	}
	seen := map[string]bool{}
	for n := 0; ; n++ {
		changed, skip := base.DeepCopy(), n
		path, ok := changeNth(reflect.ValueOf(changed).Elem(), "", &skip)
		if !ok {
			break
		}
		seen[path] = true
		if statusEqual(base, changed) {
			t.Errorf("%s: changed, and the statuses are still equal", path)
		}
		if got, want := meaningfulChange(base, changed), !figures[path]; got != want {
			t.Errorf("%s changed: meaningfulChange = %v, want %v", path, got, want)
		}
	}
	for f := range figures {
		if !seen[f] {
			t.Errorf("the figure %s is no field of the status", f)
		}
	}
	if len(seen) < 40 {
		t.Errorf("only %d fields were changed: %v", len(seen), seen)
	}
}

// TestMeaning_AnEmptyListIsAnAbsentOne: as the semantic comparison has it.
func TestMeaning_AnEmptyListIsAnAbsentOne(t *testing.T) {
	a := &stratv1.StrategyStatus{Conditions: []metav1.Condition{}, Channels: []stratv1.ChannelStatus{}}
	if meaningfulChange(a, &stratv1.StrategyStatus{}) {
		t.Error("empty lists differ from absent ones")
	}
	now := time.Now()
	b := &stratv1.StrategyStatus{Redis: &stratv1.RedisStatus{FailingSince: &metav1.Time{Time: now}}}
	c := &stratv1.StrategyStatus{Redis: &stratv1.RedisStatus{FailingSince: &metav1.Time{Time: now.UTC()}}}
	if meaningfulChange(b, c) {
		t.Error("the same instant in two locations differs")
	}
}

// fill sets every field under v: strings, numbers and booleans to a
// value that is not zero, pointers to a new value, lists to one element.
func fill(v reflect.Value) {
	if v.Type() == reflect.TypeFor[metav1.Time]() {
		v.Set(reflect.ValueOf(metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("a")
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i))
		}
	default:
		panic("fill: no value for a " + v.Type().String())
	}
}

// changeNth changes the n-th field (in field order, depth first) under v,
// as fill set it, and returns its path; ok is false when there are fewer.
func changeNth(v reflect.Value, path string, n *int) (string, bool) {
	leaf := func(change func()) (string, bool) {
		if *n == 0 {
			change()
			return path, true
		}
		*n--
		return "", false
	}
	if v.Type() == reflect.TypeFor[metav1.Time]() {
		return leaf(func() { v.Set(reflect.ValueOf(metav1.NewTime(v.Interface().(metav1.Time).Add(time.Hour)))) })
	}
	switch v.Kind() {
	case reflect.String:
		return leaf(func() { v.SetString(v.String() + "b") })
	case reflect.Int, reflect.Int32, reflect.Int64:
		return leaf(func() { v.SetInt(v.Int() + 1) })
	case reflect.Bool:
		return leaf(func() { v.SetBool(!v.Bool()) })
	case reflect.Pointer:
		return changeNth(v.Elem(), path, n)
	case reflect.Slice:
		return changeNth(v.Index(0), path+"[0]", n)
	case reflect.Struct:
		for i := range v.NumField() {
			name := v.Type().Field(i).Name
			if path != "" && path[len(path)-1] != '.' {
				name = "." + name
			}
			if p, ok := changeNth(v.Field(i), path+name, n); ok {
				return p, true
			}
		}
	}
	return "", false
}
