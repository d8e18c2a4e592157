package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probe runs a readiness or liveness probe against the container's pod IP until ctx
// ends. Readiness sets the container's Ready; a failed liveness probe kills the
// process, and the restart policy takes over, as with the kubelet.
func (r *podRun) probe(ctx context.Context, c *containerRun, pr *corev1.Probe, readiness bool) {
	if pr == nil {
		return
	}
	period := seconds(pr.PeriodSeconds, 10)
	timeout := seconds(pr.TimeoutSeconds, 1)
	successes, failures := 0, 0
	successThreshold, failureThreshold := int(pr.SuccessThreshold), int(pr.FailureThreshold)
	if successThreshold <= 0 {
		successThreshold = 1
	}
	if failureThreshold <= 0 {
		failureThreshold = 3
	}
	wait := time.Duration(pr.InitialDelaySeconds) * time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = period
		err := r.probeOnce(ctx, c, pr, timeout)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
		}
		if readiness {
			r.mu.Lock()
			was := c.status.Ready
			switch {
			case successes >= successThreshold:
				c.status.Ready = true
			case failures >= failureThreshold:
				c.status.Ready = false
			}
			now := c.status.Ready
			r.mu.Unlock()
			if was != now {
				r.p.changed(r.snapshot())
			}
			continue
		}
		if failures >= failureThreshold {
			r.p.cfg.Logf("pod %s/%s container %s failed its liveness probe: %v", r.pod.Namespace, r.pod.Name, c.spec.Name, err)
			r.mu.Lock()
			proc, grace := c.proc, c.grace
			r.mu.Unlock()
			if proc != nil {
				_ = syscall.Kill(-proc.Pid, syscall.SIGTERM)
				go func() {
					select {
					case <-ctx.Done():
					case <-time.After(grace):
						_ = syscall.Kill(-proc.Pid, syscall.SIGKILL)
					}
				}()
			}
			return
		}
	}
}

func seconds(v int32, def int) time.Duration {
	if v <= 0 {
		return time.Duration(def) * time.Second
	}
	return time.Duration(v) * time.Second
}

// probeOnce runs one HTTP GET or TCP probe.
func (r *podRun) probeOnce(ctx context.Context, c *containerRun, pr *corev1.Probe, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case pr.HTTPGet != nil:
		g := pr.HTTPGet
		port, err := containerPort(c.spec, g.Port)
		if err != nil {
			return err
		}
		host := g.Host
		if host == "" {
			host = r.ip.String()
		}
		scheme := "http"
		if g.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), g.Path), nil)
		if err != nil {
			return err
		}
		for _, h := range g.HTTPHeaders {
			req.Header.Add(h.Name, h.Value)
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}} //nolint:gosec // the kubelet does not verify probe certificates either
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe: status %d", resp.StatusCode)
		}
		return nil
	case pr.TCPSocket != nil:
		port, err := containerPort(c.spec, pr.TCPSocket.Port)
		if err != nil {
			return err
		}
		host := pr.TCPSocket.Host
		if host == "" {
			host = r.ip.String()
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	}
	return fmt.Errorf("the local node runs httpGet and tcpSocket probes only")
}

func containerPort(c corev1.Container, p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("probe names port %q, which container %s does not declare", p.StrVal, c.Name)
}
