package controllers

import (
	"encoding/hex"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/stratops/stratops/internal/children"
)

// TestCache_AnAnnotationNamedLikeTheDigestIsNoDigest: someone may set an
// annotation of ownedSumAnnotation's name on a child. The cache drops it
// from what it does not digest (an engine's Deployment), and an object
// read from the API server (with its managed fields) is never taken as
// digested, so ensure compares what the operator owns, not that value.
func TestCache_AnAnnotationNamedLikeTheDigestIsNoDigest(t *testing.T) {
	forged := map[string]string{ownedSumAnnotation: "0000"}
	engine := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "s-engine", Annotations: forged,
		Labels:        map[string]string{children.LabelComponent: children.ComponentEngine},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: fieldManager, Operation: metav1.ManagedFieldsOperationApply}}}}
	if _, err := trimForCache(engine); err != nil {
		t.Fatal(err)
	}
	if _, has := engine.Annotations[ownedSumAnnotation]; has {
		t.Errorf("the engine's Deployment keeps a forged digest: %v", engine.Annotations)
	}
	if len(engine.ManagedFields) != 1 {
		t.Errorf("the engine's Deployment keeps the operator's apply: %v", engine.ManagedFields)
	}

	read := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s-eventlogger", Annotations: map[string]string{ownedSumAnnotation: "0000"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "someone", Operation: metav1.ManagedFieldsOperationUpdate}}}}
	if _, ok := ownedSum(read); ok {
		t.Error("an object read from the API server is taken as digested")
	}
	trimmed, err := trimForCache(read)
	if err != nil {
		t.Fatal(err)
	}
	if sum, ok := ownedSum(trimmed.(metav1.Object)); !ok || sum == "0000" {
		t.Errorf("the cache's digest of a Service: %q, %v", sum, ok)
	}

	// Managed fields cleared by hand, and the plain digest of what the
	// operator wants (anyone can build it) set: no match, ensure applies.
	want := [32]byte{1, 2, 3}
	stripped := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "s-eventlogger",
		Annotations: map[string]string{ownedSumAnnotation: hex.EncodeToString(want[:])}}}
	trimmed, err = trimForCache(stripped)
	if err != nil {
		t.Fatal(err)
	}
	if sum, _ := ownedSum(trimmed.(metav1.Object)); sum == keyedSum(want) {
		t.Error("a digest set on the API server passes for the cache's")
	}
}

// TestCache_TrimmingTwiceKeepsTheDigest: the informer may hand the
// transform an object it already trimmed (on a relist, as after a manager
// restart); the digest stays what it was, not that of an empty extract,
// which would have every child applied again.
func TestCache_TrimmingTwiceKeepsTheDigest(t *testing.T) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "s-eventlogger", Labels: map[string]string{"a": "b"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: fieldManager, Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1",
			FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:metadata":{"f:labels":{"f:a":{}}}}`)}}}}
	owned, err := corev1ac.ExtractServiceAccount(sa, fieldManager)
	if err != nil {
		t.Fatal(err)
	}
	if len(owned.Labels) != 1 {
		t.Fatalf("the operator owns %v; want its label", owned.Labels)
	}
	want, err := digest(owned)
	if err != nil {
		t.Fatal(err)
	}
	var cached any = sa
	for i := range 2 {
		if cached, err = trimForCache(cached); err != nil {
			t.Fatal(err)
		}
		if sum, ok := ownedSum(cached.(metav1.Object)); !ok || sum != keyedSum(want) {
			t.Fatalf("after trimming %d times: digest %q (%v), want that of %v", i+1, sum, ok, owned)
		}
	}
}
