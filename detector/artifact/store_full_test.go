//go:build linux

package artifact

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A model saved onto a full volume fails with the kernel's "no space left on device",
// and leaves neither a version nor a partial folder behind: the scoring pods, which
// list the volume, keep seeing exactly the versions that were there. The volume is a
// real filesystem, a 256 KiB tmpfs, which needs root to mount.
func TestSaveOnAFullVolume(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("mounting a small tmpfs needs root (CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })

	first := "20261129-100000-aaaaaaaa"
	if _, err := Save(dir, first, map[string][]byte{"model.kadet": bytes.Repeat([]byte{1}, 64<<10)}); err != nil {
		t.Fatalf("a model that fits: %v", err)
	}
	_, err := Save(dir, "20261129-110000-bbbbbbbb", map[string][]byte{
		"model.kadet": bytes.Repeat([]byte{2}, 128<<10), "report.png": bytes.Repeat([]byte{3}, 128<<10),
	})
	if !errors.Is(err, syscall.ENOSPC) || !bytes.Contains([]byte(err.Error()), []byte("no space left on device")) {
		t.Fatalf("err = %v; want no space left on device", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != first {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("volume holds %v; want only %s", names, first)
	}
	if b, err := os.ReadFile(filepath.Join(dir, first, "model.kadet")); err != nil || len(b) != 64<<10 {
		t.Fatalf("the first model changed: %d bytes, %v", len(b), err)
	}
}
