package local

import (
	"os"
	"path/filepath"

	"smtrain/envbridge"
	"smtrain/envbridge/sandbox"
)

var _ envbridge.StaleCleaner = (*Registry)(nil)

// defaultWorkRoot is the work root when Options.WorkRoot is empty.
func defaultWorkRoot() string { return filepath.Join(os.TempDir(), "smtrain-work") }

// CleanStale removes the workspaces under the registry's work root left by
// environment processes that died (a killed server leaves its quota
// mounts and files behind); workspaces of live processes stay. The
// environment server calls it at start (httpenv.NewServer). It returns
// the names of the workspaces removed.
func (r *Registry) CleanStale() ([]string, error) {
	root := r.WorkRoot
	if root == "" {
		root = defaultWorkRoot()
	}
	return sandbox.CleanStaleWorkspaces(root)
}
