package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/train"
)

// progressInterval spaces updates of the progress ConfigMap, so fast epochs do not
// flood the API server; the last epoch is always sent.
const progressInterval = 2 * time.Second

// progressSink returns a function that reports each epoch into the progress ConfigMap
// named by contract.EnvProgressConfigMap, or nil outside a training pod. Reporting is best
// effort: a failure is logged once and never stops training.
func progressSink(stderr io.Writer) func(train.Progress) {
	name, ns := os.Getenv(contract.EnvProgressConfigMap), os.Getenv(contract.EnvPodNamespace)
	if name == "" || ns == "" {
		return nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		fmt.Fprintf(stderr, "progress reporting off: %v\n", err)
		return nil
	}
	client, err := corev1client.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "progress reporting off: %v\n", err)
		return nil
	}
	hash := os.Getenv(contract.EnvSpecHash)
	var last time.Time
	warned := false
	return func(p train.Progress) {
		if time.Since(last) < progressInterval && p.Epoch < p.Epochs {
			return
		}
		last = time.Now()
		dataMap := map[string]string{
			contract.ProgressKeySpecHash: hash,
			contract.ProgressKeyEpoch:    strconv.Itoa(p.Epoch),
			contract.ProgressKeyEpochs:   strconv.Itoa(p.Epochs),
			contract.ProgressKeyLoss:     strconv.FormatFloat(p.Loss, 'g', 6, 64),
		}
		if !math.IsNaN(p.ValLoss) {
			dataMap[contract.ProgressKeyValLoss] = strconv.FormatFloat(p.ValLoss, 'g', 6, 64)
		}
		patch, _ := json.Marshal(map[string]any{"data": dataMap})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := client.ConfigMaps(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !warned {
			fmt.Fprintf(stderr, "reporting progress to ConfigMap %s/%s: %v\n", ns, name, err)
			warned = true
		}
	}
}
