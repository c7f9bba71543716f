package controllers

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/internal/children"
)

// RevisionKeySecret holds the key of the HMACs by which a revision covers
// the values of the Secret keys it references: in the manager's namespace,
// made once, read by the operator only.
const RevisionKeySecret = "stratops-revision-key"

// revisionKey reads the revision key, making it on first use. Replicas
// that start together read the one that was made first.
func revisionKey(ctx context.Context, reader client.Reader, writer client.Client, namespace string) ([]byte, error) {
	key := client.ObjectKey{Namespace: namespace, Name: RevisionKeySecret}
	for range 2 {
		sec := &corev1.Secret{}
		err := reader.Get(ctx, key, sec)
		if err == nil {
			if k := sec.Data["key"]; len(k) >= 32 {
				return k, nil
			}
			return nil, fmt.Errorf("the Secret %s/%s holds no usable key (key \"key\", 32 bytes or more)", namespace, RevisionKeySecret)
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, RevisionKeySecret, err)
		}
		var k [32]byte
		if _, err := rand.Read(k[:]); err != nil {
			return nil, err
		}
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: RevisionKeySecret,
				Labels: map[string]string{children.LabelManagedBy: children.ManagerName}},
			Immutable: ptr.To(true),
			Data:      map[string][]byte{"key": k[:]},
		}
		if err := writer.Create(ctx, sec, client.FieldOwner(fieldManager)); err == nil {
			return k[:], nil
		} else if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating Secret %s/%s: %w", namespace, RevisionKeySecret, err)
		}
	}
	return nil, fmt.Errorf("the Secret %s/%s: made and not found", namespace, RevisionKeySecret)
}

// loggerRevisionFrom names everything a logger's revision is made from
// (children.NewRevision): its settings in the spec (by the Strategy's UID
// and generation), its image and bus, the catalog, the token, and the
// referenced Secret values (by their HMAC under the revision key).
type loggerRevisionFrom struct {
	uid        types.UID
	generation int64
	image      string
	withRedis  bool
	catalogSum [sha256.Size]byte
	tokenUID   string
	secrets    string
}

// loggerRevisionMemo is a logger's revision as last made, with what it
// was made from.
type loggerRevisionMemo struct {
	from loggerRevisionFrom
	rev  children.Revision
}

// loggerRevision is the logger's revision, made again only when what it is
// made from changed: encoding and hashing its parts was a tenth of a
// healthy reconcile. Its Parts are shared with the memo: read them only.
func (r *StrategyReconciler) loggerRevision(sc *scope, image string) (children.Revision, error) {
	s := sc.strategy
	from := loggerRevisionFrom{uid: s.UID, generation: s.Generation, image: image, withRedis: sc.redis != nil,
		catalogSum: sc.catalogSum, tokenUID: sc.tokenUID, secrets: secretsMAC(sc.secrets, r.revisionKey)}
	key := client.ObjectKeyFromObject(s)
	if m, ok := r.loggerRevisions.Load(key); ok && m.(*loggerRevisionMemo).from == from {
		return m.(*loggerRevisionMemo).rev, nil
	}
	rev, err := children.NewRevision(s, loggerOwn{Image: image, LogLevel: children.LogLevel(s), Resources: s.Spec.EventLogger.Resources, WithRedis: sc.redis != nil},
		sc.catalogSum, secretValues(sc), sc.tokenUID, r.revisionKey)
	if err == nil {
		r.loggerRevisions.Store(key, &loggerRevisionMemo{from: from, rev: rev})
	}
	return rev, err
}

// secretsMAC is one HMAC, under key, of the referenced Secret keys and
// their values; "" for none.
func secretsMAC(secrets []resolvedSecret, key []byte) string {
	if len(secrets) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, key)
	for _, sec := range secrets {
		for _, part := range [][]byte{[]byte(sec.ref.Name), []byte(sec.ref.Key), sec.value} {
			var n [8]byte
			binary.BigEndian.PutUint64(n[:], uint64(len(part)))
			m.Write(n[:])
			m.Write(part)
		}
	}
	return string(m.Sum(nil))
}

// secretValues are the referenced Secret keys' values, for a revision.
func secretValues(sc *scope) []children.SecretValue {
	out := make([]children.SecretValue, len(sc.secrets))
	for i, sec := range sc.secrets {
		out[i] = children.SecretValue{Name: sec.ref.Name, Key: sec.ref.Key, Value: sec.value}
	}
	return out
}

// loggerOwn is what of the logger's own spec a revision covers: not its
// replica count, which scales, and rolls nothing.
type loggerOwn struct {
	Image     string
	LogLevel  stratv1.LogLevel
	Resources corev1.ResourceRequirements
	WithRedis bool
}

// engineOwn is what of the engine's own spec a revision covers.
type engineOwn struct {
	Mode      stratv1.StrategyMode
	Template  corev1.PodTemplateSpec
	WithRedis bool
}

// pruneCatalogs deletes the catalog ConfigMaps the Strategy owns that no
// pod template of its own still mounts: not the Deployments' and Jobs',
// nor those of a ReplicaSet that still runs pods (a rollout under way).
// Nothing is read from the API server while a Strategy has one catalog.
func (r *StrategyReconciler) pruneCatalogs(ctx context.Context, s *stratv1.Strategy, inUse ...string) error {
	var cms corev1.ConfigMapList
	// Those it controls (ownedBy), of its catalogs.
	if err := r.List(ctx, &cms, client.InNamespace(s.Namespace), ownedBy(s), client.MatchingLabels{children.LabelComponent: children.ComponentCatalog}); err != nil {
		return err
	}
	keep := sets.New(inUse...)
	var stale []corev1.ConfigMap
	for _, cm := range cms.Items {
		if !keep.Has(cm.Name) {
			stale = append(stale, cm)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	for _, name := range []string{children.EventLoggerName(s), children.EngineName(s)} {
		d := &appsv1.Deployment{}
		if err := r.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: name}, d); err == nil {
			keep.Insert(children.CatalogsIn(d.Spec.Template.Spec)...)
		} else if !apierrors.IsNotFound(err) {
			return err
		}
	}
	jobs, err := r.engineJobs(ctx, s)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		keep.Insert(children.CatalogsIn(j.Spec.Template.Spec)...)
	}
	var rss appsv1.ReplicaSetList
	if err := r.APIReader.List(ctx, &rss, client.InNamespace(s.Namespace),
		client.MatchingLabels{children.LabelName: children.ManagerName, children.LabelInstance: s.Name}); err != nil {
		return fmt.Errorf("listing the ReplicaSets of %s: %w", s.Name, err)
	}
	for _, rs := range rss.Items {
		if ptr.Deref(rs.Spec.Replicas, 0) > 0 || rs.Status.Replicas > 0 {
			keep.Insert(children.CatalogsIn(rs.Spec.Template.Spec)...)
		}
	}
	for _, cm := range stale {
		if keep.Has(cm.Name) {
			continue
		}
		if err := r.deleteOwned(ctx, s, &cm); err != nil {
			return err
		}
		ctrl.LoggerFrom(ctx).Info("Deleted a catalog no pod mounts any more", "configMap", cm.Name)
	}
	return nil
}
