package artifact

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// A model directory holds one folder per model version, each with model.kadet and its
// training report. Versions sort by time: <UTC yyyymmdd-hhmmss>-<first 8 of the digest>.

var versionPattern = regexp.MustCompile(`^[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$`)

// NewVersion names a model trained at t with digest "sha256:<hex>".
func NewVersion(t time.Time, digest string) string {
	return t.UTC().Format("20060102-150405") + "-" + strings.TrimPrefix(digest, "sha256:")[:8]
}

// Save writes files into dir/version atomically: into a hidden temporary folder first,
// synced, then renamed, so a crash or a cancel leaves no partial version behind and an
// existing version is never overwritten.
func Save(dir, version string, files map[string][]byte) (string, error) {
	if !versionPattern.MatchString(version) {
		return "", fmt.Errorf("invalid model version %q", version)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(dir, version)
	if _, err := os.Stat(final); err == nil {
		return "", fmt.Errorf("model version %s already exists in %s", version, dir)
	}
	tmp, err := os.MkdirTemp(dir, ".partial-"+version+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := writeSynced(filepath.Join(tmp, n), files[n]); err != nil {
			return "", err
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return final, nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReportFileName is the score histogram training writes beside each model file.
const ReportFileName = "report.png"

// Versions lists the model versions in dir, oldest first.
func Versions(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && versionPattern.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

// Path is the model file of version in dir; an empty version means the newest.
func Path(dir, version string) (string, error) {
	if version == "" {
		vs, err := Versions(dir)
		if err != nil {
			return "", err
		}
		if len(vs) == 0 {
			return "", errors.New("no model version in " + dir)
		}
		version = vs[len(vs)-1]
	}
	if !versionPattern.MatchString(version) {
		return "", fmt.Errorf("invalid model version %q", version)
	}
	return filepath.Join(dir, version, FileName), nil
}
