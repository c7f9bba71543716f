package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions keeps the manager's cache to the objects stratops made: of
// the kinds it owns, only those labelled managed-by stratops are watched
// and held in memory, however many others the cluster has.
func CacheOptions() cache.Options {
	ours := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{labelManagedBy: managerName})}
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.ConfigMap{}:      ours,
		&corev1.ServiceAccount{}: ours,
		&corev1.Service{}:        ours,
		&appsv1.Deployment{}:     ours,
		&batchv1.Job{}:           ours,
	}}
}
