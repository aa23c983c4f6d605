package vec

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// TestGeneratedCurrent fails when a generated assembly file is not what
// its generator writes (run `go generate ./model/internal/vec`).
func TestGeneratedCurrent(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	for gen, file := range map[string]string{"gen_gemv512.go": "gemv512_amd64.s", "gen_half.go": "half_amd64.s"} {
		want, err := exec.Command(goBin, "run", gen).Output()
		if err != nil {
			t.Fatalf("go run %s: %v", gen, err)
		}
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s differs from %s's output: run go generate ./model/internal/vec", file, gen)
		}
	}
}
