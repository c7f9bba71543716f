package controllers

import (
	"context"
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestColumns_KubectlGetShowsReadyAndItsMessage asks the API server for
// the table kubectl get prints: by default Mode, Phase, Ready, Redis,
// Channels, Keys, Age and the Ready condition's message; with -o wide also
// the engine's revision, the Redis endpoint and the logger's leader.
func TestColumns_KubectlGetShowsReadyAndItsMessage(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	runningLive(g, ns, "cols", redisOpen.Addr, nil)
	cs, err := kubernetes.NewForConfig(restConfig)
	g.Expect(err).NotTo(HaveOccurred())
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/apis/stratops.dev/v1/namespaces", ns, "strategies").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(context.Background())
	g.Expect(err).NotTo(HaveOccurred(), string(body))
	var table metav1.Table
	g.Expect(json.Unmarshal(body, &table)).To(Succeed())
	var normal, wide []string
	for _, c := range table.ColumnDefinitions {
		if c.Priority == 0 {
			normal = append(normal, c.Name)
		} else {
			wide = append(wide, c.Name)
		}
	}
	g.Expect(normal).To(Equal([]string{"Name", "Mode", "Phase", "Ready", "Redis", "Channels", "Keys", "Age", "Message"}))
	g.Expect(wide).To(Equal([]string{"Revision", "Endpoint", "Leader"}))
	g.Expect(table.Rows).To(HaveLen(1))
	row := table.Rows[0].Cells
	g.Expect(row[3]).To(Equal("True"), "Ready")
	g.Expect(row[8]).To(Equal("Strategy runs as declared"), "Message")
	g.Expect(row[10]).To(ContainSubstring(redisOpen.Addr), "Endpoint")
}
