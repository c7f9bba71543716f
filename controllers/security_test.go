package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestCache_SecretMetadataHoldsNoLastAppliedCopy: a Secret made with
// `kubectl apply` carries its whole data in an annotation; the operator's
// metadata-only cache of Secrets must not keep it.
func TestCache_SecretMetadataHoldsNoLastAppliedCopy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "applied", Annotations: map[string]string{
			lastAppliedAnnotation: `{"apiVersion":"v1","kind":"Secret","data":{"password":"` + testPassword + `"}}`,
			"team":                "desk-a",
		}},
		Data: map[string][]byte{"password": []byte(testPassword)},
	}
	g.Expect(k8sClient.Create(ctx, sec)).To(Succeed())
	g.Expect(k8sClient.Create(ctx, liveWithPassword(ns, "cached", "applied"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		g.Expect(managerCache.Get(ctx, client.ObjectKey{Namespace: ns, Name: "applied"}, m)).To(Succeed())
		g.Expect(m.Annotations).To(HaveKeyWithValue("team", "desk-a"), "the Secret is in the cache")
		g.Expect(m.Annotations).NotTo(HaveKey(lastAppliedAnnotation))
	}, timeout, interval).Should(Succeed())
}
