package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSkipsPartialEpisodes(t *testing.T) {
	dir := t.TempDir()
	writeRun(t, dir, "done", []byte(tinyTraj), []byte(tinyHist))
	writeRun(t, dir, "cut", []byte(tinyTraj), []byte(tinyHist))
	if err := os.WriteFile(filepath.Join(dir, "cut", PartialMarker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// no skip-bad flag needed: the partial folder is a note, not an error
	res, err := Load([]string{dir}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Episodes) != 1 || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Err.Error(), "partial episode") {
		t.Fatalf("episodes %d skipped %v", len(res.Episodes), res.Skipped)
	}
}
