// Command watch measures the watch loop of `detector serve` against a real Prometheus:
// N entities, each with F metrics, written as history that ends at the tick's time;
// each tick reads the newest window of every entity (one range query per metric) and
// scores every entity's newest row, as a scoring pod does every interval. It prints
// entity-windows scored per second including the queries, the watcher's CPU and
// Prometheus's per 1,000 entities, the distribution of tick times (the lag a step's
// scores have on top of the step's own alignment), and the ratio to the issue's
// target: 10,000 entities every 15 s, 667 entity-windows a second.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/kadet-dev/kadet/detector/artifact"
	"github.com/kadet-dev/kadet/detector/contract"
	"github.com/kadet-dev/kadet/detector/data"
	"github.com/kadet-dev/kadet/detector/model"
	"github.com/kadet-dev/kadet/detector/normalize"
	"github.com/kadet-dev/kadet/detector/preprocess"
	"github.com/kadet-dev/kadet/detector/watch"
	"github.com/kadet-dev/kadet/hack/bench/internal/cli"
	"github.com/kadet-dev/kadet/hack/promtest"
)

// target is the issue's: 10,000 entities every 15 s.
const target = 10000.0 / 15

func main() {
	entities := flag.Int("entities", 10000, "entities")
	features := flag.Int("features", 4, "metrics per entity")
	window := flag.Int("window", 32, "window")
	kind := flag.String("model", "LSTMAutoencoder", "LSTMAutoencoder or ConvAutoencoder")
	ticks := flag.Int("ticks", 5, "ticks to time")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the timed ticks to this file")
	historyRows := flag.Int("history", 0, "rows of history each series has before the first tick (0: the window and 4); the likelihood stage warms up on up to 500 of them")
	norm := flag.String("normalization", contract.NormalizationLikelihood, "likelihood stage of the model: Likelihood (a Detector's default on Prometheus) or None")
	scaleBy := flag.String("scale-by", contract.ScaleByEntity, "Entity (a Detector's default over entity labels: each entity its own scaler), Model (one scaler), or Unseen (Entity, but no entity was seen in training: each is scaled by its history on the first tick)")
	flag.Parse()

	t := cli.NewScratch("kadet-bench-watch-")
	defer t.Close()
	step := 15 * time.Second
	end := time.Now().Truncate(step)
	n := *window + 4
	if *historyRows > 0 {
		n = *historyRows
	}
	var history []promtest.Series
	for f := range *features {
		for e := range *entities {
			v := make([]float64, n)
			for i := range v {
				v[i] = float64((i*7+e+f*3)%11) + float64(f)
			}
			history = append(history, promtest.Series{Metric: "bench_f" + strconv.Itoa(f), Labels: map[string]string{"entity": fmt.Sprintf("e%05d", e)},
				Start: end.Add(-time.Duration(n-1) * step), Step: step, Values: v})
		}
	}
	began := time.Now()
	srv := promtest.Start(t, promtest.Options{History: history})
	fmt.Printf("prometheus with %d series of %d samples ready in %s\n", len(history), n, time.Since(began).Round(time.Millisecond))

	m := benchModel(*kind, *window, *features)
	if *norm == contract.NormalizationLikelihood {
		c := must(normalize.New(&contract.Normalization{Method: *norm}, 1e-4))
		c.SetPriors([][]float64{{0.1, 0.2, 0.05, 0.3, 0.1, 0.15}})
		m.Meta.Normalization = c
	}
	var queries []contract.PrometheusQuery
	for f := range *features {
		queries = append(queries, contract.PrometheusQuery{Name: m.Meta.Features[f], Query: "bench_f" + strconv.Itoa(f)})
	}
	m.Meta.Prometheus = &artifact.PrometheusSource{Queries: queries, EntityLabels: []string{"entity"}}
	switch *scaleBy {
	case contract.ScaleByEntity:
		m.Meta.EntityScalers = map[string]*preprocess.Scaler{}
		for e := range *entities {
			m.Meta.EntityScalers[fmt.Sprintf("entity=%q", fmt.Sprintf("e%05d", e))] = m.Meta.Scaler
		}
	case "Unseen":
		m.Meta.EntityScalers = map[string]*preprocess.Scaler{"entity=\"trained\"": m.Meta.Scaler}
	case contract.ScaleByModel:
	default:
		log.Fatalf("--scale-by %q: want Entity, Model or Unseen", *scaleBy)
	}
	read := data.DefaultPromOptions
	read.Attempts = 1
	w := must(watch.New(watch.Options{
		Namespace: "bench", Detector: "bench", Interval: step, Read: read,
		Prometheus: contract.ResolvedPrometheus{URL: srv.URL, Step: step.String()},
		Model:      func() *artifact.Model { return m }, Now: func() time.Time { return end.Add(time.Second) },
	}))
	// One tick to warm up (connections, buffers, the graph, the likelihood states),
	// then the timed ones.
	first := time.Now()
	if err := w.Tick(context.Background()); err != nil {
		log.Fatal(err)
	}
	firstTick := time.Since(first)
	if s := w.Status(); s.Entities != *entities {
		log.Fatalf("scored %d entities; want %d", s.Entities, *entities)
	}
	var durations []time.Duration
	if *profile != "" {
		f := must(os.Create(*profile))
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	cpu0, prom0 := cpuSelf(), cpuOf(srv.Pid)
	for range *ticks {
		t0 := time.Now()
		if err := w.Tick(context.Background()); err != nil {
			log.Fatal(err)
		}
		durations = append(durations, time.Since(t0))
	}
	cpu, prom := cpuSelf()-cpu0, cpuOf(srv.Pid)-prom0
	slices.Sort(durations)
	var total time.Duration
	for _, d := range durations {
		total += d
	}
	rate := float64(*entities**ticks) / total.Seconds()
	per := func(d time.Duration) string {
		return (d / time.Duration(*ticks) * 1000 / time.Duration(*entities)).Round(time.Microsecond).String()
	}
	fmt.Printf("%s window %d, %d features, %d entities, %d ticks, normalization %s (a state is %d bytes an entity), scaled by %s (%d from their history)\n",
		*kind, *window, *features, *entities, *ticks, *norm, unsafe.Sizeof(normalize.State{}), *scaleBy, w.Status().ScaledFromHistory)
	fmt.Printf("  entity-windows per second (queries included): %.0f; %.2fx the target of %.0f\n", rate, rate/target, target)
	fmt.Printf("  tick time p50 %s, max %s (the lag a step's scores have beyond the step's alignment)\n",
		durations[len(durations)/2].Round(time.Millisecond), durations[len(durations)-1].Round(time.Millisecond))
	fmt.Printf("  CPU per 1,000 entities a tick: watcher %s, prometheus %s\n", per(cpu), per(prom))
	fmt.Printf("  first tick (reads and scores every entity's history for its likelihood state): %s for %d rows of history\n",
		firstTick.Round(time.Millisecond), n)
}

// benchModel is an untrained model of the shape a Detector's defaults give: scoring
// costs what a trained one costs.
func benchModel(kind string, window, features int) *artifact.Model {
	spec := model.Spec{Type: kind, Inputs: window * features, Window: window, Activation: model.Tanh}
	switch kind {
	case model.LSTMAutoencoder:
		spec.Hidden, spec.Latent = []int{32}, 16
	case model.ConvAutoencoder:
		spec.Channels, spec.Kernel, spec.Latent, spec.Activation = []int{16, 32}, 3, 32, model.ReLU
	default:
		log.Fatalf("model %s: want LSTMAutoencoder or ConvAutoencoder", kind)
	}
	net := must(model.New(spec, 1))
	names := make([]string, features)
	scaler := &preprocess.Scaler{Kind: "Standardize"}
	for f := range names {
		names[f] = "f" + strconv.Itoa(f)
		scaler.Offset, scaler.Scale = append(scaler.Offset, 5), append(scaler.Scale, 3)
	}
	return &artifact.Model{Network: net, Digest: "sha256:bench", Meta: artifact.Metadata{
		Features: names, Scaler: scaler, ScoringRule: contract.ScoringCausal, Threshold: artifact.Threshold{Value: 1},
	}}
}

func cpuSelf() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuOf reads a process's user and system time from /proc (clock ticks of 10 ms).
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}
