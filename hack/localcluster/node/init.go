package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// InitCommand is the hidden subcommand that becomes a container: the node starts
// itself with it in a new mount namespace, it bind-mounts the pod's volumes onto the
// paths the pod spec names, then execs the container's binary. A mount namespace is
// what lets an unmodified binary find /etc/kadet/spec or /dev/termination-log while
// another pod sees its own files at the same paths.
const InitCommand = "container-init"

// Mount is one bind mount of a host path onto a path inside the container.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// InitSpec is what the node hands to the init process (as its one argument).
type InitSpec struct {
	Binary     string   `json:"binary"`
	Args       []string `json:"args"` // argv, command first
	WorkingDir string   `json:"workingDir,omitempty"`
	Mounts     []Mount  `json:"mounts"`
}

// RunInit is the body of the init process; it returns only on error. The mount
// namespace is already private: Go makes "/" MS_PRIVATE|MS_REC when a child is
// started with CLONE_NEWNS in Unshareflags.
func RunInit(arg string) error {
	var spec InitSpec
	if err := json.Unmarshal([]byte(arg), &spec); err != nil {
		return fmt.Errorf("container-init: decoding spec: %w", err)
	}
	// Open the binary and every source before mounting anything: a mount over /tmp
	// must not hide a binary or a volume that lives under /tmp on the host.
	bin, err := os.Open(spec.Binary)
	if err != nil {
		return fmt.Errorf("container-init: %w", err)
	}
	mounts := append([]Mount(nil), spec.Mounts...)
	// Parents before children, as the kubelet does, so /var/run/x does not hide /var/run/x/y.
	sort.SliceStable(mounts, func(i, j int) bool {
		return strings.Count(filepath.Clean(mounts[i].Target), "/") < strings.Count(filepath.Clean(mounts[j].Target), "/")
	})
	sources := make([]*os.File, len(mounts))
	for i, m := range mounts {
		fd, err := unix.Open(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("container-init: volume source %s: %w", m.Source, err)
		}
		sources[i] = os.NewFile(uintptr(fd), m.Source)
	}
	for i, m := range mounts {
		st, err := sources[i].Stat()
		if err != nil {
			return fmt.Errorf("container-init: volume source %s: %w", m.Source, err)
		}
		if err := makeMountpoint(m.Target, st.IsDir()); err != nil {
			return fmt.Errorf("container-init: mount point %s: %w", m.Target, err)
		}
		src := fmt.Sprintf("/proc/self/fd/%d", sources[i].Fd())
		if err := unix.Mount(src, m.Target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("container-init: mounting %s on %s: %w", m.Source, m.Target, err)
		}
		if m.ReadOnly {
			if err := unix.Mount("", m.Target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("container-init: making %s read-only: %w", m.Target, err)
			}
		}
	}
	if spec.WorkingDir != "" {
		if err := os.MkdirAll(spec.WorkingDir, 0o755); err != nil {
			return fmt.Errorf("container-init: working directory: %w", err)
		}
		if err := os.Chdir(spec.WorkingDir); err != nil {
			return fmt.Errorf("container-init: working directory: %w", err)
		}
	}
	if len(spec.Args) == 0 {
		return fmt.Errorf("container-init: no command")
	}
	path := fmt.Sprintf("/proc/self/fd/%d", bin.Fd())
	err = unix.Exec(path, spec.Args, os.Environ())
	return fmt.Errorf("container-init: exec %s: %w", spec.Binary, err)
}

// makeMountpoint creates target (a directory, or an empty file for file volumes such
// as the termination log) unless it exists. This writes to the host's filesystem: an
// empty directory or file is the only trace a pod leaves outside the node's folder.
func makeMountpoint(target string, dir bool) error {
	if _, err := os.Stat(target); err == nil {
		return nil
	}
	if dir {
		return os.MkdirAll(target, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}
