package main

import (
	"cmp"
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/drift"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/serve"
)

// drainTimeout plus the default shutdown delay stays under Kubernetes' default 30 s
// grace period.
const drainTimeout = 20 * time.Second

func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts serve.Options
	fs.StringVar(&opts.ModelDir, "model-dir", "", "model directory (required)")
	fs.StringVar(&opts.Version, "model-version", "", "serve this version only; empty serves the newest and follows new ones")
	fs.StringVar(&opts.Digest, "model-digest", "", "refuse the --model-version file unless its digest is this (sha256:<hex>, as its ModelVersion records it)")
	fs.StringVar(&opts.Name, "model-name", "", "model name for the Open Inference Protocol (default: the Detector's name in the model file)")
	addr := fs.String("addr", "", "listen address (default $POD_IP:8080 when POD_IP is set, else :8080)")
	fs.Int64Var(&opts.MaxBodyBytes, "max-body-bytes", serve.DefaultMaxBodyBytes, "largest request body")
	fs.IntVar(&opts.MaxInstances, "max-instances", serve.DefaultMaxInstances, "most records per request")
	fs.DurationVar(&opts.ReloadInterval, "reload-interval", serve.DefaultReloadInterval, "how often to look for a new model")
	fs.DurationVar(&opts.ShutdownDelay, "shutdown-delay", 5*time.Second, "keep serving this long after SIGTERM while /readyz fails, so traffic moves off the pod first")
	fs.IntVar(&opts.DriftWindow, "drift-window", drift.DefaultWindow, "measure drift over this many recent rows")
	fs.StringVar(&opts.ShadowVersion, "shadow-version", "", "also score every request and watch tick with this version, in shadow: counted and exported, never answered with (needs --model-version)")
	fs.StringVar(&opts.FeedbackDir, "feedback-dir", "", "store labelled marks sent to POST /v1/feedback in this folder (the model volume's feedback folder); empty refuses them")
	fs.Int64Var(&opts.MaxFeedbackFileBytes, "max-feedback-file-bytes", serve.DefaultMaxFeedbackFileBytes, "largest feedback file of this server (429 beyond)")
	fs.Int64Var(&opts.MaxFeedbackBytes, "max-feedback-bytes", serve.DefaultMaxFeedbackBytes, "largest feedback folder, every server's files (429 beyond)")
	statusConfigMap := fs.String("status-configmap", "", "in a pod: report drift and shadow counts into this ConfigMap of the pod's namespace, under the keys drift.<pod> and shadow.<pod>")
	watchFile := fs.String("watch", "", "a WatchRequest (JSON): also score the newest rows of its Prometheus queries every interval and export them on /metrics")
	debugAddr := fs.String("debug-addr", "", "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060); off when empty")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if opts.ModelDir == "" {
		return usageError{"--model-dir is required"}
	}
	opts.FeedbackFile = cmp.Or(os.Getenv(contract.EnvPodName), "detector")
	if opts.Digest != "" && opts.Version == "" {
		return usageError{"--model-digest needs --model-version: a digest is one version's"}
	}
	if opts.ShadowVersion != "" && opts.Version == "" {
		return usageError{"--shadow-version needs --model-version: a shadow is compared with one served version"}
	}
	if *addr == "" {
		*addr = ":8080"
		if ip := os.Getenv(contract.EnvPodIP); ip != "" {
			*addr = net.JoinHostPort(ip, "8080")
		}
	}
	opts.Logger = slog.New(slog.NewJSONHandler(stderr, nil))
	opts.Logger.Info("detector serve", "blas", model.BLAS, "kernels", model.BLASKernels(), "choice", kernelChoice)
	if *debugAddr != "" {
		// Profiles stay off the scoring port: they are for operators, not clients.
		go func() {
			mux := http.NewServeMux()
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			opts.Logger.Error("debug server", "error", http.ListenAndServe(*debugAddr, mux).Error())
		}()
	}
	opts.Registry = prometheus.NewRegistry()
	srv := serve.New(opts)
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *watchFile != "" {
		if err := startWatch(bctx, *watchFile, srv, opts.Registry, opts.Logger); err != nil {
			return err
		}
	}
	go reportScoring(bctx, srv, *statusConfigMap, opts.Logger)
	return srv.Run(ctx, *addr, drainTimeout)
}
