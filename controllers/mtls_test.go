package controllers

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/redisserver"
	"github.com/stratops/stratops/pkg/messaging"
)

// TestTLS_MutualTLSWithAClientCertificateSecret: a TLS-only Redis that
// requires client certificates. With the CA and a kubernetes.io/tls
// Secret in spec.redis.tls, the gate opens and the logger gets both as
// files; without the client certificate the gate stays closed with
// TLSError; a client certificate Secret without the consent label is
// refused, naming the field.
func TestTLS_MutualTLSWithAClientCertificateSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	pki, err := redisserver.NewPKI(t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	srv, err := redisserver.Start(redisserver.Options{TLS: pki, TLSClientAuth: true})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(srv.Close)
	mk := func(name string, typ corev1.SecretType, data map[string][]byte, consent bool) {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: typ, Data: data}
		if consent {
			sec.Labels = map[string]string{stratv1.CredentialsLabel: "true"}
		}
		g.Expect(k8sClient.Create(ctx, sec)).To(Succeed())
	}
	mk("redis-ca", corev1.SecretTypeOpaque, map[string][]byte{"ca.crt": pki.CAPEM}, true)
	mk("redis-client", corev1.SecretTypeTLS, map[string][]byte{corev1.TLSCertKey: pki.ClientCertPEM, corev1.TLSPrivateKeyKey: pki.ClientKeyPEM}, true)
	mk("unlabelled-client", corev1.SecretTypeTLS, map[string][]byte{corev1.TLSCertKey: pki.ClientCertPEM, corev1.TLSPrivateKeyKey: pki.ClientKeyPEM}, false)
	tlsSpec := func(client string) func(*stratv1.Strategy) {
		return func(s *stratv1.Strategy) {
			s.Spec.Redis.TLS = &stratv1.RedisTLSSpec{Enabled: true, ServerName: "localhost",
				CASecretRef: &stratv1.SecretKeySelector{Name: "redis-ca", Key: "ca.crt"}}
			if client != "" {
				s.Spec.Redis.TLS.ClientCertSecretRef = &stratv1.SecretReference{Name: client}
			}
		}
	}

	runningLive(g, ns, "mtls", srv.Addr, tlsSpec("redis-client"))
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "mtls-eventlogger"}, d)).To(Succeed())
	env := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	g.Expect(env).To(HaveKeyWithValue(messaging.EnvRedisTLSCertFile, messaging.RedisClientCertPath))
	g.Expect(env).To(HaveKeyWithValue(messaging.EnvRedisTLSKeyFile, messaging.RedisClientKeyPath))
	mounted := map[string]string{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			for _, it := range v.Secret.Items {
				mounted[v.Secret.SecretName+"/"+it.Key] = it.Path
			}
		}
	}
	g.Expect(mounted).To(HaveKeyWithValue("redis-client/tls.crt", "tls.crt"))
	g.Expect(mounted).To(HaveKeyWithValue("redis-client/tls.key", "tls.key"))

	// Without the client certificate: TLSError, gated.
	s := liveOn(ns, "nocert", srv.Addr, stratv1.RedisLossHalt)
	tlsSpec("")(s)
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "nocert")
		p := probe(s, "connect")
		g.Expect(p).NotTo(BeNil())
		g.Expect(p.Reason).To(Equal("TLSError"), "%+v", s.Status.Redis.Probes)
		g.Expect(s.Status.Phase).To(Equal(stratv1.PhaseGated))
	}, timeout, interval).Should(Succeed())

	// A client certificate Secret without consent.
	s = liveOn(ns, "noconsent", srv.Addr, stratv1.RedisLossHalt)
	tlsSpec("unlabelled-client")(s)
	g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	g.Eventually(func(g Gomega) {
		st := condition(getStrategy(g, ns, "noconsent"), stratv1.ConditionStalled)
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.Reason).To(Equal(stratv1.ReasonSecretNotPermitted))
		g.Expect(st.Message).To(ContainSubstring("spec.redis.tls.clientCertSecretRef"))
	}, timeout, interval).Should(Succeed())
	// The key is in no status.
	var list stratv1.StrategyList
	g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	for _, s := range list.Items {
		b, _ := json.Marshal(s.Status)
		g.Expect(strings.Contains(string(b), "PRIVATE KEY")).To(BeFalse())
	}
}

// TestTLS_RotatingTheCASecret: Redis moves to a certificate of a new CA
// (CONFIG SET, live): the probes fail with TLSError until the CA Secret
// holds the new CA; then the gate passes again and the logger rolls to
// the new CA (its revision changes).
func TestTLS_RotatingTheCASecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	oldPKI, err := redisserver.NewPKI(t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	newPKI, err := redisserver.NewPKI(t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	srv, err := redisserver.Start(redisserver.Options{TLS: oldPKI})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(srv.Close)
	ca := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "redis-ca", Labels: map[string]string{stratv1.CredentialsLabel: "true"}},
		Data: map[string][]byte{"ca.crt": oldPKI.CAPEM}}
	g.Expect(k8sClient.Create(ctx, ca)).To(Succeed())
	runningLive(g, ns, "rotate", srv.Addr, func(s *stratv1.Strategy) {
		s.Spec.Redis.TLS = &stratv1.RedisTLSSpec{Enabled: true, ServerName: "localhost",
			CASecretRef: &stratv1.SecretKeySelector{Name: "redis-ca", Key: "ca.crt"}}
	})
	before := getStrategy(g, ns, "rotate").Status.EventLogger.Revision

	// The server's certificate now comes from the new CA.
	admin, err := messaging.NewRedisClient(messaging.RedisConfig{Addrs: []string{srv.Addr}, TLS: true, CAPEM: oldPKI.CAPEM, ServerName: "localhost"})
	g.Expect(err).NotTo(HaveOccurred())
	defer admin.Close()
	// One CONFIG SET: the certificate and its key change together.
	g.Expect(admin.Do(ctx, "CONFIG", "SET", "tls-cert-file", newPKI.ServerCert, "tls-key-file", newPKI.ServerKey,
		"tls-ca-cert-file", newPKI.CA).Err()).To(Succeed())
	// Connections made before keep their handshake: drop them, as a
	// restarted server would.
	g.Expect(admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err()).To(Succeed())
	g.Eventually(func(g Gomega) {
		p := probe(getStrategy(g, ns, "rotate"), "connect")
		g.Expect(p).NotTo(BeNil())
		g.Expect(p.Reason).To(Equal("TLSError"))
	}, timeout, interval).Should(Succeed())

	// The CA Secret rotated: the gate passes again, the logger rolls.
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ca), ca)).To(Succeed())
	ca.Data["ca.crt"] = newPKI.CAPEM
	g.Expect(k8sClient.Update(ctx, ca)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := getStrategy(g, ns, "rotate")
		g.Expect(s.Status.Redis.ConsecutiveFailures).To(BeZero())
		g.Expect(condition(s, stratv1.ConditionRedisReady).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(s.Status.EventLogger.UpdateRevision).NotTo(Equal(before), "the logger's revision follows the CA")
	}, timeout, interval).Should(Succeed())
}
